/**
 * The outbox's SQLite schema: a contract other languages insert into directly (docs/buffer.md).
 * Changing it is a breaking change for those writers: only add columns with defaults, bump SCHEMA_VERSION.
 * Version 2 added outbox_resync (new markers of whole seq ranges re-sent by a drain); SCHEMA_SQL only
 * creates what is missing, so running it migrates a version 1 file.
 */
export const SCHEMA_VERSION = 2;

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
CREATE TABLE IF NOT EXISTS outbox_resync (
  first_seq       INTEGER PRIMARY KEY,
  last_seq        INTEGER NOT NULL,
  synced_at_ms    INTEGER NOT NULL,
  marker_timeline INTEGER NOT NULL,
  marker_lsn      INTEGER NOT NULL,
  CHECK (last_seq >= first_seq)
);
CREATE TABLE IF NOT EXISTS timeline_forks (
  timeline       INTEGER PRIMARY KEY,
  fork_lsn       INTEGER NOT NULL,
  next_timeline  INTEGER NOT NULL,
  recorded_at_ms INTEGER NOT NULL
);
`;
