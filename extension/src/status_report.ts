// "Latent: Show Status" shows its report in a read-only document of its own scheme: a
// dirty Untitled document asked to be saved when closed, and its edits reached the
// server as changes to a document that was never opened there. Setting new text fires
// onDidChange, so an open report refreshes in place.
import * as vscode from 'vscode';

export const kStatusScheme = 'latent-status';
// A function, not a constant: the bundle must load before `vscode` is usable (tests).
export const statusUri = (): vscode.Uri => vscode.Uri.from({ scheme: kStatusScheme, path: '/Latent Status.json' });

export class StatusReport implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private text = '{}\n';
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private readonly registration = vscode.workspace.registerTextDocumentContentProvider(kStatusScheme, this);

  set(text: string): void {
    this.text = text;
    this.changed.fire(statusUri());
  }

  provideTextDocumentContent(): string {
    return this.text;
  }

  dispose(): void {
    this.registration.dispose();
    this.changed.dispose();
  }
}
