/**
 * The outbox's SQLite schema: a contract other languages insert into directly (docs/buffer.md).
 * Changing it is a breaking change for those writers: only add columns with defaults, bump SCHEMA_VERSION.
 * Version 2 added outbox_resync (new markers of whole seq ranges re-sent by a drain). Version 3 added the
 * lineage: marker_epoch on outbox and outbox_resync (the epoch a batch was committed on) and the `lineage`
 * table (the epochs this buffer learned from writers), and dropped timeline_forks. SCHEMA_SQL creates what is
 * missing in the version 3 shape; MIGRATIONS bring the tables of an older file up to it.
 */
export const SCHEMA_VERSION = 3;

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
  marker_epoch    TEXT,
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
  marker_epoch    TEXT,
  CHECK (last_seq >= first_seq)
);
CREATE TABLE IF NOT EXISTS lineage (
  epoch         TEXT    PRIMARY KEY,
  parent_epoch  TEXT,
  generation    INTEGER NOT NULL,
  fork_lsn      TEXT,
  timeline      INTEGER NOT NULL,
  node_id       TEXT    NOT NULL,
  execution_id  TEXT,
  created_at    TEXT    NOT NULL,
  learned_at_ms INTEGER NOT NULL
);
DROP TABLE IF EXISTS timeline_forks;
`;

/** Columns added after a table's first version: [table, column, declaration], added where missing. */
export const ADDED_COLUMNS: readonly (readonly [string, string, string])[] = [
  ['outbox', 'marker_epoch', 'TEXT'],
  ['outbox_resync', 'marker_epoch', 'TEXT'],
];
