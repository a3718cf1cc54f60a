// latent/didFocus: the active file is warmed, and again when the cursor jumps in it, not
// while the user types (the mocked `vscode` module plays the editor's events).
import * as assert from 'node:assert/strict';
import type { Ctx } from '../../src/ctx';
import * as focus from '../../src/focus';
import { Disposable, mock, Selection, TextDocument, TextEditorSelectionChangeKind, Uri } from '../vscode-mock';

const kDelay = 5;
const settle = () => new Promise((r) => setTimeout(r, kDelay * 6));

describe('focus', () => {
  it('warms the active file, then only jumps of the cursor: clicks, commands, pages away', async () => {
    mock.reset();
    const sent: string[] = [];
    const ctx = {
      api: {
        didFocus: (p: { textDocument: { uri: string }; position: { line: number } }) => {
          sent.push(`${p.textDocument.uri}:${p.position.line}`);
          return Promise.resolve();
        },
      },
      state: 'running',
      onDidChangeState: () => new Disposable(),
      output: { debug: () => undefined },
    } as unknown as Ctx;
    const subs = focus.activate(ctx, kDelay);
    const doc = new TextDocument(Uri.file('/w/a.ts'), 'x\n'.repeat(100));
    const editor = { document: doc, selection: new Selection(3, 0, 3, 0) };
    mock.activeTextEditor = editor as never;
    const move = (line: number, kind?: TextEditorSelectionChangeKind) => {
      editor.selection = new Selection(line, 2, line, 2);
      mock.selectionChanged.fire({ textEditor: editor, selections: [editor.selection], kind });
    };
    const uri = doc.uri.toString();

    mock.activeEditorChanged.fire(editor);
    await settle();
    assert.deepEqual(sent, [`${uri}:3`]);
    // Typing: the cursor moves along the line and down a few lines — nothing sent.
    for (const line of [3, 4, 5, 6, 7]) move(line);
    await settle();
    assert.deepEqual(sent, [`${uri}:3`]);
    // A click elsewhere, then a command (go to definition): each warmed once settled.
    move(40, TextEditorSelectionChangeKind.Mouse);
    await settle();
    move(70, TextEditorSelectionChangeKind.Command);
    await settle();
    assert.deepEqual(sent, [`${uri}:3`, `${uri}:40`, `${uri}:70`]);
    // Page down with the keyboard (8 lines or more) is a jump; a quick run of clicks
    // sends only the last place.
    move(80, TextEditorSelectionChangeKind.Keyboard);
    await settle();
    move(10, TextEditorSelectionChangeKind.Mouse);
    move(20, TextEditorSelectionChangeKind.Mouse);
    move(30, TextEditorSelectionChangeKind.Mouse);
    await settle();
    assert.deepEqual(sent, [`${uri}:3`, `${uri}:40`, `${uri}:70`, `${uri}:80`, `${uri}:30`]);
    // A click on the line last warmed, or a move in another editor: nothing.
    move(30, TextEditorSelectionChangeKind.Mouse);
    mock.selectionChanged.fire({
      textEditor: { document: doc },
      selections: [new Selection(90, 0, 90, 0)],
      kind: TextEditorSelectionChangeKind.Mouse,
    });
    await settle();
    assert.equal(sent.length, 5);
    subs.forEach((d) => d.dispose());
  });
});
