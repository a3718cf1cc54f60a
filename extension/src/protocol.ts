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

export type ChatMode = 'chat' | 'agent';

// What the user @-mentioned in the last user message.
export type Mention =
  | { kind: 'file'; uri: string; range?: Range } // @file (path completion gives the uri)
  | { kind: 'symbol'; name: string } // @symbol (the index's definitions)
  | { kind: 'codebase' } // @codebase: search the index with the question
  | { kind: 'openEditors' }; // the documents open in the editor

// latent/chat: the conversation plus, optionally, the document (and selection) the user
// is looking at; the document must be open in the server (it is: the client syncs it).
export interface ChatParams {
  messages: ChatMessage[];
  context?: { textDocument: TextDocumentIdentifier; range?: Range };
  mode?: ChatMode; // default 'chat'
  mentions?: Mention[];
  // A prompt-library name ("explain", "tests", a workspace prompt): the server renders it
  // with the context it wants, around the last user message.
  prompt?: string;
  // Not in the decided protocol; the server (agent/conversations.h) reads it: one id per
  // conversation, so the next turn is built on what the model was really sent (tool calls
  // and context included) and extends the cached prompt.
  conversationId?: string;
  partialResultToken?: string | number;
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

// A piece of context the answer was given. why: "@file", "definition of Foo",
// "search: foo bar", "read by the agent". path is workspace-relative.
export interface Source {
  uri: string;
  path: string;
  range: Range;
  why: string;
}

export type AgentTool =
  | 'search_code'
  | 'find_definition'
  | 'find_references'
  | 'read_file'
  | 'list_files'
  | 'edit_file'
  | 'create_file';

export type AgentStepStatus = 'running' | 'done' | 'refused' | 'failed';

// One tool call of agent mode, sent when it starts (status 'running') and again when it ends.
export interface AgentStep {
  id: number; // 1, 2, 3…
  tool: string; // an AgentTool, as the server names it
  arguments: Record<string, unknown>; // as the model wrote them (parsed; {} when not JSON)
  title: string; // one line for the collapsed view
  status: AgentStepStatus;
  detail?: string; // the result as sent to the model (capped ~4 KiB for the view)
  sources?: Source[]; // what the step looked at
}

// What latent/chat and latent/explain stream through $/progress: each partial is ONE of
// these. sources comes once, before the answer text; step only in agent mode.
export type ChatPartial = { text: string } | { sources: Source[] } | { step: AgentStep };

export type StopReason = 'answer' | 'stepLimit' | 'noTools'; // noTools: answered as repository-aware chat

export interface ChatResult {
  text: string;
  cachedTokens: number; // token figures summed over all model turns
  computedTokens: number;
  generatedTokens: number;
  sources?: Source[];
  steps?: AgentStep[]; // final state of every step (agent mode)
  stopReason?: StopReason;
  proposal?: Proposal; // agent mode, when the agent proposed edits
}

export interface TextEdit {
  range: Range;
  newText: string;
}

export interface CreateFile {
  kind: 'create';
  uri: string;
  options?: { overwrite?: boolean; ignoreIfExists?: boolean };
}

export interface TextDocumentEdit {
  textDocument: { uri: string; version: number | null };
  edits: TextEdit[];
}

export interface WorkspaceEdit {
  changes?: Record<string, TextEdit[]>;
  documentChanges?: (CreateFile | TextDocumentEdit)[];
}

// A file of the agent's proposal. oldText is "" when created; the server never writes it.
export interface ProposedFile {
  uri: string;
  path: string;
  created: boolean;
  oldText: string;
  newText: string;
}

// The agent's multi-file edit: CreateFile ops for new files, then a TextDocumentEdit
// (version null) replacing each whole file; files says the same per file, for review.
export interface Proposal {
  edit: WorkspaceEdit;
  files: ProposedFile[];
}

export interface EditResult extends ChatResult {
  edit: { changes: Record<string, TextEdit[]> };
}

// latent/mentions: completion for '@' in the chat input.
export interface MentionsParams {
  kind: 'file' | 'symbol';
  query: string;
  limit?: number; // default 20, max 100
}

// file: label = the workspace-relative path; symbol: label = name, detail = "kind path:line".
export interface MentionItem {
  label: string;
  detail: string;
  uri: string;
  range?: Range;
}

export interface MentionsResult {
  items: MentionItem[];
}

export type PromptContext = 'selection' | 'file' | 'codebase';

// latent/prompts (params {}): the built-in prompts and the workspace's .latent/prompts/*.md.
export interface PromptInfo {
  name: string;
  description: string;
  context: PromptContext[];
  source: 'builtin' | 'workspace';
  uri?: string;
}

export interface PromptsResult {
  prompts: PromptInfo[];
}

// latent/didFocus: the active editor changed; the server warms that file's prompt prefix.
export interface DidFocusParams {
  textDocument: TextDocumentIdentifier;
  position?: Position;
}

// latent/nextEdit: the edits the user will likely make next, from the cursor and the
// recent edits (the index's references for renames and signature changes, else the model).
export interface NextEditParams {
  textDocument: { uri: string; version: number };
  position: Position; // the cursor
  model?: boolean; // default true: may ask the model when the index has none
}

export interface NextEditItem {
  id: string; // stable for this suggestion ("rename:foo:bar:3" ...)
  uri: string; // where (may be another file than the request's)
  range: Range; // of that file's current text
  newText: string;
  reason: 'index' | 'model';
  kind: 'rename' | 'signature' | 'rewrite';
  label: string; // "Rename foo → bar", "Add argument to f(…)", "Suggested edit"
}

// version: the document version the edits were computed on; when it is not the version
// asked for, edits is [] (stale: the client typed since).
export interface NextEditResult {
  version: number;
  edits: NextEditItem[];
}

// latent/nextEditFeedback (notification): counted by the server, kept locally; "dismissed"
// also stops that suggestion group from being offered again.
export interface NextEditFeedbackParams {
  id: string;
  action: 'shown' | 'accepted' | 'dismissed';
}

export interface NextEditCounters {
  shown: number;
  accepted: number;
  dismissed: number;
  index: number;
  model: number;
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
  nextEdit?: NextEditCounters; // servers before next edits lack it
}

export const Methods = {
  chat: 'latent/chat',
  explain: 'latent/explain',
  edit: 'latent/edit',
  status: 'latent/status',
  didFocus: 'latent/didFocus',
  mentions: 'latent/mentions',
  prompts: 'latent/prompts',
  nextEdit: 'latent/nextEdit',
  nextEditFeedback: 'latent/nextEditFeedback',
} as const;

// JSON-RPC error codes the shim treats specially.
export const ErrorCodes = {
  requestCancelled: -32800,
  serverCancelled: -32802,
} as const;
