// Latent's language server: converts LSP messages into calls on documents, the workspace
// index, the completion pipeline and a Backend, and back. It registers its handlers on an
// lsp::Endpoint and owns no transport: `latent lsp` (cli_lsp.cpp) wires stdio to it.
//
// Methods: initialize, initialized, shutdown, exit; textDocument/didOpen, didChange,
// didClose, didSave, inlineCompletion, codeAction; workspace/didChangeConfiguration,
// didChangeWatchedFiles, didChangeWorkspaceFolders, executeCommand; and Latent's own
// latent/didFocus, latent/chat, latent/explain, latent/edit, latent/status.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/backend.h"
#include "agent/completion.h"
#include "agent/documents.h"
#include "lsp/jsonrpc.h"

namespace latent::agent {

class WorkspaceIndex;

// Everything a user can set, from initializationOptions or workspace/didChangeConfiguration
// (either the object itself or {"latent": {...}}). JSON names in comments.
struct Settings {
    std::string backend = "local";  // "backend": local | remote | scripted | none
    std::string engine = "cpu";     // "engine": cpu | reference | cuda (local backend)
    int threads = 0;                // "threads": engine threads, 0 = all cores
    std::string model;              // "model": GGUF path (local backend)
    std::string remote_url;         // "remote.url": e.g. http://127.0.0.1:8000
    std::string remote_model;       // "remote.model"
    std::string remote_key;         // "remote.apiKey": never logged
    // "remote.fimApi": completions | infill (llama.cpp's server) | chat; the older
    // "remote.fimViaChat": true means chat.
    std::string remote_fim_api = "completions";
    int max_tokens = 64;        // "completion.maxTokens"
    int context_tokens = 1024;  // "completion.contextTokens": retrieved context budget
    int prefix_tokens = 1536;   // "completion.prefixTokens"
    int suffix_tokens = 128;    // "completion.suffixTokens" (recomputed per 8-line block)
    // "completion.maxTimeMs": a completion stops at its first line end this long after its
    // first token (GenerationTimeLimit); 0: no limit.
    int max_time_ms = 1000;
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
};
// Reads the fields present in `j` over `base`; wrong types are ignored (logged by caller
// through `problems`), sizes clamped to sane ranges.
Settings parse_settings(const nlohmann::json& j, Settings base, std::vector<std::string>* problems);
// The settings as JSON for logs and latent/status: the API key shown as "***" when set.
nlohmann::json redacted(const Settings& s);

struct ServerOptions {
    // Settings before the client's (command-line flags); the client's override them.
    Settings settings;
    // Diagnostics (thread-safe; never stdout).
    std::function<void(const std::string&)> log;
    // A backend to use instead of the one the settings describe (tests, bench).
    std::shared_ptr<Backend> backend;
    // Called on `exit` with the process exit code (0 after shutdown, else 1).
    std::function<void(int)> on_exit;
};

// Thread safety: handlers run on the endpoint's workers; all state here is guarded.
class Server {
public:
    Server(lsp::Endpoint& endpoint, ServerOptions options);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    bool shutdown_requested() const { return shutdown_; }

    // Applies a didOpen/didChange/didClose body to the documents at once, on the reading
    // thread, before it is handed to the endpoint (whose handler then does only the slower
    // follow-ups: indexing, warming). Any request read after it therefore sees the edit,
    // whatever the endpoint's scheduling. Other bodies are ignored (cheaply). Call it from
    // the reader only, before Endpoint::receive(body).
    void sync_documents(std::string_view body);

private:
    void register_handlers();
    lsp::Result<nlohmann::json> initialize(const nlohmann::json& params);
    void initialized();
    void apply_settings(const nlohmann::json& j);
    void start_backend();
    void start_indexing();
    std::shared_ptr<Backend> backend() const;
    // The backend, waiting while one is being loaded (until `patience` or cancellation).
    std::shared_ptr<Backend> ready_backend(lsp::RequestContext& ctx,
                                           std::chrono::milliseconds patience);
    std::shared_ptr<WorkspaceIndex> index_for(const std::string& path) const;

    lsp::Result<nlohmann::json> inline_completion(const nlohmann::json& params,
                                                  lsp::RequestContext& ctx);
    lsp::Result<nlohmann::json> chat(const nlohmann::json& params, lsp::RequestContext& ctx);
    lsp::Result<nlohmann::json> explain(const nlohmann::json& params, lsp::RequestContext& ctx);
    lsp::Result<nlohmann::json> edit(const nlohmann::json& params, lsp::RequestContext& ctx);
    lsp::Result<nlohmann::json> code_action(const nlohmann::json& params);
    lsp::Result<nlohmann::json> execute_command(const nlohmann::json& params,
                                                lsp::RequestContext& ctx);
    lsp::Result<nlohmann::json> status();
    // Streams a chat through partial results; returns the full text.
    lsp::Result<nlohmann::json> run_chat(std::vector<ChatMessage> messages,
                                         lsp::RequestContext& ctx, int max_tokens);
    void warm(const std::string& uri, std::optional<lsp::Position> position);
    std::vector<ContextBlock> context_blocks(const std::string& uri, const std::string& path,
                                             uint32_t line);
    void note_edit(const std::string& uri, const std::string& text, size_t start, size_t end);
    void log(const std::string& line) const;

    lsp::Endpoint& ep_;
    ServerOptions options_;
    DocumentStore docs_;
    SuggestionCache suggestions_;

    mutable std::mutex mu_;  // everything below
    Settings settings_;
    std::shared_ptr<Backend> backend_;
    std::string backend_error_;
    int backend_loading_ = 0;  // start_backend() runs in progress
    std::condition_variable backend_cv_;
    std::vector<std::string> folders_;  // absolute paths
    std::vector<std::shared_ptr<WorkspaceIndex>> indexes_;
    nlohmann::json client_caps_;
    bool initialized_ = false;
    std::atomic<bool> shutdown_{false};
    std::atomic<bool> inline_sync_{false};  // sync_documents() is in use
    // Where the last latent/didFocus put the user. Once a client sends them, it says where
    // warming pays: a document opened without focus (a peek, a diff, a file a command
    // touched) is not warmed at its top, and a backend that becomes ready warms this place.
    struct Focus {
        std::string uri;
        std::optional<lsp::Position> position;
    };
    std::optional<Focus> focus_;
    // The in-flight inline completion and its document. The editor shows one suggestion,
    // at the cursor of the editor being typed in: a newer request (for any document) or
    // the focus moving to another document supersedes it.
    struct InFlight {
        std::string uri;
        std::shared_ptr<std::atomic<bool>> superseded;
    };
    InFlight inflight_;
    // Recently edited ranges (uri, first line, last line), newest first.
    struct Touched {
        std::string uri;
        uint32_t first = 0, last = 0;
    };
    std::deque<Touched> touched_;
    // Retrieved context per document: where it was looked up, for which index generation.
    struct CachedContext {
        uint64_t generation = 0;
        uint32_t line = 0;
        std::vector<ContextBlock> blocks;
    };
    std::map<std::string, CachedContext> context_cache_;
    // Figures for latent/status.
    uint64_t completions_ = 0, cache_hits_ = 0;
    double last_latency_ms_ = 0;
    int64_t last_cached_tokens_ = 0, last_computed_tokens_ = 0;
    uint64_t progress_tokens_ = 0;
};

}  // namespace latent::agent
