// Agent: Latent's features as plain C++ — documents, inline completion, chat, explain,
// edit, warming and status — over the workspaces (index, containment) and the backend
// host. Typed in, typed out: no JSON-RPC, no LSP messages, no threads of its own beyond
// those its members own (the backend loader, index threads). lsp_server.h converts the
// protocol to calls here, as clangd's ClangdLSPServer does for ClangdServer.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/agent_loop.h"
#include "agent/completion.h"
#include "agent/conversations.h"
#include "agent/documents.h"
#include "agent/generator.h"
#include "agent/generator_host.h"
#include "agent/mentions.h"
#include "agent/next_edit_state.h"
#include "agent/prompt_library.h"
#include "agent/settings.h"
#include "agent/workspaces.h"
#include "lsp/protocol.h"

namespace latent::agent {

// Why a feature gave no answer.
struct FeatureError {
    enum class Kind {
        kInvalid,     // the request names something that is not there (a closed document)
        kFailed,      // the backend failed, or none is ready
        kCancelled,   // the caller's cancelled() said so
        kSuperseded,  // a newer completion (or the focus moving) replaced it
    };
    Kind kind = Kind::kFailed;
    std::string message;
    int32_t prompt_tokens = 0;  // kSuperseded: the prompt's size, when the backend knew it
};

template <class T>
struct Outcome {
    Outcome(T v) : value(std::move(v)) {}
    Outcome(FeatureError e) : error(std::move(e)) {}
    bool ok() const { return value.has_value(); }
    explicit operator bool() const { return ok(); }
    std::optional<T> value;
    FeatureError error;
};

struct CompletionRequest {
    std::string uri;
    lsp::Position position;
    bool invoked = false;  // asked for explicitly (a keyboard shortcut), not while typing
    // The completion-menu item the editor shows, when any: the completion continues it.
    std::optional<lsp::SelectedCompletionInfo> selected;
    // When the client asked (larger: later; 0: now). A request older than the one in flight
    // is superseded at once, whatever order the threads calling complete() run in.
    uint64_t order = 0;
};
struct CompletionResult {
    // The item's text: the selected menu item's text (when any) and what follows it; no
    // item when it is empty or only the menu item.
    std::string insert;
    std::string selected;  // the menu item's text it starts with, "" when none
    lsp::Range range;      // what `insert` replaces
    bool from_cache = false;
    bool time_limited = false;  // completion.maxTimeMs cut it at a line end
    double ms = 0, first_token_ms = 0;
    int32_t prompt_tokens = 0, cached_tokens = 0, computed_tokens = 0, generated_tokens = 0;
};

struct ChatRequest {
    std::vector<ChatMessage> messages;
    // The document and selection the user is looking at (optional).
    std::optional<std::string> uri;
    std::optional<lsp::Range> range;
    // Agent mode: the model may call the workspace tools (agent_loop.h) and propose
    // edits; else a plain answer.
    bool agent = false;
    // What the user @-mentioned in the last message (mentions.h).
    std::vector<Mention> mentions;
    // A prompt-library prompt to render around the last message (prompt_library.h).
    std::string prompt;
    // The client's name for the conversation: the server keeps what it sent the model
    // for it, and the next turn extends that (conversations.h). Empty: not kept.
    std::string conversation_id;
};
struct ChatResult {
    std::string text;
    int32_t cached_tokens = 0, computed_tokens = 0, generated_tokens = 0;
    // Prompt tokens of the last model turn (cached + computed of that turn).
    int32_t prompt_tokens = 0;
    std::optional<lsp::WorkspaceEdit> edit;  // edit(): the proposed change
    std::vector<Source> sources;             // context the answer was given
    std::vector<AgentStep> steps;            // agent mode: the tool calls
    std::string stop_reason;                 // agent mode: AgentLoopResult::stop_reason
    std::vector<ProposedFile> proposal;      // agent mode: edits for the user's review
};
// Streamed text of a chat as it is generated (may be null).
using OnText = std::function<void(std::string_view)>;
using Cancelled = std::function<bool()>;
// What a chat streams besides its text (each may be null): the sources once, before the
// answer; each agent step when it starts and when it ends.
struct ChatStreams {
    OnText text;
    std::function<void(const std::vector<Source>&)> sources;
    std::function<void(const AgentStep&)> step;
};

// latent/nextEdit: the edits the user will likely make next, after their recent edits.
struct NextEditRequest {
    std::string uri;
    int32_t version = 0;  // the client's version of the document
    lsp::Position position;
    bool model = true;  // may ask the model when the index has nothing
};
struct NextEditItem {
    std::string id;  // "<group>#<n>" (NextEditState::group_of)
    std::string uri;
    lsp::Range range;  // of that file's current text, in the client's encoding
    std::string new_text;
    std::string reason;  // "index" | "model"
    std::string kind;    // "rename" | "signature" | "rewrite"
    std::string label;
};
struct NextEditResult {
    int32_t version = 0;              // the server's version of the document asked about
    std::vector<NextEditItem> items;  // in the order to offer them
};

struct AgentOptions {
    Settings settings;  // before the client's (command-line flags)
    // A backend to use whatever the settings say (tests, benchmarks).
    std::shared_ptr<Generator> backend;
    // Makes the backend from settings instead of make_generator (tests: slow or failing loads).
    GeneratorFactory factory;
    // The scripted backend may be chosen by settings (`latent lsp --enable-test-backend`).
    bool allow_test_backends = false;
    std::function<void(const std::string&)> log;
    // A problem the user should see (a backend that failed to load).
    std::function<void(const std::string&)> show_error;
    // Index pass reports (see WorkspacesOptions::report).
    std::function<IndexReport(const std::string& root)> index_report;
    // Milliseconds on a steady clock, for the edit history (tests inject one). Null: the
    // steady clock.
    std::function<int64_t()> now_ms;
};

// Thread safety: every method may be called from any thread. change_document() and the
// other document calls are cheap and meant for the protocol's reading thread; the
// follow-ups (document_*) and features run on workers.
class Agent {
public:
    explicit Agent(AgentOptions options);
    ~Agent();
    Agent(const Agent&) = delete;
    Agent& operator=(const Agent&) = delete;

