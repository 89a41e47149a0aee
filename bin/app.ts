#!/usr/bin/env node
// CDK app entry: `npm run synth` / `npx cdk deploy [-c config=config/<env>.json]`.
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ConfigError, loadConfig } from '../lib/config.js';
import { FailoverStack, stackName } from '../lib/failover-stack.js';

const app = new App();
try {
  const config = loadConfig(app);
  new FailoverStack(app, stackName(config), { config });
} catch (e) {
  if (e instanceof ConfigError) {
    // Configuration errors are the operator's to fix: print them plainly, no stack trace.
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  }
  throw e;
}
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
