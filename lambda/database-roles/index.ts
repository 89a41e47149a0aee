/**
 * database-roles: the onEvent handler of the custom resource that applies the stack's least-privilege
 * PostgreSQL roles and the lineage schema (lib/database-roles.ts). Thin: reads its environment, runs src/aws/database-roles-resource.ts.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { onDatabaseRolesEvent, type DatabaseRolesEvent } from '../../src/aws/database-roles-resource.js';

const logger = new Logger({ serviceName: 'database-roles' });
const secrets = new SecretsManagerClient({});

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is not set`);
  return value;
}

export async function handler(event: DatabaseRolesEvent) {
  const host = required('DB_HOST');
  const result = await onDatabaseRolesEvent(
    event,
    {
      masterSecretArn: required('DB_SECRET_ARN'),
      host,
      port: Number(required('DB_PORT')),
      database: required('DB_NAME'),
      primaryInstanceId: required('DB_INSTANCE_ID'),
      // RDS CA bundle from NODE_EXTRA_CA_CERTS (set by the construct); the server name must match.
      ssl: { rejectUnauthorized: true, servername: host },
    },
    secrets,
  );
  logger.info('database roles applied', { requestType: event.RequestType, ...result.Data });
  return result;
}
