/**
 * The failover lock and the runbook journal in one DynamoDB table (partition key `pk`, string):
 * - `lock#<clusterId>`: owner, since, expiresAt (epoch ms). Taken with a conditional write, renewed by its
 *   owner, taken over only once expired (a runner that died frees it after its TTL).
 * - `journal#<clusterId>`: the runbook state after the last step. Written in a transaction that also checks
 *   the lock is still this execution's: a run that lost the lock can never overwrite the journal of the one
 *   that took it over.
 */
import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import type { Clock } from '../ports/clock.js';
import { systemClock } from '../ports/clock.js';
import type { FailoverLock, LockResult } from '../ports/failover-lock.js';
import type { RunbookJournal, RunbookJournalEntry } from '../ports/runbook-journal.js';

export const lockKey = (clusterId: string) => `lock#${clusterId}`;
export const journalKey = (clusterId: string) => `journal#${clusterId}`;

export class DynamoDbFailoverLock implements FailoverLock {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly clock: Clock = systemClock,
  ) {}

  async acquire(clusterId: string, owner: string, ttlSeconds: number): Promise<LockResult> {
    if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0) throw new Error(`lock ttlSeconds must be positive, got ${ttlSeconds}`);
    const now = this.clock.now();
    const expiresAt = String(now + Math.round(ttlSeconds * 1000));
    try {
      // Renewal by the owner keeps `since`.
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: lockKey(clusterId) } },
          UpdateExpression: 'SET expiresAt = :exp',
          ConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':exp': { N: expiresAt }, ':owner': { S: owner } },
        }),
      );
      return { acquired: true };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            pk: { S: lockKey(clusterId) },
            owner: { S: owner },
            since: { S: new Date(now).toISOString() },
            expiresAt: { N: expiresAt },
          },
          ConditionExpression: 'attribute_not_exists(pk) OR expiresAt < :now',
          ExpressionAttributeValues: { ':now': { N: String(now) } },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return { acquired: true };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const item = error.Item;
      return { acquired: false, heldBy: item?.owner?.S ?? 'unknown', since: item?.since?.S ?? 'unknown' };
    }
  }

  async release(clusterId: string, owner: string): Promise<void> {
    try {
      await this.client.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: lockKey(clusterId) } },
          ConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': { S: owner } },
        }),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error; // not ours (any more): leave it
    }
  }

  async holder(clusterId: string): Promise<{ heldBy: string; since: string } | null> {
    const out = await this.client.send(new GetItemCommand({ TableName: this.tableName, Key: { pk: { S: lockKey(clusterId) } }, ConsistentRead: true }));
    const item = out.Item;
    if (!item || Number(item.expiresAt?.N ?? 0) < this.clock.now()) return null;
    return { heldBy: item.owner?.S ?? 'unknown', since: item.since?.S ?? 'unknown' };
  }
}

export class DynamoDbRunbookJournal implements RunbookJournal {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async load(clusterId: string): Promise<RunbookJournalEntry | null> {
    const out = await this.client.send(new GetItemCommand({ TableName: this.tableName, Key: { pk: { S: journalKey(clusterId) } }, ConsistentRead: true }));
    const item = out.Item;
    if (!item) return null;
    const status = item.status?.S;
    if (status !== 'in-progress' && status !== 'failed' && status !== 'succeeded') {
      throw new Error(`journal of ${clusterId} in ${this.tableName} has status '${status}': expected in-progress, failed or succeeded`);
    }
    return {
      clusterId,
      executionId: item.executionId?.S ?? 'unknown',
      status,
      updatedAt: item.updatedAt?.S ?? 'unknown',
      state: JSON.parse(item.state?.S ?? 'null'),
    };
  }

  /** Saves only while the entry's execution still owns the lock (fails with a clear error otherwise). */
  async save(entry: RunbookJournalEntry): Promise<void> {
    try {
      await this.client.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            {
              ConditionCheck: {
                TableName: this.tableName,
                Key: { pk: { S: lockKey(entry.clusterId) } },
                ConditionExpression: '#owner = :owner',
                ExpressionAttributeNames: { '#owner': 'owner' },
                ExpressionAttributeValues: { ':owner': { S: entry.executionId } },
              },
            },
            {
              Put: {
                TableName: this.tableName,
                Item: {
                  pk: { S: journalKey(entry.clusterId) },
                  executionId: { S: entry.executionId },
                  status: { S: entry.status },
                  updatedAt: { S: entry.updatedAt },
                  state: { S: JSON.stringify(entry.state) },
                },
              },
            },
          ],
        }),
      );
    } catch (error) {
      const reasons = (error as { CancellationReasons?: { Code?: string }[] }).CancellationReasons ?? [];
      if ((error as Error).name === 'TransactionCanceledException' && reasons[0]?.Code === 'ConditionalCheckFailed') {
        throw new Error(`journal of ${entry.clusterId} not written: execution ${entry.executionId} no longer holds the failover lock`);
      }
      throw error;
    }
  }
}
