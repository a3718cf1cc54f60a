import * as assert from 'node:assert/strict';
import { classifyChange, expandHome, firstRunProblem, kDefaults, readSettings, serverSettings } from '../../src/config';

const from = (o: Record<string, unknown>) => (k: string) => o[k];

describe('settings', () => {
  it('uses the defaults when nothing is set', () => {
    assert.deepEqual(readSettings(from({})), kDefaults);
    assert.equal(kDefaults.debounceMs, 120);
  });

  it('clamps numbers and ignores wrong types', () => {
    const s = readSettings(
      from({
        backend: 'cloud',
        'completion.debounceMs': -5,
        'completion.maxTokens': 1e9,
        'completion.maxTimeMs': -1,
        'completion.latencyMs': 1e12,
        'chat.maxTokens': 'many',
        cacheMb: 2,
        'index.exclude': ['a/**', 3, null, 'b'],
        'completion.enabled': 'no',
        'remote.fimApi': 'telepathy',
        modelPath: '  /m.gguf ',
      }),
    );
    assert.equal(s.backend, 'local');
    assert.equal(s.debounceMs, 0);
    assert.equal(s.completionMaxTokens, 1024);
    assert.equal(s.completionMaxTimeMs, 0);
    assert.equal(s.completionLatencyMs, 600000);
    assert.equal(s.chatMaxTokens, 512);
    assert.equal(s.cacheMb, 16);
    assert.deepEqual(s.indexExclude, ['a/**', 'b']);
    assert.equal(s.completionEnabled, true);
    assert.equal(s.modelPath, '/m.gguf');
    assert.equal(s.remoteFimApi, 'completions');
  });

  it('builds the JSON agent/server.cpp parse_settings reads', () => {
    const s = readSettings(
      from({
        backend: 'remote',
        modelPath: '~/models/lite.gguf',
        'remote.url': 'http://127.0.0.1:8000',
        'remote.model': 'deepseek-coder',
        'completion.maxTokens': 32,
        'completion.maxTimeMs': 400,
        'completion.latencyMs': 0,
        'index.enabled': false,
        'index.exclude': ['third_party/**'],
        cacheMb: 2048,
        engine: 'cuda',
        'remote.fimApi': 'infill',
        diskCacheMb: 0,
      }),
    );
    const j = serverSettings(s, { apiKey: 'sk-secret', indexDb: '/storage/index.sqlite' });
    assert.deepEqual(j, {
      backend: 'remote',
      model: expandHome('~/models/lite.gguf'),
      engine: 'cuda',
      threads: 0,
      remote: { url: 'http://127.0.0.1:8000', model: 'deepseek-coder', apiKey: 'sk-secret', fimApi: 'infill' },
      completion: { maxTokens: 32, maxTimeMs: 400, latencyMs: 0 },
      chat: { maxTokens: 512, contextTokens: 4096 },
      agent: { maxSteps: 16 },
      index: { enabled: false, exclude: ['third_party/**'], db: '/storage/index.sqlite' },
      cacheMb: 2048,
      diskCache: { mb: 0 },
      nextEdit: { enabled: true, model: true, regionLines: 16 },
    });
    assert.ok(!JSON.stringify(serverSettings(s)).includes('sk-secret'));
    assert.equal(readSettings(from({ 'remote.fimApi': 'raw' })).remoteFimApi, 'raw');
  });

  it('reads the next edit settings: clamped, and all but the pause sent to the server', () => {
    const s = readSettings(
      from({ 'nextEdit.enabled': false, 'nextEdit.model': 'yes', 'nextEdit.regionLines': 1000, 'nextEdit.debounceMs': -3 }),
    );
    assert.equal(s.nextEditEnabled, false);
    assert.equal(s.nextEditModel, true);
    assert.equal(s.nextEditRegionLines, 64);
    assert.equal(s.nextEditDebounceMs, 0);
    assert.equal(readSettings(from({ 'nextEdit.regionLines': 2 })).nextEditRegionLines, 4);
    assert.equal(readSettings(from({})).nextEditDebounceMs, 300);
    assert.deepEqual(serverSettings(s).nextEdit, { enabled: false, model: true, regionLines: 64 });
    const only = (k: string) => (x: string) => k === x || k.startsWith(x + '.');
    assert.equal(classifyChange(only('latent.nextEdit.debounceMs')), 'client');
    assert.equal(classifyChange(only('latent.nextEdit.enabled')), 'server');
    assert.equal(classifyChange(only('latent.nextEdit.model')), 'server');
    assert.equal(classifyChange(only('latent.nextEdit.regionLines')), 'server');
  });

  it('expands ~ only at the start', () => {
    assert.equal(expandHome('~/a', '/home/u'), '/home/u/a');
    assert.equal(expandHome('~', '/home/u'), '/home/u');
    assert.equal(expandHome('/x/~/a', '/home/u'), '/x/~/a');
  });

  it('classifies a configuration change', () => {
    const only = (...keys: string[]) => (s: string) => keys.some((k) => k === s || k.startsWith(s + '.'));
    assert.equal(classifyChange(only('editor.fontSize')), 'none');
    assert.equal(classifyChange(only('latent.completion.debounceMs')), 'client');
    assert.equal(classifyChange(only('latent.completion.enabled')), 'client');
    assert.equal(classifyChange(only('latent.completion.maxTokens')), 'server');
    assert.equal(classifyChange(only('latent.completion.maxTimeMs')), 'server');
    assert.equal(classifyChange(only('latent.remote.url')), 'server');
    assert.equal(classifyChange(only('latent.path')), 'restart');
  });

  it('says what the first run needs', () => {
    assert.match(firstRunProblem(kDefaults)!, /needs a model/);
    assert.equal(firstRunProblem({ ...kDefaults, modelPath: '/m.gguf' }), undefined);
    assert.match(firstRunProblem({ ...kDefaults, backend: 'remote' })!, /latent.remote.url/);
    assert.equal(firstRunProblem({ ...kDefaults, backend: 'remote', remoteUrl: 'http://x' }), undefined);
  });
});
