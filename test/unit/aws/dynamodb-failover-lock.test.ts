import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { DynamoDbFailoverLock, DynamoDbRunbookJournal } from '../../../src/aws/dynamodb-failover-lock.js';

const ddb = mockClient(DynamoDBClient);
const NOW = Date.parse('2024-05-01T10:00:00.000Z');
const clock = { now: () => NOW, sleep: async () => undefined };
const lock = () => new DynamoDbFailoverLock(new DynamoDBClient({}), 'locks', clock);
const conditional = (item?: Record<string, unknown>) =>
  new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {}, ...(item ? { Item: item as never } : {}) });

beforeEach(() => ddb.reset());

describe('DynamoDbFailoverLock', () => {
  it('renews its own lock with a conditional update (keeps since)', async () => {
    ddb.on(UpdateItemCommand).resolves({});
    expect(await lock().acquire('orders', 'exec-1', 900)).toEqual({ acquired: true });
    expect(ddb.commandCalls(UpdateItemCommand)[0]!.args[0].input).toEqual({
      TableName: 'locks',
      Key: { pk: { S: 'lock#orders' } },
      UpdateExpression: 'SET expiresAt = :exp',
      ConditionExpression: '#owner = :owner',
      ExpressionAttributeNames: { '#owner': 'owner' },
      ExpressionAttributeValues: { ':exp': { N: String(NOW + 900_000) }, ':owner': { S: 'exec-1' } },
    });
    expect(ddb.commandCalls(PutItemCommand)).toHaveLength(0);
  });

  it('takes a free or expired lock with a conditional put', async () => {
    ddb.on(UpdateItemCommand).rejects(conditional());
    ddb.on(PutItemCommand).resolves({});
    expect(await lock().acquire('orders', 'exec-2', 60)).toEqual({ acquired: true });
    expect(ddb.commandCalls(PutItemCommand)[0]!.args[0].input).toEqual({
      TableName: 'locks',
      Item: { pk: { S: 'lock#orders' }, owner: { S: 'exec-2' }, since: { S: '2024-05-01T10:00:00.000Z' }, expiresAt: { N: String(NOW + 60_000) } },
      ConditionExpression: 'attribute_not_exists(pk) OR expiresAt < :now',
      ExpressionAttributeValues: { ':now': { N: String(NOW) } },
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
  });

  it('refuses a lock another execution holds and says who and since when', async () => {
    ddb.on(UpdateItemCommand).rejects(conditional());
    ddb.on(PutItemCommand).rejects(conditional({ owner: { S: 'exec-1' }, since: { S: '2024-05-01T09:58:00.000Z' } }));
    expect(await lock().acquire('orders', 'exec-2', 60)).toEqual({ acquired: false, heldBy: 'exec-1', since: '2024-05-01T09:58:00.000Z' });
  });

  it('releases only its own lock', async () => {
    ddb.on(DeleteItemCommand).rejectsOnce(conditional()).resolves({});
    await lock().release('orders', 'exec-2');
    await lock().release('orders', 'exec-1');
    expect(ddb.commandCalls(DeleteItemCommand).map((c) => c.args[0].input)[1]).toEqual({
      TableName: 'locks',
      Key: { pk: { S: 'lock#orders' } },
      ConditionExpression: '#owner = :owner',
      ExpressionAttributeNames: { '#owner': 'owner' },
      ExpressionAttributeValues: { ':owner': { S: 'exec-1' } },
    });
  });

  it('holder reads consistently and ignores an expired lock', async () => {
    ddb
      .on(GetItemCommand)
      .resolvesOnce({ Item: { owner: { S: 'exec-1' }, since: { S: 's' }, expiresAt: { N: String(NOW + 1) } } })
      .resolves({ Item: { owner: { S: 'exec-1' }, since: { S: 's' }, expiresAt: { N: String(NOW - 1) } } });
    expect(await lock().holder('orders')).toEqual({ heldBy: 'exec-1', since: 's' });
    expect(await lock().holder('orders')).toBeNull();
    expect(ddb.commandCalls(GetItemCommand)[0]!.args[0].input).toEqual({ TableName: 'locks', Key: { pk: { S: 'lock#orders' } }, ConsistentRead: true });
  });
});

describe('DynamoDbRunbookJournal', () => {
  const journal = () => new DynamoDbRunbookJournal(new DynamoDBClient({}), 'locks');
  const entry = { clusterId: 'orders', executionId: 'exec-1', status: 'in-progress' as const, updatedAt: '2024-05-01T10:00:00.000Z', state: { plan: { candidateId: 'b' } } };

  it('writes the journal in a transaction conditioned on still owning the lock', async () => {
    ddb.on(TransactWriteItemsCommand).resolves({});
    await journal().save(entry);
    expect(ddb.commandCalls(TransactWriteItemsCommand)[0]!.args[0].input).toEqual({
      TransactItems: [
        {
          ConditionCheck: {
            TableName: 'locks',
            Key: { pk: { S: 'lock#orders' } },
            ConditionExpression: '#owner = :owner',
            ExpressionAttributeNames: { '#owner': 'owner' },
            ExpressionAttributeValues: { ':owner': { S: 'exec-1' } },
          },
        },
        {
          Put: {
            TableName: 'locks',
            Item: {
              pk: { S: 'journal#orders' },
              executionId: { S: 'exec-1' },
              status: { S: 'in-progress' },
              updatedAt: { S: '2024-05-01T10:00:00.000Z' },
              state: { S: '{"plan":{"candidateId":"b"}}' },
            },
          },
        },
      ],
    });
  });

  it('refuses to write once the lock belongs to someone else', async () => {
    ddb.on(TransactWriteItemsCommand).rejects(
      new TransactionCanceledException({ message: 'Transaction cancelled', $metadata: {}, CancellationReasons: [{ Code: 'ConditionalCheckFailed' }, { Code: 'None' }] }),
    );
    await expect(journal().save(entry)).rejects.toThrow('journal of orders not written: execution exec-1 no longer holds the failover lock');
  });

  it('loads what it saved', async () => {
    ddb.on(GetItemCommand).resolves({
      Item: { executionId: { S: 'exec-1' }, status: { S: 'failed' }, updatedAt: { S: 't' }, state: { S: '{"plan":{"candidateId":"b"}}' } },
    });
    expect(await journal().load('orders')).toEqual({ clusterId: 'orders', executionId: 'exec-1', status: 'failed', updatedAt: 't', state: { plan: { candidateId: 'b' } } });
    expect(ddb.commandCalls(GetItemCommand)[0]!.args[0].input).toEqual({ TableName: 'locks', Key: { pk: { S: 'journal#orders' } }, ConsistentRead: true });
  });
});