    // ---- documents (cheap: applied where the protocol reads them) ----
    DocumentStore& documents() { return docs_; }
    void open_document(Document doc);
    // False when the document is not open or would grow past DocumentStore's cap.
    bool change_document(const std::string& uri, int32_t version,
                         const std::vector<lsp::TextDocumentContentChangeEvent>& changes);
    void close_document(const std::string& uri);

    // ---- follow-ups (slower: the index, warming) ----
    void document_opened(const std::string& uri);
    void document_changed(const std::string& uri);
    void document_closed(const std::string& uri);
    void focus(const std::string& uri, std::optional<lsp::Position> position);
    enum class FileChange { kCreated = 1, kChanged = 2, kDeleted = 3 };
    void file_changed(const std::string& uri, FileChange change);

    // ---- workspace and settings ----
    Workspaces& workspaces() { return workspaces_; }
    GeneratorHost& generators() { return generators_; }
    Settings settings() const;
    // Applies new settings: a backend reload when those parts changed (after start()).
    void set_settings(const Settings& settings);
    // Starts the backend and indexing (the client said `initialized`). Once.
    void start();
    void folders_changed();  // after folders were added: index them

    // ---- features ----
    Outcome<CompletionResult> complete(const CompletionRequest& request,
                                       const Cancelled& cancelled);
    Outcome<ChatResult> chat(const ChatRequest& request, const Cancelled& cancelled,
                             const OnText& on_text);
    Outcome<ChatResult> chat(const ChatRequest& request, const Cancelled& cancelled,
                             const ChatStreams& streams);
    // latent/mentions: completion of an @file or @symbol mention.
    std::vector<MentionItem> mention_items(MentionKind kind, std::string_view query, size_t limit);
    // latent/prompts: the prompt library (built-ins and the workspace folders' prompts).
    std::vector<PromptInfo> prompts();

    Outcome<ChatResult> explain(const std::string& uri, lsp::Range range,
                                const Cancelled& cancelled, const OnText& on_text);
    Outcome<ChatResult> edit(const std::string& uri, lsp::Range range,
                             const std::string& instruction, const Cancelled& cancelled,
                             const OnText& on_text);
    // latent/nextEdit: index-driven suggestions (a rename or a parameter list followed to
    // the uses: next_edit_index.h), else — when allowed — the model's rewrite of the region
    // around the cursor (next_edit_model.h). A stale version answers nothing.
    Outcome<NextEditResult> next_edit(const NextEditRequest& request, const Cancelled& cancelled);
    // latent/nextEditFeedback. False for an unknown action.
    bool next_edit_feedback(const std::string& id, const std::string& action);

