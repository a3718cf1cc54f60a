// Reviewing a latent/edit answer: the proposal opens in a diff editor against the
// document (right side served by a read-only content provider), with Accept / Reject in
// the editor's title bar and in the status bar while it is pending (not a notification:
// VS Code cannot take one back, so it outlived an Accept from the title bar). Accept applies the server's edit only if
// the document has not changed since the request; anything else would misplace it.
import * as vscode from 'vscode';
import { applyTextEdits } from './api';
import type { EditResult, TextEdit } from './protocol';

export const kProposalScheme = 'latent-proposal';

interface Pending {
  target: vscode.Uri;
  version: number;
  edits: TextEdit[];
  proposal: vscode.Uri;
}

export class EditReview implements vscode.Disposable, vscode.TextDocumentContentProvider {
  private readonly texts = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private pending: Pending | undefined;
  private seq = 0;
  private readonly subs: vscode.Disposable[];
  private readonly acceptItem: vscode.StatusBarItem;
  private readonly rejectItem: vscode.StatusBarItem;

  constructor() {
    this.acceptItem = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 1000);
    this.acceptItem.name = 'Latent: Accept Edit';
    this.acceptItem.text = '$(check) Accept Edit';
    this.acceptItem.command = 'latent.acceptEdit';
    this.rejectItem = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 999);
    this.rejectItem.name = 'Latent: Reject Edit';
    this.rejectItem.text = '$(close) Reject';
    this.rejectItem.command = 'latent.rejectEdit';
    this.subs = [
      this.acceptItem,
      this.rejectItem,
      vscode.workspace.registerTextDocumentContentProvider(kProposalScheme, this),
      vscode.commands.registerCommand('latent.acceptEdit', () => this.accept()),
      vscode.commands.registerCommand('latent.rejectEdit', () => this.reject()),
    ];
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? '';
  }

  get reviewing(): boolean {
    return this.pending !== undefined;
  }

  // Shows the diff for `result` against `document` (at `version`, the version the request
  // was made from). Returns false when the result holds no change for the document; the
  // user's Accept or Reject comes later, through accept() / reject().
  async propose(document: vscode.TextDocument, version: number, result: EditResult): Promise<boolean> {
    const edits = result.edit?.changes?.[document.uri.toString()] ?? [];
    if (!edits.length) return false;
    if (this.pending) await this.reject();
    const proposal = vscode.Uri.from({
      scheme: kProposalScheme,
      path: document.uri.path,
      query: String(++this.seq),
    });
    const proposed = applyTextEdits(document.getText(), edits);
    this.texts.set(proposal.toString(), proposed);
    this.changed.fire(proposal);
    this.pending = { target: document.uri, version, edits, proposal };
    await vscode.commands.executeCommand('setContext', 'latent.reviewingEdit', true);
    const name = document.uri.path.split('/').pop() ?? 'document';
    await vscode.commands.executeCommand('vscode.diff', document.uri, proposal, `${name} ↔ Latent's edit`, {
      preview: true,
    });
    this.acceptItem.tooltip = `Apply Latent's edit to ${name}`;
    this.rejectItem.tooltip = `Discard Latent's edit to ${name}`;
    this.acceptItem.show();
    this.rejectItem.show();
    return true;
  }

  async accept(): Promise<boolean> {
    const p = this.pending;
    if (!p) return false;
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === p.target.toString());
    if (!doc || doc.version !== p.version) {
      void vscode.window.showWarningMessage('Latent: the document changed since the edit was made; run the command again.');
      await this.finish(p);
      return false;
    }
    const we = new vscode.WorkspaceEdit();
    for (const e of p.edits) {
      we.replace(
        p.target,
        new vscode.Range(e.range.start.line, e.range.start.character, e.range.end.line, e.range.end.character),
        e.newText,
      );
    }
    const ok = await vscode.workspace.applyEdit(we);
    await this.finish(p);
    if (!ok) void vscode.window.showErrorMessage('Latent: VS Code did not apply the edit.');
    return ok;
  }

  async reject(): Promise<void> {
    if (this.pending) await this.finish(this.pending);
  }

  private async finish(p: Pending): Promise<void> {
    this.pending = undefined;
    this.acceptItem.hide();
    this.rejectItem.hide();
    await vscode.commands.executeCommand('setContext', 'latent.reviewingEdit', false);
    // Close the diff tab of this proposal, wherever it is.
    for (const group of vscode.window.tabGroups.all) {
      for (const tab of group.tabs) {
        const input = tab.input as { modified?: vscode.Uri } | undefined;
        if (input?.modified?.toString() === p.proposal.toString()) await vscode.window.tabGroups.close(tab);
      }
    }
    this.texts.delete(p.proposal.toString());
  }

  dispose(): void {
    for (const d of this.subs) d.dispose();
    this.changed.dispose();
  }
}
