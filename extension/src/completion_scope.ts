// Where inline completion may run: never in the documents VS Code keeps for itself
// (the vscode-userdata: scheme) nor in files matching latent.completion.exclude — by
// default VS Code's own settings, keybindings, tasks and snippets, where ghost text from a
// code model only gets in the way (seen in the real editor's settings.json).
import * as vscode from 'vscode';

export interface ScopedDocument {
  uri: { scheme: string };
}

// `matches(glob)`: whether the document matches one exclude pattern (VS Code's glob
// semantics through languages.match in the editor).
export function completionAllowed(
  document: ScopedDocument,
  exclude: readonly string[],
  matches: (glob: string) => boolean,
): boolean {
  if (document.uri.scheme === 'vscode-userdata') return false;
  return !exclude.some((g) => matches(g));
}

export function completionAllowedIn(document: vscode.TextDocument, exclude: readonly string[]): boolean {
  return completionAllowed(document, exclude, (pattern) => vscode.languages.match({ pattern }, document) > 0);
}
