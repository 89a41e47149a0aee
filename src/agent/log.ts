export type LogLevel = 'info' | 'warn' | 'error';

/** Structured agent log: one event per call, never a secret in `fields`. */
export type AgentLog = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;

export const silentLog: AgentLog = () => undefined;

/** JSON lines on a stream (the daemon logs to stderr; journald/CloudWatch agent pick them up). */
export function jsonLineLog(stream: NodeJS.WritableStream = process.stderr): AgentLog {
  return (level, message, fields) => {
    stream.write(`${JSON.stringify({ time: new Date().toISOString(), level, message, ...fields })}\n`);
  };
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' && code !== '' ? `${error.message} (${code})` : error.message;
  }
  return String(error);
}
