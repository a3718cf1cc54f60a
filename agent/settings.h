// Settings: everything a user can set for `latent lsp` (initializationOptions or
// workspace/didChangeConfiguration), read from JSON with every size clamped, and shown
// redacted. Not where they take effect (backend_host.h, workspaces.h, agent.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/generator.h"

namespace latent::agent {

// Everything a user can set, from initializationOptions or workspace/didChangeConfiguration
// (either the object itself or {"latent": {...}}). JSON names in comments.
struct Settings {
    std::string backend = "local";  // "backend": local | remote | none (scripted: tests)
    std::string engine = "cpu";     // "engine": cpu | reference | cuda (local backend)
    int threads = 0;                // "threads": engine threads, 0 = all cores
    std::string model;              // "model": GGUF path (local backend)
    std::string remote_url;         // "remote.url": e.g. http://127.0.0.1:8000
    std::string remote_model;       // "remote.model"
    std::string remote_key;         // "remote.apiKey": never logged
    // "remote.fimApi": completions (prompt + suffix) | raw (the FIM template as the prompt:
    // vLLM, any completion server) | infill (llama.cpp's server) | chat; the older
    // "remote.fimViaChat": true means chat.
    std::string remote_fim_api = "completions";
    // "remote.fimTemplate": {prefix, suffix, middle}, the model family's FIM markers for
    // fimApi raw, all three or none (each 1 to 64 bytes). Default: DeepSeek's.
    FimTemplate remote_fim_template;
    int max_tokens = 64;        // "completion.maxTokens"
    int context_tokens = 1024;  // "completion.contextTokens": retrieved context budget
    int prefix_tokens = 1536;   // "completion.prefixTokens"
    int suffix_tokens = 128;    // "completion.suffixTokens" (recomputed per 8-line block)
    // "completion.maxTimeMs": a completion stops at its first line end this long after its
    // first token (GenerationTimeLimit); 0: no limit.
    int max_time_ms = 1000;
    // "completion.latencyMs": the time an inline completion should take at most. The local
    // engine measures its prefill and decode speeds; a prompt that would take longer than
    // this at them (counting what its prefix cache holds) is laid out with smaller budgets
    // (smaller_budgets) while the full one warms at that place; its answer stops at the
    // target (keeping a partial line). 0: always the full budget, no deadline.
    int latency_ms = 2000;
    bool index = true;                 // "index.enabled"
    std::vector<std::string> exclude;  // "index.exclude": globs, workspace-relative
    std::string index_db;              // "index.db": database path (one folder only; tests)
    uint64_t cache_mb = 1024;          // "cacheMb": latent cache budget of the local backend
    bool prefix_cache = true;          // "prefixCache": false recomputes every prompt (benchmarks)
    bool mtp = false;  // "mtp": draft tokens from the model's MTP block instead of prompt lookup
    // "diskCache.dir": prefix pages on disk; "default" = $XDG_CACHE_HOME/latent/kv/<model id>
    std::string disk_cache_dir = "default";
    uint64_t disk_cache_mb = 4096;    // "diskCache.mb": 0 turns the disk tier off
    std::vector<std::string> script;  // "script": replies of the scripted backend (tests)
    int script_delay_ms = 0;          // "scriptDelayMs"
    int chat_max_tokens = 512;        // "chat.maxTokens"
    // "chat.contextTokens": the budget of the context @-mentions gather (@file, @symbol,
    // @codebase, open editors)
    int chat_context_tokens = 4096;
    int agent_max_steps = 16;         // "agent.maxSteps": tool calls in one agent-mode answer
    bool next_edit = true;            // "nextEdit.enabled": latent/nextEdit answers at all
    bool next_edit_model = true;      // "nextEdit.model": ask the model when the index has none
    int next_edit_region_lines = 16;  // "nextEdit.regionLines": the region the model rewrites
};
// Reads the fields present in `j` over `base`; wrong types are ignored (logged by caller
// through `problems`), sizes clamped to sane ranges.
Settings parse_settings(const nlohmann::json& j, Settings base, std::vector<std::string>* problems);
// The settings as JSON for logs and latent/status: the API key shown as "***" when set.
nlohmann::json redacted(const Settings& s);

// False when the chosen backend lacks what it needs to start: local without a model file,
// remote without a URL (the first run), as opposed to one that fails to load.
bool backend_configured(const Settings& s);

// True when going from `a` to `b` needs a new generation backend (a reload).
bool backend_settings_differ(const Settings& a, const Settings& b);

}  // namespace latent::agent
