// latent/didFocus when the active editor changes, so the server warms (and pins) that
// file's prompt prefix before the user types in it. Debounced: flipping through tabs
// should not warm every file on the way.
import * as vscode from 'vscode';
import type { Ctx } from './ctx';

const kFocusDelayMs = 250;

export function activate(ctx: Ctx): vscode.Disposable[] {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const send = (editor: vscode.TextEditor | undefined) => {
    clearTimeout(timer);
    if (!editor || !['file', 'untitled'].includes(editor.document.uri.scheme)) return;
    timer = setTimeout(() => {
      const api = ctx.api;
      if (!api || ctx.state !== 'running') return;
      const p = editor.selection.active;
      api
        .didFocus({ textDocument: { uri: editor.document.uri.toString() }, position: { line: p.line, character: p.character } })
        .catch((e: unknown) => ctx.output.debug(`didFocus: ${String(e)}`));
    }, kFocusDelayMs);
  };
  return [
    vscode.window.onDidChangeActiveTextEditor(send),
    ctx.onDidChangeState((s) => {
      if (s === 'running') send(vscode.window.activeTextEditor);
    }),
    { dispose: () => clearTimeout(timer) },
  ];
}