    // Generator, settings (redacted), completion figures, cache and index figures.
    nlohmann::json status() const;

private:
    // The document and selection a chat names (ChatRequest::uri, range), read from the
    // open document, capped.
    struct Selection {
        std::string path, text;
        std::optional<Source> source;
    };
    std::optional<Selection> chat_selection(const ChatRequest& req);
    engine::Expected<std::string> render_prompt(const ChatRequest& req, const std::string& input,
                                                const std::optional<Selection>& selection);
    GatheredContext gather_context(const ChatRequest& req, const std::string& question,
                                   const Settings& s);
    // `owner`: the backend's cache owner ("chat", or "chat:<conversation id>").
    Outcome<ChatResult> run_chat(std::vector<ChatMessage> messages, const Cancelled& cancelled,
                                 const OnText& on_text, const std::string& owner = "chat");
    void warm(const std::string& uri, std::optional<lsp::Position> position, WarmOrder order);
    // The FIM layout at byte `cursor` of `text` (document `uri`) within `budget`, retrieved
    // context included; `shown` (optional) gets the name the prompt gives the document.
    FimLayout layout_at(const std::string& uri, std::string_view text, size_t cursor,
                        const PromptBudget& budget, std::string* shown);
    // The layout to send for a completion: the full budget's when the backend says it
    // arrives within settings' latency target (or cannot say), else the largest of
    // smaller_budgets() that does (the smallest when none does). `reduced` tells which;
    // `sized`: the backend told the cost (the target applies to the answer too).
    FimLayout layout_in_time(const std::string& uri, std::string_view text, size_t cursor,
                             const Settings& s, int32_t max_tokens, Generator& backend,
                             std::string* shown, bool* reduced, bool* sized);
    std::vector<ContextBlock> context_blocks(const std::string& uri, const std::string& path,
                                             uint32_t line, size_t budget);
    void note_edit(const std::string& uri, const std::string& text, size_t start, size_t end);
    // The model's next edit for the region around `cursor` (agent_next_edit.cpp).
    Outcome<std::vector<NextEditItem>> model_next_edit(const Document& doc, size_t cursor,
                                                       const std::string& path, const Settings& s,
                                                       const Cancelled& cancelled);
    void on_backend_loaded(const std::shared_ptr<Generator>& b, const std::string& error);
    void log(const std::string& line) const;

    AgentOptions options_;
    DocumentStore docs_;
    SuggestionCache suggestions_;
    Workspaces workspaces_;
    Conversations conversations_;
    PromptLibrary prompt_library_;
    NextEditState next_edits_;

    mutable std::mutex mu_;  // everything below
    Settings settings_;
    bool started_ = false;
    // Where the last focus() put the user. Once a client sends them, it says where warming
    // pays: a document opened without focus (a peek, a diff, a file a command touched) is
    // not warmed at its top, and a backend that becomes ready warms this place.
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
        uint64_t order = 0;
    };
    uint64_t completion_order_ = 0;  // the order given to requests with order 0
    InFlight inflight_;
    // Recently edited ranges (uri, first line, last line), newest first.
    struct Touched {
        std::string uri;
        uint32_t first = 0, last = 0;
    };
    std::deque<Touched> touched_;
    // Retrieved context per document: where it was looked up, for which index generation
    // (WorkspaceIndex::generation_except of the document).
    struct CachedContext {
        uint64_t generation = 0;
        size_t budget = 0;  // completion.contextTokens it was looked up with
        uint32_t line = 0;
        std::vector<ContextBlock> blocks;
    };
    // By (document, budget): a prompt made smaller by the latency target asks for less.
    std::map<std::pair<std::string, size_t>, CachedContext> context_cache_;
    // Figures for status().
    uint64_t completions_ = 0, cache_hits_ = 0;
    double last_latency_ms_ = 0;
    int64_t last_cached_tokens_ = 0, last_computed_tokens_ = 0;

    // Last: it calls back into the members above from its loader thread, so it must stop
    // (in ~Agent) before they go.
    GeneratorHost generators_;
};

}  // namespace latent::agent
