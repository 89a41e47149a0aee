/**
 * Error names are a contract with the state machine: Retry matches RunbookTransient, Catch sends everything
 * else to the failure path, and the Fail state shows name and message to the operator.
 */
export const RunbookErrorName = {
  InvalidInput: 'RunbookInvalidInput',
  Refused: 'RunbookRefused',
  Transient: 'RunbookTransient',
  Timeout: 'RunbookTimeout',
  StepFailed: 'RunbookStepFailed',
} as const;

/** Bad execution input or state: nothing was changed. */
export class RunbookInputError extends Error {
  override readonly name = RunbookErrorName.InvalidInput;
}

/** The runbook will not act (healthy primary, no candidate, another failover running...). */
export class RunbookRefusedError extends Error {
  override readonly name = RunbookErrorName.Refused;
}

/** Worth retrying as is: throttling, a connection reset, an eventually consistent read. */
export class RunbookTransientError extends Error {
  override readonly name = RunbookErrorName.Transient;
}

/** A wait loop ran past its configured limit. */
export class RunbookTimeoutError extends Error {
  override readonly name = RunbookErrorName.Timeout;
}

/** A step could not do its job (promotion failed, a worker's drain failed, verification failed). */
export class RunbookStepError extends Error {
  override readonly name = RunbookErrorName.StepFailed;
}

const THROTTLING_NAMES = new Set([
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'ProvisionedThroughputExceededException',
  'PriorRequestNotComplete',
  'ServiceUnavailable',
  'InternalFailure',
  'InternalServerError',
  'TransactionInProgressException',
]);

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND', 'ENETUNREACH']);

/**
 * Turns AWS SDK throttling / 5xx and network errors into RunbookTransientError (which is retried with backoff);
 * runbook errors and anything else pass through unchanged.
 */
export function classifyError(error: unknown): Error {
  if (!(error instanceof Error)) return new RunbookStepError(String(error));
  if (Object.values(RunbookErrorName).includes(error.name as never)) return error;
  const e = error as Error & { code?: string; $retryable?: unknown; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  if (THROTTLING_NAMES.has(e.name) || e.$retryable !== undefined || (status !== undefined && status >= 500) || (e.code && NETWORK_CODES.has(e.code))) {
    return new RunbookTransientError(`${e.name}: ${e.message}`);
  }
  return error;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
