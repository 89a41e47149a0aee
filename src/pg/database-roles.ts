import type pg from 'pg';
import { quoteIdentifier, quoteTable } from './identifiers.js';
import { scramSha256Verifier } from './scram.js';

/** A login role the stack owns, with the predefined roles it is a member of. */
export interface LoginRole {
  readonly name: string;
  readonly password: string;
  /** e.g. pg_monitor. */
  readonly memberOf: readonly string[];
}

/** A table the agent writes into, and the key columns ON CONFLICT reads. */
export interface TableGrant {
  /** 'table' or 'schema.table'. */
  readonly table: string;
  readonly keyColumns: readonly string[];
}

export interface RolesApplied {
  readonly roles: readonly string[];
  /** Tables granted to the agent role. */
  readonly granted: readonly string[];
  /** Tables that do not exist (yet): grant them once they do (docs/buffer.md, PostgreSQL privileges). */
  readonly missing: readonly string[];
  /**
   * Tables the GRANT left without the privileges (PostgreSQL only warns when the granting role lacks the grant
   * option, e.g. on a table another role owns): their owner must grant them.
   */
  readonly notGranted: readonly string[];
}

/**
 * Creates or updates the stack's least-privilege login roles, over a session of the master user (on RDS a
 * member of rds_superuser with CREATEROLE; no superuser needed): each role exists, can log in with the
 * password its secret holds now (so a re-run after a rotation changes nothing), is a member of its
 * predefined roles, and the agent role may INSERT into its stream tables and SELECT their key columns.
 * Idempotent; never drops or revokes anything.
 */
export async function applyLoginRoles(client: pg.Client, roles: readonly LoginRole[], agent: { readonly role: string; readonly tables: readonly TableGrant[] }): Promise<RolesApplied> {
  for (const role of roles) {
    const name = quoteIdentifier(role.name);
    const { rowCount } = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role.name]);
    // Utility statements take no parameters: the password goes in as its SCRAM verifier (an escaped literal), so the
    // password itself never shows in a failed or slow statement's log line or in pg_stat_activity.
    await client.query(`${rowCount === 0 ? 'CREATE' : 'ALTER'} ROLE ${name} WITH LOGIN PASSWORD ${client.escapeLiteral(scramSha256Verifier(role.password))}`);
    for (const member of role.memberOf) await client.query(`GRANT ${quoteIdentifier(member)} TO ${name}`);
  }
  const granted: string[] = [];
  const missing: string[] = [];
  const notGranted: string[] = [];
  for (const { table, keyColumns } of agent.tables) {
    const { rows } = await client.query<{ schema: string | null }>(
      'SELECT n.nspname AS schema FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)',
      [quoteTable(table)],
    );
    if (rows.length === 0) {
      missing.push(table);
      continue;
    }
    const role = quoteIdentifier(agent.role);
    await client.query(`GRANT USAGE ON SCHEMA ${quoteIdentifier(rows[0]!.schema!)} TO ${role}`);
    await client.query(`GRANT INSERT, SELECT (${keyColumns.map(quoteIdentifier).join(', ')}) ON TABLE ${quoteTable(table)} TO ${role}`);
    const check = await client.query<{ ok: boolean }>(
      `SELECT has_schema_privilege($1, $2, 'USAGE') AND has_table_privilege($1, $3, 'INSERT')
              AND (SELECT bool_and(has_column_privilege($1, $3, c, 'SELECT')) FROM unnest($4::text[]) c) AS ok`,
      [agent.role, rows[0]!.schema, quoteTable(table), keyColumns],
    );
    (check.rows[0]!.ok ? granted : notGranted).push(table);
  }
  return { roles: roles.map((r) => r.name), granted, missing, notGranted };
}
