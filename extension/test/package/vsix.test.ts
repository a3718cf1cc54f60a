// The .vsix (a zip): built by scripts/package.mjs as a user would, then listed. It must
// hold the bundles, the media and the platform's server binary (executable), and none of
// the sources, tests or node_modules.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as yauzl from 'yauzl';

const ext = path.resolve(__dirname, '../../..');
const binary = process.env.LATENT_BIN ?? path.join(ext, '..', 'build', 'latent');

interface Entry {
  name: string;
  size: number;
  mode: number;
}

function list(zip: string): Promise<Entry[]> {
  return new Promise((resolve, reject) => {
    yauzl.open(zip, { lazyEntries: true }, (err, z) => {
      if (err) return reject(err);
      const out: Entry[] = [];
      z.on('entry', (e: yauzl.Entry) => {
        out.push({ name: e.fileName, size: e.uncompressedSize, mode: (e.externalFileAttributes >>> 16) & 0o777 });
        z.readEntry();
      });
      z.on('end', () => resolve(out));
      z.on('error', reject);
      z.readEntry();
    });
  });
}

describe('the .vsix package', function () {
  let entries: Entry[] = [];
  const out = path.join(ext, 'test-output', 'latent-test.vsix');

  before(function () {
    if (!fs.existsSync(binary)) {
      if (process.env.LATENT_TEST_ALLOW_SKIP === '1') {
        console.log(`    (skipped: no server at ${binary}; LATENT_TEST_ALLOW_SKIP=1)`);
        this.skip();
      }
      throw new Error(`no latent binary at ${binary}: build it (scripts/setup) or set LATENT_BIN`);
    }
  });

  it('is built by scripts/package.mjs', async () => {
    fs.rmSync(out, { force: true });
    execFileSync(process.execPath, [path.join(ext, 'scripts/package.mjs'), '--out', out], { cwd: ext, stdio: 'pipe' });
    assert.ok(fs.existsSync(out));
    entries = await list(out);
  });

  it('holds the manifest, both bundles and the media', () => {
    const names = entries.map((e) => e.name);
    for (const f of [
      'extension.vsixmanifest',
      'extension/package.json',
      'extension/readme.md',
      'extension/dist/extension.js',
      'extension/dist/webview/chat.js',
      'extension/media/chat.css',
      'extension/media/latent.svg',
      'extension/media/chat.png',
      'extension/media/chat-agent.png',
    ])
      assert.ok(names.includes(f), `${f} missing from ${names.join(', ')}`);
  });

  it('holds the server binary for this platform, executable, the size of build/latent', () => {
    const bin = entries.find((e) => e.name === `extension/bin/${process.platform}-${process.arch}/latent`);
    assert.ok(bin, 'no binary in the package');
    assert.equal(bin.size, fs.statSync(binary).size);
    assert.equal(bin.mode & 0o111, 0o111, `mode ${bin.mode.toString(8)}`);
  });

  it('holds nothing else: no sources, tests, maps or node_modules', () => {
    const stray = entries.filter((e) =>
      /(^|\/)(src|test|out|node_modules|scripts)\/|\.ts$|\.map$|tsconfig|eslint|\.vsix$/.test(e.name),
    );
    assert.deepEqual(stray, []);
    assert.ok(entries.length <= 14, entries.map((e) => e.name).join(', '));
  });
});
