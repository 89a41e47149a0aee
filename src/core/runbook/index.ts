export * from './state.js';
export * from './plan-types.js';
export * from './planner.js';
export * from './events.js';
export * from './errors.js';
export * from './env.js';
export { runAction, isRunbookAction, RUNBOOK_ACTIONS, type RunbookAction } from './actions.js';
export { runRunbook, type RunRunbookOptions, type RunbookResult } from './run-runbook.js';
export { recoveryAdvice, currentStep } from './steps/finish.js';
