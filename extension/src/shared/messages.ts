// The messages between the chat webview and the extension, and the one function each side
// uses to check what it receives. Shared by both bundles; it imports nothing, so it runs
// in the webview, in the extension host and in the unit tests alike.

// Caps on what a message may carry: a webview is untrusted input to the extension (and the
// extension's answer is untrusted Markdown to the webview), so sizes are bounded here.
export const kMaxTextBytes = 256 * 1024; // the server refuses conversations over 256 KiB
export const kMaxTurns = 200;

export type Role = 'user' | 'assistant';

export interface Turn {
  role: Role;
  content: string;
}

// Webview -> extension.
export type WebviewMessage =
  | { type: 'ready' }
  | { type: 'send'; text: string; includeSelection: boolean; includeFile: boolean }
  | { type: 'stop' }
  | { type: 'clear' }
  | { type: 'copy'; code: string }
  | { type: 'insert'; code: string };

// Extension -> webview.
export type HostMessage =
  | { type: 'history'; turns: Turn[]; busy: boolean }
  | { type: 'turn'; turn: Turn }
  | { type: 'begin' }
  | { type: 'delta'; text: string }
  | { type: 'end'; error?: string; cancelled?: boolean };

// A plain object, as structured cloning makes them (no inherited fields to trust).
function isRecord(x: unknown): x is Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  const proto: unknown = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

function isText(x: unknown): x is string {
  return typeof x === 'string' && x.length <= kMaxTextBytes;
}

function hasOnly(m: Record<string, unknown>, keys: readonly string[]): boolean {
  return Object.keys(m).every((k) => keys.includes(k));
}

function isTurn(x: unknown): x is Turn {
  return (
    isRecord(x) &&
    hasOnly(x, ['role', 'content']) &&
    (x.role === 'user' || x.role === 'assistant') &&
    isText(x.content)
  );
}

// The message when `x` is exactly a WebviewMessage (no unknown fields, sizes within the
// caps), otherwise undefined.
export function parseWebviewMessage(x: unknown): WebviewMessage | undefined {
  if (!isRecord(x) || typeof x.type !== 'string') return undefined;
  switch (x.type) {
    case 'ready':
    case 'stop':
    case 'clear':
      return hasOnly(x, ['type']) ? { type: x.type } : undefined;
    case 'send':
      if (
        hasOnly(x, ['type', 'text', 'includeSelection', 'includeFile']) &&
        isText(x.text) &&
        x.text.trim().length > 0 &&
        typeof x.includeSelection === 'boolean' &&
        typeof x.includeFile === 'boolean'
      ) {
        return {
          type: 'send',
          text: x.text,
          includeSelection: x.includeSelection,
          includeFile: x.includeFile,
        };
      }
      return undefined;
    case 'copy':
    case 'insert':
      return hasOnly(x, ['type', 'code']) && isText(x.code) ? { type: x.type, code: x.code } : undefined;
    default:
      return undefined;
  }
}

// The message when `x` is exactly a HostMessage, otherwise undefined.
export function parseHostMessage(x: unknown): HostMessage | undefined {
  if (!isRecord(x) || typeof x.type !== 'string') return undefined;
  switch (x.type) {
    case 'history':
      if (
        hasOnly(x, ['type', 'turns', 'busy']) &&
        Array.isArray(x.turns) &&
        x.turns.length <= kMaxTurns &&
        x.turns.every(isTurn) &&
        typeof x.busy === 'boolean'
      ) {
        return { type: 'history', turns: x.turns.map((t) => ({ ...t })), busy: x.busy };
      }
      return undefined;
    case 'turn':
      return hasOnly(x, ['type', 'turn']) && isTurn(x.turn) ? { type: 'turn', turn: { ...x.turn } } : undefined;
    case 'begin':
      return hasOnly(x, ['type']) ? { type: 'begin' } : undefined;
    case 'delta':
      return hasOnly(x, ['type', 'text']) && isText(x.text) ? { type: 'delta', text: x.text } : undefined;
    case 'end': {
      if (!hasOnly(x, ['type', 'error', 'cancelled'])) return undefined;
      if (x.error !== undefined && !isText(x.error)) return undefined;
      if (x.cancelled !== undefined && typeof x.cancelled !== 'boolean') return undefined;
      const m: HostMessage = { type: 'end' };
      if (x.error !== undefined) m.error = x.error;
      if (x.cancelled !== undefined) m.cancelled = x.cancelled;
      return m;
    }
    default:
      return undefined;
  }
}
