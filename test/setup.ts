// aws-local-stepfunctions 3 uses Promise.withResolvers (Node 22); Node 20 lacks it.
import { polyfillPromiseWithResolvers } from '../src/local/promise-with-resolvers.js';

polyfillPromiseWithResolvers();
