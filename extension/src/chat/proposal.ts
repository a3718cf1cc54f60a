// Reviewing agent mode's proposed multi-file edit: each file's diff in VS Code's diff
// editor (the proposed text served read-only under the latent-proposed scheme), accept or
// reject per file or all at once. Nothing is written before the user accepts, and a file
// that changed since the proposal is never overwritten: accepting it is refused.
// Not the single-range Edit Selection review (review.ts).
import * as vscode from 'vscode';
import type { Proposal, ProposedFile } from '../protocol';
import type { FileState, ReviewFile, ReviewView } from '../shared/messages';
import { kMaxFiles } from '../shared/messages';

export const kProposedScheme = 'latent-proposed';

// Proposals kept for review; an older one's buttons say it is gone.
const kMaxLive = 32;

interface Entry {
  file: ProposedFile;
  state: FileState;
}

export type StateListener = (id: number, uri: string, state: FileState, note?: string) => void;

function splitLines(text: string): string[] {
  if (!text) return [];
  const lines = text.split(/\r?\n/);
  if (lines[lines.length - 1] === '') lines.pop(); // a final newline ends the last line
  return lines;
}

// Lines added and removed from `oldText` to `newText`, as a diff view counts them: the
// common head and tail are trimmed, the middle is a longest common subsequence (or, past
// a million cells, a multiset difference: close enough for a count).
export function lineDelta(oldText: string, newText: string): { added: number; removed: number } {
  const a = splitLines(oldText);
  const b = splitLines(newText);
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const x = a.slice(head, a.length - tail);
  const y = b.slice(head, b.length - tail);
  let common = 0;
  if (x.length * y.length <= 1_000_000) {
    let prev = new Uint32Array(y.length + 1);
    let cur = new Uint32Array(y.length + 1);
    for (let i = 1; i <= x.length; i++) {
      for (let j = 1; j <= y.length; j++)
        cur[j] = x[i - 1] === y[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
      [prev, cur] = [cur, prev];
    }
    common = prev[y.length]!;
  } else {
    const counts = new Map<string, number>();
    for (const l of x) counts.set(l, (counts.get(l) ?? 0) + 1);
    for (const l of y) {
      const n = counts.get(l) ?? 0;
      if (n > 0) {
        common++;
        counts.set(l, n - 1);
      }
    }
  }
  return { added: y.length - common, removed: x.length - common };
}

// The range covering all of `text`, for a whole-file replacement.
function wholeRange(text: string): vscode.Range {
  const lines = text.split('\n');
  const last = lines.length - 1;
  return new vscode.Range(0, 0, last, lines[last]!.length);
}

// The file's text as the editor has it (an open document, unsaved changes included), or
// on disk; undefined when it does not exist.
export async function currentText(uri: vscode.Uri): Promise<string | undefined> {
  const key = uri.toString();
  const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === key);
  if (doc) return doc.getText();
  try {
    return new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
  } catch {
    return undefined;
  }
}

