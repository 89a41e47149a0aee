/**
 * Amazon DynamoDB in the twin: the template's tables (key schema), with GetItem, PutItem, UpdateItem, DeleteItem and
 * TransactWriteItems, condition expressions evaluated as DynamoDB does (ConditionalCheckFailedException;
 * TransactionCanceledException with a reason per item, nothing written when one fails).
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { DeployedTemplate, } from './cfn-template.js';
import { applyUpdate, evaluateCondition, project, type Item } from './dynamodb-expressions.js';
import type { ServiceTwin, TwinAuthorization } from './service-twin.js';
import { awsError } from './twin-errors.js';

interface Table {
  readonly keys: readonly string[];
  readonly items: Map<string, Item>;
  readonly keyArn?: string;
}

interface Condition {
  ConditionExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: Record<string, AttributeValue>;
}

export class DynamoDbTwin implements ServiceTwin {
  readonly service = 'dynamodb';
  private readonly tables = new Map<string, Table>();

  constructor(private readonly deployed: DeployedTemplate) {
    for (const id of deployed.ofType('AWS::DynamoDB::Table')) {
      const schema = deployed.property<{ AttributeName: string }[]>(id, 'KeySchema') ?? [];
      const sse = deployed.property<{ KMSMasterKeyId?: string }>(id, 'SSESpecification');
      this.tables.set(deployed.ref(id), { keys: schema.map((k) => k.AttributeName), items: new Map(), ...(sse?.KMSMasterKeyId ? { keyArn: sse.KMSMasterKeyId } : {}) });
    }
  }

  /** The items of a table (for assertions). */
  items(tableName: string): Item[] {
    return [...this.table(tableName).items.values()];
  }

  handlers(): Record<string, (input: any) => Promise<unknown>> {
    return {
      GetItem: async (input: { TableName: string; Key: Item; ProjectionExpression?: string; ExpressionAttributeNames?: Record<string, string> }) => {
        const t = this.table(input.TableName);
        const item = t.items.get(this.key(t, input.Key));
        return item ? { Item: project(input.ProjectionExpression, item, { names: input.ExpressionAttributeNames }) } : {};
      },
      PutItem: async (input: { TableName: string; Item: Item } & Condition) => {
        const t = this.table(input.TableName);
        const k = this.key(t, input.Item);
        this.check(input, t.items.get(k), 'ConditionalCheckFailedException');
        t.items.set(k, input.Item);
        return {};
      },
      UpdateItem: async (input: { TableName: string; Key: Item; UpdateExpression: string } & Condition) => {
        const t = this.table(input.TableName);
        const k = this.key(t, input.Key);
        const old = t.items.get(k);
        this.check(input, old, 'ConditionalCheckFailedException');
        t.items.set(k, applyUpdate(input.UpdateExpression, old ?? { ...input.Key }, { names: input.ExpressionAttributeNames, values: input.ExpressionAttributeValues }));
        return {};
      },
      DeleteItem: async (input: { TableName: string; Key: Item } & Condition) => {
        const t = this.table(input.TableName);
        const k = this.key(t, input.Key);
        this.check(input, t.items.get(k), 'ConditionalCheckFailedException');
        t.items.delete(k);
        return {};
      },
      TransactWriteItems: async (input: { TransactItems: Record<string, any>[] }) => {
        const writes: (() => void)[] = [];
        const reasons = input.TransactItems.map((entry) => {
          const [kind, op] = Object.entries(entry)[0]! as [string, Record<string, any>];
          const t = this.table(op.TableName);
          const k = this.key(t, op.Key ?? op.Item);
          const current = t.items.get(k);
          if (op.ConditionExpression && !evaluateCondition(op.ConditionExpression, current, { names: op.ExpressionAttributeNames, values: op.ExpressionAttributeValues })) {
            return { Code: 'ConditionalCheckFailed', Message: 'The conditional request failed' };
          }
          if (kind === 'Put') writes.push(() => t.items.set(k, op.Item));
          else if (kind === 'Delete') writes.push(() => t.items.delete(k));
          else if (kind === 'Update') writes.push(() => t.items.set(k, applyUpdate(op.UpdateExpression, current ?? { ...op.Key }, { names: op.ExpressionAttributeNames, values: op.ExpressionAttributeValues })));
          else if (kind !== 'ConditionCheck') throw awsError('ValidationException', `unknown transaction item ${kind}`);
          return { Code: 'None' };
        });
        if (reasons.some((r) => r.Code !== 'None')) {
          const error = awsError('TransactionCanceledException', `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons.map((r) => r.Code).join(', ')}]`);
          Object.assign(error, { CancellationReasons: reasons });
          throw error;
        }
        for (const w of writes) w();
        return {};
      },
    };
  }

  authorizations(operation: string, input: any): TwinAuthorization[] {
    const arn = (table: string) => `arn:aws:dynamodb:${this.deployed.region}:${this.deployed.account}:table/${table}`;
    if (operation === 'TransactWriteItems') {
      // IAM authorizes each item of a transaction as its own action.
      const action = (kind: string) => ({ Put: 'PutItem', Delete: 'DeleteItem', Update: 'UpdateItem', ConditionCheck: 'ConditionCheckItem' })[kind] ?? kind;
      return (input.TransactItems as Record<string, any>[]).map((entry) => {
        const [kind, op] = Object.entries(entry)[0]! as [string, { TableName: string }];
        return { action: `dynamodb:${action(kind)}`, resource: arn(op.TableName) };
      });
    }
    return [{ action: `dynamodb:${operation}`, resource: arn(input.TableName) }];
  }

  private check(input: Condition, current: Item | undefined, errorName: string): void {
    if (!input.ConditionExpression) return;
    if (!evaluateCondition(input.ConditionExpression, current, { names: input.ExpressionAttributeNames, values: input.ExpressionAttributeValues })) {
      throw awsError(errorName, 'The conditional request failed');
    }
  }

  private table(name: string): Table {
    const t = this.tables.get(name);
    if (!t) throw awsError('ResourceNotFoundException', `Requested resource not found: Table: ${name} not found`);
    return t;
  }

  private key(t: Table, item: Item | undefined): string {
    if (!item) throw awsError('ValidationException', 'The provided key element does not match the schema');
    return JSON.stringify(
      t.keys.map((k) => {
        if (item[k] === undefined) throw awsError('ValidationException', `One of the required keys was not given a value: ${k}`);
        return item[k];
      }),
    );
  }
}
