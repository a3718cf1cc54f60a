// Mocha's --require: makes `require('vscode')` load the mock (test/vscode-mock.ts) and
// `require('vscode-languageclient/node')` its stand-in (test/languageclient-mock.ts).
import Module from 'node:module';

type Resolve = (request: string, ...rest: unknown[]) => string;
const m = Module as unknown as { _resolveFilename: Resolve };
const original = m._resolveFilename;
m._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]): string {
  if (request === 'vscode') return require.resolve('./vscode-mock');
  if (request === 'vscode-languageclient/node') return require.resolve('./languageclient-mock');
  return original.call(this, request, ...rest);
};