export class ProposalReview implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly live = new Map<number, Map<string, Entry>>();
  private readonly texts = new Map<string, string>(); // the virtual documents' text
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private nextId = 1;
  private readonly subs: vscode.Disposable[];

  // Told of every file's new state (the chat keeps it in the conversation and the view).
  constructor(private readonly onState: StateListener = () => undefined) {
    this.subs = [vscode.workspace.registerTextDocumentContentProvider(kProposedScheme, this)];
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? '';
  }

  // Ids continue after those in a restored conversation, so an old turn's buttons never
  // reach a new proposal.
  startAfter(id: number): void {
    this.nextId = Math.max(this.nextId, id + 1);
  }

  // Takes a proposal for review; what the view shows of it, or undefined when it has no file.
  add(p: Proposal): ReviewView | undefined {
    const files = (p.files ?? []).filter((f) => typeof f?.uri === 'string' && typeof f.newText === 'string');
    if (!files.length) return undefined;
    const id = this.nextId++;
    const entries = new Map<string, Entry>();
    for (const f of files.slice(0, kMaxFiles)) {
      entries.set(f.uri, { file: { ...f, oldText: f.oldText ?? '', created: !!f.created }, state: 'pending' });
    }
    this.live.set(id, entries);
    for (const old of [...this.live.keys()].slice(0, Math.max(0, this.live.size - kMaxLive))) this.drop(old);
    const view: ReviewFile[] = [...entries.values()].map(({ file }) => ({
      uri: file.uri,
      path: file.path || file.uri,
      created: file.created,
      ...lineDelta(file.oldText, file.newText),
      state: 'pending',
    }));
    return { id, files: view };
  }

  private drop(id: number): void {
    this.live.delete(id);
    for (const k of [...this.texts.keys()]) if (k.includes(`id=${id}&`)) this.texts.delete(k);
  }

  private entry(id: number, uri: string): Entry | undefined {
    const e = this.live.get(id)?.get(uri);
    if (!e) this.onState(id, uri, 'failed', 'This proposal is no longer available; ask again.');
    return e;
  }

  private set(id: number, e: Entry, state: FileState, note?: string): void {
    e.state = state;
    this.onState(id, e.file.uri, state, note);
  }

  private virtual(id: number, f: ProposedFile, side: 'new' | 'empty', text: string): vscode.Uri {
    const path = '/' + (f.path || vscode.Uri.parse(f.uri).path).replace(/^\/+/, '');
    const uri = vscode.Uri.from({ scheme: kProposedScheme, path, query: `id=${id}&side=${side}` });
    this.texts.set(uri.toString(), text);
    this.changed.fire(uri);
    return uri;
  }

  // The file (or, for a new file, an empty document) against the proposed text.
  async viewDiff(id: number, uri: string): Promise<void> {
    const e = this.entry(id, uri);
    if (!e) return;
    const f = e.file;
    const left = f.created ? this.virtual(id, f, 'empty', '') : vscode.Uri.parse(f.uri);
    const right = this.virtual(id, f, 'new', f.newText);
    const title = `${f.path || f.uri} ${f.created ? '(new file) ' : ''}↔ Latent's proposal`;
    await vscode.commands.executeCommand('vscode.diff', left, right, title, { preview: true });
  }

  reject(id: number, uri: string): void {
    const e = this.entry(id, uri);
    if (e && e.state === 'pending') this.set(id, e, 'rejected');
  }

  rejectAll(id: number): void {
    const files = this.live.get(id);
    if (!files) return void this.onState(id, '', 'failed', 'This proposal is no longer available; ask again.');
    for (const e of files.values()) if (e.state === 'pending') this.set(id, e, 'rejected');
  }

  // Applies one file's proposal if the file is as the agent read it; true when applied.
  async accept(id: number, uri: string): Promise<boolean> {
    const e = this.entry(id, uri);
    if (!e || e.state !== 'pending') return false;
    return this.apply(id, [e]);
  }

  // Applies every pending file that is unchanged since the proposal, as one edit (one undo).
  async acceptAll(id: number): Promise<boolean> {
    const files = this.live.get(id);
    if (!files) {
      this.onState(id, '', 'failed', 'This proposal is no longer available; ask again.');
      return false;
    }
    return this.apply(id, [...files.values()].filter((e) => e.state === 'pending'));
  }

  private async apply(id: number, entries: Entry[]): Promise<boolean> {
    const we = new vscode.WorkspaceEdit();
    const ready: Entry[] = [];
    const refused: string[] = [];
    for (const e of entries) {
      const f = e.file;
      const target = vscode.Uri.parse(f.uri);
      const now = await currentText(target);
      const unchanged = f.created ? now === undefined || now === '' : now === f.oldText;
      if (!unchanged) {
        const why = now === undefined ? 'was deleted' : f.created ? 'was created' : 'changed';
        this.set(id, e, 'changed', `${f.path} ${why} since the proposal; not applied.`);
        refused.push(f.path);
        continue;
      }
      if (f.created) {
        if (now === undefined) we.createFile(target, { ignoreIfExists: true });
        we.insert(target, new vscode.Position(0, 0), f.newText);
      } else {
        we.replace(target, wholeRange(now!), f.newText);
      }
      ready.push(e);
    }
    if (refused.length) {
      void vscode.window.showWarningMessage(
        `Latent: ${refused.join(', ')} changed since the proposal; not applied. Ask again to get a fresh proposal.`,
      );
    }
    if (!ready.length) return false;
    const ok = await vscode.workspace.applyEdit(we);
    for (const e of ready) {
      if (ok) this.set(id, e, 'accepted');
      else this.set(id, e, 'failed', 'VS Code did not apply the edit.');
    }
    if (!ok) void vscode.window.showErrorMessage('Latent: VS Code did not apply the edit.');
    return ok && !refused.length;
  }

  dispose(): void {
    for (const d of this.subs) d.dispose();
    this.changed.dispose();
  }
}
