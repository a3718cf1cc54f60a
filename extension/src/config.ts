// All of the extension's settings, read in one place, and the object `latent lsp` receives
// as initializationOptions and in workspace/didChangeConfiguration (parse_settings in
// agent/server.cpp reads it). The API key is never a setting: it comes from SecretStorage.
import * as os from 'node:os';
import * as vscode from 'vscode';

export interface UserSettings {
  backend: 'local' | 'remote';
  modelPath: string;
  engine: string;
  threads: number;
  remoteUrl: string;
  remoteModel: string;
  remoteFimApi: 'completions' | 'raw' | 'infill' | 'chat';
  completionEnabled: boolean;
  completionExclude: string[]; // globs of files where inline completion never runs
  debounceMs: number;
  completionMaxTokens: number;
  completionMaxTimeMs: number;
  completionLatencyMs: number; // the local engine's target for one completion (0: none)
  chatMaxTokens: number;
  chatContextTokens: number; // the token budget of @codebase / @file context
  agentMaxSteps: number; // tool calls one agent-mode answer may make
  indexEnabled: boolean;
  indexExclude: string[];
  cacheMb: number;
  diskCacheMb: number;
  path: string;
  nextEditEnabled: boolean;
  nextEditModel: boolean; // model-driven suggestions (the index's stay)
  nextEditRegionLines: number; // lines of the region the model rewrites
  nextEditDebounceMs: number; // pause after an edit before asking (extension only)
}

export const kDefaults: UserSettings = {
  backend: 'local',
  modelPath: '',
  engine: 'cpu',
  threads: 0,
  remoteUrl: '',
  remoteModel: '',
  remoteFimApi: 'completions',
  completionEnabled: true,
  // VS Code's own settings, keybindings, tasks and snippets (package.json has the same list)
  completionExclude: [
    '**/.vscode/*.json',
    '**/.vscode/*.code-snippets',
    '**/User/settings.json',
    '**/User/keybindings.json',
    '**/User/tasks.json',
    '**/User/profiles/*/*.json',
    '**/User/snippets/*',
  ],
  debounceMs: 120,
  completionMaxTokens: 64,
  completionMaxTimeMs: 1000,
  completionLatencyMs: 2000,
  chatMaxTokens: 512,
  chatContextTokens: 4096,
  agentMaxSteps: 16,
  indexEnabled: true,
  indexExclude: [],
  cacheMb: 1024,
  diskCacheMb: 4096,
  path: '',
  nextEditEnabled: true,
  nextEditModel: true,
  nextEditRegionLines: 16,
  nextEditDebounceMs: 300,
};

// Settings whose change needs nothing from the server (the shim alone uses them).
const kClientOnly = [
  'latent.completion.enabled',
  'latent.completion.exclude',
  'latent.completion.debounceMs',
  'latent.nextEdit.debounceMs',
  'latent.trace.server',
];
// Settings whose change needs a new server process.
const kRestart = ['latent.path'];

export type ConfigChange = 'none' | 'client' | 'server' | 'restart';

// What a configuration change means for the server.
export function classifyChange(affects: (section: string) => boolean): ConfigChange {
  if (!affects('latent')) return 'none';
  if (kRestart.some(affects)) return 'restart';
  const keys = [
    'latent.backend',
    'latent.modelPath',
    'latent.engine',
    'latent.threads',
    'latent.remote',
    'latent.completion.maxTokens',
    'latent.completion.maxTimeMs',
    'latent.completion.latencyMs',
    'latent.chat.maxTokens',
    'latent.chat.contextTokens',
    'latent.agent',
    'latent.index',
    'latent.cacheMb',
    'latent.diskCacheMb',
    'latent.nextEdit.enabled',
    'latent.nextEdit.model',
    'latent.nextEdit.regionLines',
  ];
  if (keys.some(affects)) return 'server';
  return kClientOnly.some(affects) ? 'client' : 'server';
}

function clampInt(x: unknown, lo: number, hi: number, fallback: number): number {
  if (typeof x !== 'number' || !Number.isFinite(x)) return fallback;
  return Math.min(hi, Math.max(lo, Math.round(x)));
}

function str(x: unknown, fallback: string): string {
  return typeof x === 'string' ? x : fallback;
}

function bool(x: unknown, fallback: boolean): boolean {
  return typeof x === 'boolean' ? x : fallback;
}

