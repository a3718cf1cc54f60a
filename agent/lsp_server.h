// LspServer: the protocol side of `latent lsp` — it registers Latent's methods on an
// lsp::Endpoint and converts each message to a typed call on the Agent (agent.h) and the
// answer back: capability negotiation, document sync, settings, workspace folders, work-done
// progress, partial results, and the mapping of feature errors to JSON-RPC codes. No
// prompts, models or SQL here. It owns no transport: cli_lsp.cpp wires stdio to it.
//
// Methods: initialize, initialized, shutdown, exit; textDocument/didOpen, didChange,
// didClose, didSave, inlineCompletion, codeAction; workspace/didChangeConfiguration,
// didChangeWatchedFiles, didChangeWorkspaceFolders, executeCommand; and Latent's own
// latent/didFocus, latent/chat (chat and agent mode), latent/explain, latent/edit,
// latent/mentions, latent/prompts, latent/nextEdit, latent/nextEditFeedback, latent/status.
//
// Threading: document sync (didOpen/didChange/didClose) is applied on the reading thread
// (Endpoint kReader), parsed once, so every request read after an edit sees it; its slower
// follow-ups (indexing, warming) are posted to the workers. Requests that need the model
// while it loads are deferred (RequestContext::defer) and resumed when it is ready: they
// hold no worker meanwhile.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/agent.h"
#include "lsp/jsonrpc.h"

namespace latent::agent {

struct LspServerOptions {
    // Settings before the client's (command-line flags); the client's override them.
    Settings settings;
    // Diagnostics (thread-safe; never stdout).
    std::function<void(const std::string&)> log;
    // A backend to use instead of the one the settings describe (tests, bench).
    std::shared_ptr<Generator> backend;
    // Makes the backend from settings instead of make_generator (tests).
    GeneratorFactory factory;
    // The scripted backend may be selected by settings (tests; `--enable-test-backend`).
    bool allow_test_backends = false;
    // Called on `exit` with the process exit code (0 after shutdown, else 1).
    std::function<void(int)> on_exit;
};

// Thread safety: handlers run on the endpoint's reader and workers; state is the Agent's.
// Destroy it before the Endpoint.
class LspServer {
public:
    LspServer(lsp::Endpoint& endpoint, LspServerOptions options);
    ~LspServer();
    LspServer(const LspServer&) = delete;
    LspServer& operator=(const LspServer&) = delete;

    bool shutdown_requested() const { return shutdown_; }
    Agent& agent() { return *agent_; }

private:
    void register_handlers();
    lsp::Result<nlohmann::json> initialize(const nlohmann::json& params);
    void initialized();
    void apply_settings(const nlohmann::json& j);
    IndexReport index_report(const std::string& root);
    // Runs `fn` now when no backend load is pending, else defers the request and runs it on
    // a worker once the load ends (or answers -32800 if the client cancels meanwhile).
    using Handler = std::function<lsp::Result<nlohmann::json>(lsp::RequestContext&)>;
    lsp::Result<nlohmann::json> with_backend(lsp::RequestContext& ctx, Handler fn);

    lsp::Result<nlohmann::json> inline_completion(const nlohmann::json& params,
                                                  lsp::RequestContext& ctx);
    lsp::Result<nlohmann::json> chat(const nlohmann::json& params, lsp::RequestContext& ctx);
    lsp::Result<nlohmann::json> explain(const nlohmann::json& params, lsp::RequestContext& ctx);
    lsp::Result<nlohmann::json> edit(const nlohmann::json& params, lsp::RequestContext& ctx);
    lsp::Result<nlohmann::json> mentions(const nlohmann::json& params);
    lsp::Result<nlohmann::json> prompts();
    lsp::Result<nlohmann::json> next_edit(const nlohmann::json& params, lsp::RequestContext& ctx);
    lsp::Result<nlohmann::json> code_action(const nlohmann::json& params);
    lsp::Result<nlohmann::json> execute_command(const nlohmann::json& params,
                                                lsp::RequestContext& ctx);
    void log(const std::string& line) const;

    lsp::Endpoint& ep_;
    LspServerOptions options_;
    std::unique_ptr<Agent> agent_;
    std::atomic<bool> shutdown_{false};
    std::atomic<bool> initialized_{false};
    std::atomic<bool> progress_ok_{false};  // the client takes window/workDoneProgress
    std::atomic<bool> watch_dynamic_{false};
    // The client guides a user without a model or server itself
    // (capabilities.experimental.latent.setupGuide): "no model" is not shown as an error.
    std::atomic<bool> client_guides_setup_{false};
    std::atomic<uint64_t> progress_tokens_{0};
};

}  // namespace latent::agent
