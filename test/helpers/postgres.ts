/**
 * The PostgreSQL the tests use: its URL comes from BINDLE_TEST_POSTGRES_URL (start one with
 * `scripts/services/postgres.sh up`). Unset, tests needing it are skipped with that reason,
 * except under CI=true, where that is a failure. Each index gets its own schema, named after
 * its test directory, so test files can run in parallel on one database; schemas are dropped
 * when the test file ends; server processes get a whole database of their own (freshDatabase).
 */
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Test } from 'tap';

export const POSTGRES_URL_VARIABLE = 'BINDLE_TEST_POSTGRES_URL';

/**
 * The test database's URL. When it is not configured: undefined, after failing `t` under CI,
 * else after planning `t` (a test file's root) as skipped with the reason.
 */
export function postgresUrl(t: Test): string | undefined {
  const url = process.env[POSTGRES_URL_VARIABLE];
  if (url !== undefined && url !== '') return url;
  const reason = `${POSTGRES_URL_VARIABLE} is unset: start PostgreSQL with scripts/services/postgres.sh up and export what it prints`;
  if (process.env.CI === 'true') t.fail(`CI needs PostgreSQL: ${reason}`);
  else t.plan(0, reason);
  return undefined;
}

/**
 * A schema name for a test directory. The first use in this process drops what a previous run
 * may have left under that name; at the end of `root` every schema handed out is dropped.
 */
export function schemaPool(root: Test, url: string): (dir: string) => Promise<string> {
  const made = new Set<string>();
  root.teardown(async () => {
    await dropSchemas(url, [...made]);
  });
  return async (dir) => {
    const schema = `test_${createHash('sha256').update(dir).digest('hex').slice(0, 24)}`;
    if (!made.has(schema)) {
      made.add(schema);
      await dropSchemas(url, [schema]);
    }
    return schema;
  };
}

/** Drops these schemas (lowercase names, as schemaPool and test-backends.ts make them) and all they hold. */
export async function dropSchemas(url: string, schemas: readonly string[]): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

/**
 * A database of its own on the server at `url` (for server processes, which take a whole
 * database), dropped when `t` ends; resolves with its URL.
 */
export async function freshDatabase(t: Test, url: string): Promise<string> {
  const name = `bindle_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  t.teardown(async () => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } finally {
      await c.end();
    }
  });
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}
