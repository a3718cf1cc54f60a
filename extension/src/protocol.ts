// Latent's own LSP messages, spelled as agent/server.cpp reads and writes them. Plain
// types and method names only: the one place the extension's view of the server lives.
// Standard LSP messages come from vscode-languageclient.

export interface Position {
  line: number;
  character: number; // UTF-16 code units (the server's default encoding)
}

export interface Range {
  start: Position;
  end: Position;
}

export interface TextDocumentIdentifier {
  uri: string;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

// latent/chat: the conversation plus, optionally, the document (and selection) the user
// is looking at; the document must be open in the server (it is: the client syncs it).
export interface ChatParams {
  messages: ChatMessage[];
  context?: { textDocument: TextDocumentIdentifier; range?: Range };
  partialResultToken?: string;
}

// latent/explain: a range of an open document.
export interface ExplainParams {
  textDocument: TextDocumentIdentifier;
  range: Range;
  partialResultToken?: string;
}

// latent/edit: a range and an instruction; answers with the replacement as a WorkspaceEdit.
export interface EditParams {
  textDocument: TextDocumentIdentifier;
  range: Range;
  instruction: string;
  partialResultToken?: string;
}

// What latent/chat and latent/explain stream through $/progress, one piece at a time.
export interface ChatPartial {
  text: string;
}

export interface ChatResult {
  text: string;
  cachedTokens: number;
  computedTokens: number;
  generatedTokens: number;
}

export interface TextEdit {
  range: Range;
  newText: string;
}

export interface EditResult extends ChatResult {
  edit: { changes: Record<string, TextEdit[]> };
}

// latent/didFocus: the active editor changed; the server warms that file's prompt prefix.
export interface DidFocusParams {
  textDocument: TextDocumentIdentifier;
  position?: Position;
}

export interface IndexStatus {
  root: string;
  state: string;
  files: number;
  symbols: number;
  db?: string;
  error?: string;
}

export interface StatusResult {
  backend: string;
  backendError?: string;
  settings: Record<string, unknown>;
  completions: number;
  suggestionCacheHits: number;
  lastCompletionMs: number;
  lastCachedTokens: number;
  lastComputedTokens: number;
  cache: Record<string, unknown>;
  documents: number;
  index: IndexStatus[];
}

export const Methods = {
  chat: 'latent/chat',
  explain: 'latent/explain',
  edit: 'latent/edit',
  status: 'latent/status',
  didFocus: 'latent/didFocus',
} as const;

// JSON-RPC error codes the shim treats specially.
export const ErrorCodes = {
  requestCancelled: -32800,
  serverCancelled: -32802,
} as const;
