// Where the `latent` binary is: the `latent.path` setting, else the one bundled in the
// .vsix under bin/<platform>-<arch>/ (scripts/copy-binary.mjs puts it there).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expandHome } from './config';

export function bundledBinary(extensionPath: string, platform = process.platform, arch = process.arch): string {
  const exe = platform === 'win32' ? 'latent.exe' : 'latent';
  return path.join(extensionPath, 'bin', `${platform}-${arch}`, exe);
}

export type BinaryLookup = { path: string } | { error: string };

export function findBinary(
  setting: string,
  extensionPath: string,
  exists: (p: string) => boolean = (p) => fs.existsSync(p),
  platform = process.platform,
  arch = process.arch,
): BinaryLookup {
  if (setting) {
    const p = expandHome(setting);
    return exists(p) ? { path: p } : { error: `latent.path points to ${p}, which does not exist.` };
  }
  const p = bundledBinary(extensionPath, platform, arch);
  if (exists(p)) return { path: p };
  return {
    error: `This Latent package has no server binary for ${platform}-${arch}. Build Latent (scripts/setup) and set latent.path to build/latent.`,
  };
}
