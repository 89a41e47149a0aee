/**
 * The lag monitor's state in DynamoDB: one item per cluster, written with a version condition so two overlapping
 * runs cannot both alert (the loser gets StateConflictError and stops). DynamoDB rather than SSM Parameter Store:
 * conditional writes (SSM has none), no 4 KB/8 KB value limit, no PutParameter throughput throttling at a write
 * every 10 s, KMS encryption and point-in-time recovery, pay-per-request cost of a few cents a month.
 */
import { ConditionalCheckFailedException, DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { StateConflictError, type AlertStateStore, type VersionedState } from '../ports/alert-state-store.js';

/** Attribute names of the table (partition key ClusterId). */
export const ALERT_STATE_KEY = 'ClusterId';

export class DynamoDbAlertStateStore implements AlertStateStore {
  constructor(
    private readonly tableName: string,
    private readonly client: DynamoDBClient = new DynamoDBClient({}),
    private readonly now: () => Date = () => new Date(),
  ) {
    if (!/^[A-Za-z0-9_.-]{3,255}$/.test(tableName)) throw new Error(`DynamoDbAlertStateStore: tableName '${tableName}' is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)`);
  }

  async load(clusterId: string): Promise<VersionedState | null> {
    const out = await this.client.send(
      new GetItemCommand({ TableName: this.tableName, Key: { [ALERT_STATE_KEY]: { S: clusterId } }, ConsistentRead: true, ProjectionExpression: '#s, #v', ExpressionAttributeNames: { '#s': 'State', '#v': 'Version' } }),
    );
    if (!out.Item) return null;
    const raw = out.Item.State?.S;
    const version = Number(out.Item.Version?.N);
    if (raw === undefined || !Number.isInteger(version)) {
      throw new Error(`table ${this.tableName}, item ${clusterId}: expected attributes State (string) and Version (number)`);
    }
    let state: unknown;
    try {
      state = JSON.parse(raw);
    } catch {
      throw new Error(`table ${this.tableName}, item ${clusterId}: State is not JSON`);
    }
    return { state, version };
  }

  async save(clusterId: string, state: unknown, expectedVersion: number | null): Promise<number> {
    const version = (expectedVersion ?? 0) + 1;
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            [ALERT_STATE_KEY]: { S: clusterId },
            State: { S: JSON.stringify(state) },
            Version: { N: String(version) },
            UpdatedAt: { S: this.now().toISOString() },
          },
          ...(expectedVersion === null
            ? { ConditionExpression: 'attribute_not_exists(#k)', ExpressionAttributeNames: { '#k': ALERT_STATE_KEY } }
            : { ConditionExpression: '#v = :expected', ExpressionAttributeNames: { '#v': 'Version' }, ExpressionAttributeValues: { ':expected': { N: String(expectedVersion) } } }),
        }),
      );
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) throw new StateConflictError(clusterId, expectedVersion);
      throw error;
    }
    return version;
  }
}
