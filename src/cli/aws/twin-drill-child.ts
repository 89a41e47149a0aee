/**
 * The twin drill's own process (runTwinDrillProcess starts it with NODE_EXTRA_CA_CERTS naming the twin's CA):
 * reads the spec file named by TWIN_DRILL_SPEC, runs the drill, sends progress, the report or the error over IPC.
 */
import { readFileSync } from 'node:fs';
import { runTwinDrill, type TwinDrillSpec } from './twin-drill.js';

const file = process.env.TWIN_DRILL_SPEC;
if (!file || !process.send) {
  process.stderr.write('twin-drill-child: started by runTwinDrillProcess only (TWIN_DRILL_SPEC and an IPC channel)\n');
  process.exit(2);
}
const send = (m: unknown) => new Promise<void>((resolve) => process.send!(m, () => resolve()));
const spec = JSON.parse(readFileSync(file, 'utf8')) as TwinDrillSpec;
runTwinDrill({ ...spec, log: (line) => void send({ type: 'log', line }) }).then(
  async (report) => {
    await send({ type: 'report', report });
    process.exit(0);
  },
  async (error: Error) => {
    await send({ type: 'error', message: error.stack ?? error.message });
    process.exit(1);
  },
);