// The settings from a getter of raw values (vscode's WorkspaceConfiguration.get), each
// checked and clamped: settings.json is hand-edited and may hold anything.
export function readSettings(get: (key: string) => unknown): UserSettings {
  const d = kDefaults;
  const backend = get('backend');
  const exclude = get('index.exclude');
  const completionExclude = get('completion.exclude');
  const fimApi = get('remote.fimApi');
  return {
    backend: backend === 'remote' ? 'remote' : 'local',
    modelPath: str(get('modelPath'), d.modelPath).trim(),
    engine: str(get('engine'), d.engine),
    threads: clampInt(get('threads'), 0, 1024, d.threads),
    remoteUrl: str(get('remote.url'), d.remoteUrl).trim(),
    remoteModel: str(get('remote.model'), d.remoteModel).trim(),
    remoteFimApi: fimApi === 'raw' || fimApi === 'infill' || fimApi === 'chat' ? fimApi : 'completions',
    completionEnabled: bool(get('completion.enabled'), d.completionEnabled),
    completionExclude: Array.isArray(completionExclude)
      ? completionExclude.filter((g): g is string => typeof g === 'string' && g.length > 0)
      : d.completionExclude,
    debounceMs: clampInt(get('completion.debounceMs'), 0, 2000, d.debounceMs),
    completionMaxTokens: clampInt(get('completion.maxTokens'), 1, 1024, d.completionMaxTokens),
    completionMaxTimeMs: clampInt(get('completion.maxTimeMs'), 0, 600000, d.completionMaxTimeMs),
    completionLatencyMs: clampInt(get('completion.latencyMs'), 0, 600000, d.completionLatencyMs),
    chatMaxTokens: clampInt(get('chat.maxTokens'), 1, 8192, d.chatMaxTokens),
    chatContextTokens: clampInt(get('chat.contextTokens'), 256, 65536, d.chatContextTokens),
    agentMaxSteps: clampInt(get('agent.maxSteps'), 1, 64, d.agentMaxSteps),
    indexEnabled: bool(get('index.enabled'), d.indexEnabled),
    indexExclude: Array.isArray(exclude) ? exclude.filter((g): g is string => typeof g === 'string') : [],
    cacheMb: clampInt(get('cacheMb'), 16, 1 << 20, d.cacheMb),
    diskCacheMb: clampInt(get('diskCacheMb'), 0, 1 << 24, d.diskCacheMb),
    path: str(get('path'), d.path).trim(),
    nextEditEnabled: bool(get('nextEdit.enabled'), d.nextEditEnabled),
    nextEditModel: bool(get('nextEdit.model'), d.nextEditModel),
    nextEditRegionLines: clampInt(get('nextEdit.regionLines'), 4, 64, d.nextEditRegionLines),
    nextEditDebounceMs: clampInt(get('nextEdit.debounceMs'), 0, 5000, d.nextEditDebounceMs),
  };
}

export function expandHome(p: string, home = os.homedir()): string {
  if (p === '~') return home;
  if (p.startsWith('~/')) return home + p.slice(1);
  return p;
}

export interface ServerSettingsExtras {
  apiKey?: string; // from SecretStorage
  indexDb?: string; // the index database in the editor's storage folder (one folder only)
}

// The JSON `latent lsp` reads (agent/server.cpp parse_settings).
export function serverSettings(s: UserSettings, extras: ServerSettingsExtras = {}): Record<string, unknown> {
  const index: Record<string, unknown> = { enabled: s.indexEnabled, exclude: s.indexExclude };
  if (extras.indexDb) index.db = extras.indexDb;
  return {
    backend: s.backend,
    model: expandHome(s.modelPath),
    engine: s.engine,
    threads: s.threads,
    remote: {
      url: s.remoteUrl,
      model: s.remoteModel,
      apiKey: extras.apiKey ?? '',
      fimApi: s.remoteFimApi,
    },
    completion: {
      maxTokens: s.completionMaxTokens,
      maxTimeMs: s.completionMaxTimeMs,
      latencyMs: s.completionLatencyMs,
    },
    chat: { maxTokens: s.chatMaxTokens, contextTokens: s.chatContextTokens },
    agent: { maxSteps: s.agentMaxSteps },
    index,
    cacheMb: s.cacheMb,
    diskCache: { mb: s.diskCacheMb },
    nextEdit: { enabled: s.nextEditEnabled, model: s.nextEditModel, regionLines: s.nextEditRegionLines },
  };
}

// The current settings from VS Code.
export function currentSettings(): UserSettings {
  const c = vscode.workspace.getConfiguration('latent');
  return readSettings((k) => c.get(k));
}

// What is missing before the chosen backend can answer, as a sentence for the user.
export function firstRunProblem(s: UserSettings): string | undefined {
  if (s.backend === 'local' && !s.modelPath) return 'Latent needs a model: pick a GGUF file or use a remote server.';
  if (s.backend === 'remote' && !s.remoteUrl) return 'Latent needs the URL of an OpenAI-compatible server (latent.remote.url).';
  return undefined;
}
