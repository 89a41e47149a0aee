/**
 * `npm run bench`: every benchmark under bench/, one after the other (they measure side by side within
 * their own run; running two at once on a 2-core machine would only measure each other).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';

const benches = readdirSync(__dirname)
  .filter((f) => f.endsWith('.bench.ts'))
  .sort();
if (benches.length === 0) {
  console.error('no benchmarks found under bench/ (*.bench.ts)');
  process.exit(1);
}
let failed = 0;
for (const file of benches) {
  console.log(`\n=== ${file} ===`);
  const run = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, file)], { stdio: 'inherit' });
  if (run.status !== 0) {
    failed += 1;
    console.error(`${file} exited with ${run.status ?? run.signal}`);
  }
}
process.exit(failed === 0 ? 0 : 1);
