// The server's stderr at each line's own level in the output channel, the protocol trace
// driven by latent.trace.server alone, and the setupGuide capability.
import * as assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { Ctx } from '../../src/ctx';
import { kServerStdio, logServerLine, parseServerLine, TraceChannel } from '../../src/server_log';
import { LanguageClient } from '../languageclient-mock';
import { LogLevel, mock, Uri } from '../vscode-mock';

function sink() {
  const got: string[] = [];
  const at = (l: string) => (s: string) => void got.push(`${l}: ${s}`);
  return { got, trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

describe('server log levels', () => {
  beforeEach(() => mock.reset());

  it('reads the level of each line latent lsp writes', () => {
    assert.deepEqual(parseServerLine('[12:00:01.234] [info] latent lsp 0.1.0 started (pid 7)'), {
      level: 'info',
      text: 'latent lsp 0.1.0 started (pid 7)',
    });
    assert.deepEqual(parseServerLine('[23:59:59.999] [warning] settings: threads must be a number'), {
      level: 'warn',
      text: 'settings: threads must be a number',
    });
    assert.equal(parseServerLine('[00:00:00.000] [error] backend: not a GGUF file').level, 'error');
    // Not the server's form (a crash report, a sanitizer): an error, as it is.
    assert.deepEqual(parseServerLine('terminate called after throwing an instance of std::bad_alloc'), {
      level: 'error',
      text: 'terminate called after throwing an instance of std::bad_alloc',
    });
    assert.equal(parseServerLine('[12:00:01.234] [loud] x').level, 'error');
  });

  it('routes stderr lines to the channel at their level, skipping blank ones', async () => {
    const out = sink();
    const stderr = new PassThrough();
    kServerStdio.stderr(stderr, out as never);
    stderr.write('[12:00:01.234] [info] latent lsp 0.1.0 started\n[12:00:01.300] [warn');
    stderr.write('ing] remote: timed out; retrying\n\n');
    stderr.end('Segmentation fault\n');
    await new Promise((r) => stderr.on('end', r));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(out.got, [
      'info: latent lsp 0.1.0 started',
      'warn: remote: timed out; retrying',
      'error: Segmentation fault',
    ]);
    const one = sink();
    logServerLine(one, '   ');
    assert.deepEqual(one.got, []);
  });

  it('keeps its trace channel at Trace, so latent.trace.server alone decides', () => {
    const t = new TraceChannel('Latent Trace');
    assert.equal(t.logLevel, LogLevel.Trace);
    t.trace('Sending request initialize - (0).');
    t.warn('w');
    const lines = mock.channels.get('Latent Trace')!.lines;
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT[\d:.]+Z \[trace\] Sending request initialize - \(0\)\.$/);
    assert.match(lines[1]!, /\[warning\] w$/);
  });

  it('the client gets the trace channel, the stderr levels and the setupGuide capability', async () => {
    LanguageClient.instances = [];
    mock.config['latent.path'] = process.execPath;
    const ctx = new Ctx({ extensionPath: '/ext', storageUri: Uri.file('/s'), secrets: { get: () => Promise.resolve(undefined) } } as never);
    await ctx.start();
    const c = LanguageClient.instances[0]!;
    assert.equal(c.clientOptions.traceOutputChannel, ctx.trace);
    assert.equal(c.clientOptions.stdioOptions, kServerStdio);
    assert.deepEqual(c.capabilities, { experimental: { latent: { setupGuide: true } } });
    await ctx.stop();
  });
});
