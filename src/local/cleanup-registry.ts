/**
 * Last-resort clean-up of running local clusters when the process ends without calling stop():
 * on 'exit' (normal end, process.exit, uncaught error) and on SIGINT/SIGTERM. Must be synchronous.
 */
export interface SyncCleanable {
  cleanupSync(): void;
}

const live = new Set<SyncCleanable>();
let installed = false;

function cleanAll(): void {
  for (const cluster of [...live]) {
    try {
      cluster.cleanupSync();
    } catch {
      // keep cleaning the others
    }
    live.delete(cluster);
  }
}

function onSignal(sig: NodeJS.Signals): void {
  cleanAll();
  // If nobody else handles the signal, do what the default handler would have done: die by it.
  if (process.listenerCount(sig) === 1) {
    process.removeListener(sig, onSignal);
    process.kill(process.pid, sig);
  }
}

export function registerForCleanup(cluster: SyncCleanable): void {
  live.add(cluster);
  if (installed) return;
  installed = true;
  process.on('exit', cleanAll);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

export function unregisterForCleanup(cluster: SyncCleanable): void {
  live.delete(cluster);
}
