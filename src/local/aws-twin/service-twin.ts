/** The shape every stand-in of the twin has: its operations, and what IAM authorizes for each call. */
import type { PolicyDocument } from './iam-policies.js';

/** One authorization AWS makes for a call: action, resource ARN, condition context (and the resource's own policy). */
export interface TwinAuthorization {
  readonly action: string;
  readonly resource: string;
  readonly context?: Readonly<Record<string, string | string[]>>;
  /** A KMS key policy and the like: it must allow too (or delegate to the account). */
  readonly resourcePolicy?: PolicyDocument;
}

export interface ServiceTwin {
  /** The IAM service prefix (rds, ssm, dynamodb...). */
  readonly service: string;
  /** Operation name (the SDK command without "Command") -> implementation. */
  handlers(): Record<string, (input: any) => Promise<unknown>>;
  /** Evaluated before the call runs (tags as they were when the request arrived). */
  authorizations(operation: string, input: any): TwinAuthorization[];
}
