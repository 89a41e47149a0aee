/** Where each RDS DB instance listens, from DescribeDBInstances (one call per identifier: IAM is scoped per instance). */
import { DescribeDBInstancesCommand, RDSClient } from '@aws-sdk/client-rds';

export interface InstanceEndpoint {
  readonly host: string;
  readonly port: number;
}

/**
 * Resolves endpoints of the given instances. An instance that does not exist or has no endpoint yet (creating)
 * is left out and reported in `missing` with the reason, so the monitor reports it as unreachable instead of failing.
 */
export async function describeInstanceEndpoints(
  instanceIds: readonly string[],
  client: RDSClient = new RDSClient({}),
): Promise<{ endpoints: Map<string, InstanceEndpoint>; missing: Map<string, string> }> {
  const endpoints = new Map<string, InstanceEndpoint>();
  const missing = new Map<string, string>();
  await Promise.all(
    instanceIds.map(async (id) => {
      try {
        const out = await client.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: id }));
        const instance = out.DBInstances?.[0];
        const endpoint = instance?.Endpoint;
        if (endpoint?.Address && endpoint.Port) endpoints.set(id, { host: endpoint.Address, port: endpoint.Port });
        else missing.set(id, `no endpoint yet (status ${instance?.DBInstanceStatus ?? 'unknown'})`);
      } catch (error) {
        const name = (error as { name?: string }).name;
        if (name === 'DBInstanceNotFoundFault') missing.set(id, 'DB instance not found');
        else throw error;
      }
    }),
  );
  return { endpoints, missing };
}
