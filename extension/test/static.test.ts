// The checks that are not behaviour: the webview's types (its own tsconfig, DOM library)
// and eslint over everything. The extension's own types are checked when the tests compile.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { ESLint } from 'eslint';

const ext = path.resolve(__dirname, '../..');

function run(bin: string, args: string[]): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [require.resolve(bin), ...args], { cwd: ext, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('static checks', function () {
  this.timeout(120000);

  it('the webview script type-checks (strict, DOM)', () => {
    const r = run('typescript/bin/tsc', ['-p', 'src/webview', '--noEmit']);
    assert.equal(r.status, 0, r.output);
  });

  it('eslint (typescript-eslint, type-aware) reports nothing', async () => {
    const eslint = new ESLint({ cwd: ext });
    const results = await eslint.lintFiles(['src', 'test']);
    const problems = results.reduce((n, r) => n + r.errorCount + r.warningCount, 0);
    const text = await (await eslint.loadFormatter('stylish')).format(results);
    assert.equal(problems, 0, String(text));
  });
});
