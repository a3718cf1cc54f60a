#!/usr/bin/env node
// Builds the .vsix: bundles (esbuild.mjs), the platform binary (copy-binary.mjs), then
// `vsce package`. Writes latent-<version>.vsix here unless given `--out FILE`.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const ext = path.resolve(here, '..');
const require = createRequire(import.meta.url);
const { version } = JSON.parse(fs.readFileSync(path.join(ext, 'package.json'), 'utf8'));
const i = process.argv.indexOf('--out');
const out = i > 0 ? path.resolve(process.argv[i + 1]) : path.join(ext, `latent-${version}.vsix`);

const run = (file, args) => execFileSync(process.execPath, [file, ...args], { cwd: ext, stdio: 'inherit' });
run(path.join(ext, 'esbuild.mjs'), []);
run(path.join(here, 'copy-binary.mjs'), []);
fs.mkdirSync(path.dirname(out), { recursive: true });
// The bundles hold every dependency: no node_modules in the package.
run(require.resolve('@vscode/vsce/vsce'), [
  'package',
  '--no-dependencies',
  '--allow-missing-repository',
  '--skip-license',
  '--no-rewrite-relative-links', // the README's screenshot is inside the package
  '--out',
  out,
]);
