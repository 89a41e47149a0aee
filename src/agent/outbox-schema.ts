/**
 * The outbox's SQLite schema: a contract other languages insert into directly (docs/buffer.md).
 * Changing it is a breaking change for those writers: only add columns with defaults, bump SCHEMA_VERSION.
 */
export const SCHEMA_VERSION = 1;

export const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS outbox (
  seq             INTEGER PRIMARY KEY AUTOINCREMENT,
  stream          TEXT    NOT NULL,
  id              TEXT    NOT NULL,
  payload         TEXT    NOT NULL,
  created_at_ms   INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
  state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'synced', 'rejected')),
  synced_at_ms    INTEGER,
  marker_timeline INTEGER,
  marker_lsn      INTEGER,
  error           TEXT,
  UNIQUE (stream, id),
  CHECK (state <> 'synced' OR (synced_at_ms IS NOT NULL AND marker_timeline IS NOT NULL AND marker_lsn IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_synced_at ON outbox (synced_at_ms) WHERE state = 'synced';
CREATE TABLE IF NOT EXISTS agent_state (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS timeline_forks (
  timeline       INTEGER PRIMARY KEY,
  fork_lsn       INTEGER NOT NULL,
  next_timeline  INTEGER NOT NULL,
  recorded_at_ms INTEGER NOT NULL
);
`;
