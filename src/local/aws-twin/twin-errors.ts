/** Errors the twin's stand-ins throw, shaped as the AWS SDK v3 throws them (name, message, $metadata, $fault). */

export interface AwsError extends Error {
  readonly $fault: 'client' | 'server';
  readonly $metadata: { readonly httpStatusCode: number; readonly requestId: string };
  readonly $retryable?: { readonly throttling: boolean };
}

let requestSeq = 0;

export function awsError(name: string, message: string, status = 400, throttling = false): AwsError {
  const error = new Error(message) as Error & Record<string, unknown>;
  error.name = name;
  error.$fault = status >= 500 ? 'server' : 'client';
  error.$metadata = { httpStatusCode: status, requestId: `twin-${++requestSeq}` };
  if (throttling) error.$retryable = { throttling: true };
  return error as unknown as AwsError;
}

/** What each service calls throttling (the code its SDK reports once its own retries are exhausted). */
export const THROTTLING_ERROR: Readonly<Record<string, string>> = {
  rds: 'Throttling',
  route53: 'Throttling',
  ssm: 'ThrottlingException',
  dynamodb: 'ThrottlingException',
  sns: 'ThrottledException',
  secretsmanager: 'ThrottlingException',
  cloudwatch: 'Throttling',
  states: 'ThrottlingException',
  cloudformation: 'Throttling',
};
