import * as assert from 'node:assert/strict';
import { completionAllowed } from '../../src/completion_scope';
import { kDefaults, readSettings } from '../../src/config';

describe('where inline completion runs', () => {
  const doc = (scheme: string) => ({ uri: { scheme } });

  it('never in documents VS Code keeps for itself, nor in excluded files', () => {
    assert.equal(completionAllowed(doc('file'), [], () => true), true, 'nothing excluded');
    assert.equal(completionAllowed(doc('vscode-userdata'), [], () => false), false);
    const asked: string[] = [];
    assert.equal(
      completionAllowed(doc('file'), ['**/a', '**/b'], (g) => (asked.push(g), g === '**/b')),
      false,
    );
    assert.deepEqual(asked, ['**/a', '**/b']);
    assert.equal(completionAllowed(doc('file'), ['**/a'], () => false), true);
  });

  it('excludes VS Code settings and keybindings by default; the setting replaces the list', () => {
    assert.ok(kDefaults.completionExclude.includes('**/User/settings.json'));
    assert.ok(kDefaults.completionExclude.includes('**/User/keybindings.json'));
    assert.ok(kDefaults.completionExclude.includes('**/.vscode/*.json'));
    assert.deepEqual(readSettings(() => undefined).completionExclude, kDefaults.completionExclude);
    assert.deepEqual(readSettings((k) => (k === 'completion.exclude' ? ['x/**', 3, ''] : undefined)).completionExclude, ['x/**']);
    assert.deepEqual(readSettings((k) => (k === 'completion.exclude' ? [] : undefined)).completionExclude, []);
  });
});
