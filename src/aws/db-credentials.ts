import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

/** The JSON an RDS-generated (or CDK DatabaseSecret) credentials secret holds. */
export interface DbCredentials {
  readonly username: string;
  readonly password: string;
  readonly dbname?: string;
}

/**
 * Reads database credentials from Secrets Manager. Never logs the secret; errors name the secret and
 * the missing field only.
 */
export async function loadDbCredentials(secretArn: string, client = new SecretsManagerClient({})): Promise<DbCredentials> {
  const out = await client.send(new GetSecretValueCommand({ SecretId: secretArn }));
  if (!out.SecretString) throw new Error(`secret ${secretArn} has no SecretString: expected JSON with username and password`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(out.SecretString);
  } catch {
    throw new Error(`secret ${secretArn} is not JSON: expected {"username": ..., "password": ...}`);
  }
  const record = parsed as Record<string, unknown>;
  for (const field of ['username', 'password'] as const) {
    if (typeof record[field] !== 'string' || record[field] === '') {
      throw new Error(`secret ${secretArn}: field '${field}' missing or not a string`);
    }
  }
  return {
    username: record.username as string,
    password: record.password as string,
    dbname: typeof record.dbname === 'string' ? record.dbname : undefined,
  };
}
