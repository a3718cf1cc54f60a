// latent/didFocus when the active editor changes, so the server warms (and pins) that
// file's prompt prefix before the user types in it, and again when the cursor jumps
// within it (a click, go to definition, a search result, a page away): the prompt the
// next completion needs is then mostly computed before the first keystroke. Debounced:
// flipping through tabs or clicking around should not warm every place on the way; the
// cursor moving as the user types does not count (each keystroke asks anyway).
import * as vscode from 'vscode';
import type { Ctx } from './ctx';

const kFocusDelayMs = 250;
// A keyboard move of at least this many lines from the place last warmed is a jump.
export const kJumpLines = 8;

export function activate(ctx: Ctx, delayMs = kFocusDelayMs): vscode.Disposable[] {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let last: { uri: string; line: number } | undefined; // the place last warmed
  const send = (editor: vscode.TextEditor | undefined) => {
    clearTimeout(timer);
    if (!editor || !['file', 'untitled'].includes(editor.document.uri.scheme)) return;
    timer = setTimeout(() => {
      const api = ctx.api;
      if (!api || ctx.state !== 'running') return;
      const p = editor.selection.active;
      const uri = editor.document.uri.toString();
      last = { uri, line: p.line };
      api
        .didFocus({ textDocument: { uri }, position: { line: p.line, character: p.character } })
        .catch((e: unknown) => ctx.output.debug(`didFocus: ${String(e)}`));
    }, delayMs);
  };
  const moved = (e: vscode.TextEditorSelectionChangeEvent) => {
    if (e.textEditor !== vscode.window.activeTextEditor) return;
    const line = e.selections[0]?.active.line;
    if (line === undefined) return;
    const here = last && last.uri === e.textEditor.document.uri.toString();
    if (here && last!.line === line) return;
    const jump =
      e.kind === vscode.TextEditorSelectionChangeKind.Mouse ||
      e.kind === vscode.TextEditorSelectionChangeKind.Command ||
      !here ||
      Math.abs(line - last!.line) >= kJumpLines;
    if (jump) send(e.textEditor);
  };
  return [
    vscode.window.onDidChangeActiveTextEditor(send),
    vscode.window.onDidChangeTextEditorSelection(moved),
    ctx.onDidChangeState((s) => {
      if (s === 'running') send(vscode.window.activeTextEditor);
    }),
    { dispose: () => clearTimeout(timer) },
  ];
}
