#!/usr/bin/env node
// Copies the `latent` binary (LATENT_BIN, default ../build/latent) into
// bin/<platform>-<arch>/, where the extension looks for it and the .vsix carries it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const ext = path.resolve(here, '..');
const src = path.resolve(process.env.LATENT_BIN ?? path.join(ext, '..', 'build', 'latent'));
const exe = process.platform === 'win32' ? 'latent.exe' : 'latent';
const dest = path.join(ext, 'bin', `${process.platform}-${process.arch}`, exe);

if (!fs.existsSync(src)) {
  console.error(`copy-binary: no latent binary at ${src} (build it with scripts/setup, or set LATENT_BIN)`);
  process.exit(1);
}
fs.mkdirSync(path.dirname(dest), { recursive: true });
fs.copyFileSync(src, dest);
fs.chmodSync(dest, 0o755);
console.log(`copy-binary: ${src} -> ${path.relative(ext, dest)} (${(fs.statSync(dest).size / 1048576).toFixed(1)} MiB)`);
