// The server's stderr in the output channel at each line's own level, and the protocol
// trace in a channel of its own.
//
// `latent lsp` writes "[12:00:01.234] [info] text" (agent/cli_lsp.cpp, Logger); the
// language client's default shows every stderr line as an error. A line in no such form
// (a crash report from the C++ runtime, a sanitizer) stays an error.
//
// The client traces messages only while its trace channel's log level is Trace, which
// the user sets in the Output view, not in settings: the channel here is always at Trace,
// so `latent.trace.server` alone decides (off | messages | verbose).
import * as readline from 'node:readline';
import type { Readable } from 'node:stream';
import * as vscode from 'vscode';

export type ServerLogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export interface ServerLine {
  level: ServerLogLevel;
  text: string;
}

const kLine = /^\[\d\d:\d\d:\d\d\.\d{3}\] \[(trace|debug|info|warning|error)\] (.*)$/;

export function parseServerLine(line: string): ServerLine {
  const m = kLine.exec(line);
  if (!m) return { level: 'error', text: line };
  const level = m[1] === 'warning' ? 'warn' : (m[1] as ServerLogLevel);
  return { level, text: m[2]! };
}

type LevelSink = Pick<vscode.LogOutputChannel, ServerLogLevel>;

export function logServerLine(out: LevelSink, line: string): void {
  if (!line.trim()) return;
  const { level, text } = parseServerLine(line);
  out[level](text);
}

// For LanguageClientOptions.stdioOptions (stdout is the protocol with the stdio
// transport; the handler is there for the others).
export const kServerStdio = {
  stdout: (input: Readable, out: vscode.LogOutputChannel): void => {
    readline.createInterface({ input, crlfDelay: Infinity, terminal: false }).on('line', (l) => out.info(l));
  },
  stderr: (input: Readable, out: vscode.LogOutputChannel): void => {
    readline.createInterface({ input, crlfDelay: Infinity, terminal: false }).on('line', (l) => logServerLine(out, l));
  },
};

// A LogOutputChannel that is always at Trace level, writing to a plain output channel.
export class TraceChannel implements vscode.LogOutputChannel {
  readonly logLevel = vscode.LogLevel.Trace;
  private readonly levelEmitter = new vscode.EventEmitter<vscode.LogLevel>();
  readonly onDidChangeLogLevel = this.levelEmitter.event;
  private readonly out: vscode.OutputChannel;

  constructor(readonly name: string) {
    this.out = vscode.window.createOutputChannel(name);
  }

  private write(level: string, message: string | Error, args: unknown[]): void {
    const text = message instanceof Error ? (message.stack ?? message.message) : message;
    const extra = args.length ? ' ' + args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ') : '';
    this.out.appendLine(`${new Date().toISOString()} [${level}] ${text}${extra}`);
  }

  trace(message: string, ...args: unknown[]): void {
    this.write('trace', message, args);
  }
  debug(message: string, ...args: unknown[]): void {
    this.write('debug', message, args);
  }
  info(message: string, ...args: unknown[]): void {
    this.write('info', message, args);
  }
  warn(message: string, ...args: unknown[]): void {
    this.write('warning', message, args);
  }
  error(error: string | Error, ...args: unknown[]): void {
    this.write('error', error, args);
  }
  append(value: string): void {
    this.out.append(value);
  }
  appendLine(value: string): void {
    this.out.appendLine(value);
  }
  replace(value: string): void {
    this.out.replace(value);
  }
  clear(): void {
    this.out.clear();
  }
  show(columnOrPreserveFocus?: vscode.ViewColumn | boolean, preserveFocus?: boolean): void {
    if (typeof columnOrPreserveFocus === 'boolean') this.out.show(columnOrPreserveFocus);
    else this.out.show(preserveFocus);
  }
  hide(): void {
    this.out.hide();
  }
  dispose(): void {
    this.levelEmitter.dispose();
    this.out.dispose();
  }
}
