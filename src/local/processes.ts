import { setTimeout as sleep } from 'node:timers/promises';
import { readdirSync, readFileSync } from 'node:fs';

/** True while a process with this pid exists (and is not a zombie we could see as one). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A zombie still answers kill(0); on Linux tell it apart via /proc.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return statField(stat, 3) !== 'Z';
  } catch {
    return true;
  }
}

/** Field n (1-based, as in proc(5)) of /proc/<pid>/stat; the command name may contain spaces and parens. */
function statField(stat: string, n: number): string | undefined {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return rest[n - 3];
}

/** Direct children of `pid` (Linux /proc); empty elsewhere. */
export function childPids(pid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const children: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(statField(stat, 4)) === pid) children.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return children;
}

export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/**
 * SIGKILL a postmaster and all its children, synchronously (usable in an 'exit' handler).
 * The postmaster is stopped first so it cannot fork a replacement between listing and killing.
 * Children call setsid(), so a process-group kill would miss them.
 */
export function killTreeSync(pid: number): void {
  if (!signal(pid, 'SIGSTOP')) return;
  const children = childPids(pid);
  signal(pid, 'SIGKILL');
  for (const child of children) signal(child, 'SIGKILL');
}

/** SIGSTOP a process and its children (itself first, so it cannot fork a new one meanwhile); returns every pid stopped. */
export function stopTree(pid: number): number[] {
  if (!signal(pid, 'SIGSTOP')) return [];
  const children = childPids(pid);
  for (const child of children) signal(child, 'SIGSTOP');
  return [pid, ...children];
}

/** SIGCONT the children of a process, then the process itself; returns every pid continued. */
export function continueTree(pid: number): number[] {
  const children = childPids(pid);
  for (const child of children) signal(child, 'SIGCONT');
  return signal(pid, 'SIGCONT') ? [...children, pid] : children;
}

export async function waitForExit(pids: readonly number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(isAlive)) {
    if (Date.now() > deadline) return false;
    await sleep(15);
  }
  return true;
}
