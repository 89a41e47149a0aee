/**
 * `npx cdk synth|diff|deploy` right after `npm ci` (issue 11, defect 6): the worker agent asset fetches the workers'
 * Node.js 22 itself when it is missing (npm ci of tools/worker-node, offline once the packages are in npm's cache),
 * instead of failing with "run `npm run worker-node` before synth". Checked on a copy of tools/worker-node's
 * package files with nothing installed, as on a fresh clone; the fetch is the real npm, from its cache.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { agentAssetBundling, AGENT_BUNDLE_NODE, ensureWorkerNode, WORKER_NODE_DIR } from '../../../lib/agent-bundle.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'worker-node-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('the agent asset bundles on a fresh clone: the missing Node.js 22 is fetched, then shipped', () => {
  const tools = path.join(dir, 'tools');
  mkdirSync(tools);
  for (const f of ['package.json', 'package-lock.json']) copyFileSync(path.join(WORKER_NODE_DIR, f), path.join(tools, f));
  const asset = path.join(dir, 'asset');
  mkdirSync(asset);
  expect(agentAssetBundling('x64', undefined, tools).local!.tryBundle(asset, {} as never)).toBe(true);
  const shipped = spawnSync(path.join(asset, AGENT_BUNDLE_NODE), ['--version'], { encoding: 'utf8' });
  expect(shipped.stdout.trim()).toMatch(/^v22\./);
  // Already there: nothing is fetched again (the binary is returned as it is).
  expect(existsSync(ensureWorkerNode('x64', tools))).toBe(true);
});

it('a fetch that cannot succeed says what failed and how to retry', () => {
  const tools = path.join(dir, 'broken');
  mkdirSync(tools);
  expect(() => ensureWorkerNode('x64', tools)).toThrow(/Node\.js 22 for the workers could not be installed into .*broken.*npm ci --prefix .*broken/s);
});
