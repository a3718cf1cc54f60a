// LspServer (see lsp_server.h).
#include "agent/lsp_server.h"

#include <chrono>
#include <filesystem>

namespace latent::agent {

using lsp::ResponseError;
using nlohmann::json;
namespace ec = lsp::error_code;
using Clock = std::chrono::steady_clock;
using C = lsp::Endpoint::Concurrency;

namespace {

// Typed params, or a -32602 error naming the problem.
template <class P>
std::optional<P> parse(const json& params, ResponseError& error) {
    try {
        return params.get<P>();
    } catch (const std::exception& e) {
        error = {ec::kInvalidParams, e.what(), {}};
        return std::nullopt;
    }
}

// One place maps feature errors to JSON-RPC codes.
ResponseError to_response_error(const FeatureError& e) {
    switch (e.kind) {
        case FeatureError::Kind::kInvalid:
            return {ec::kInvalidParams, e.message, {}};
        case FeatureError::Kind::kCancelled:
            return {ec::kRequestCancelled, e.message, {}};
        case FeatureError::Kind::kSuperseded: {
            // The prompt's size, so that a client (bench replay) can weigh what the engine
            // ran against every prompt asked for, answered or not.
            json data;
            if (e.prompt_tokens > 0) data = {{"promptTokens", e.prompt_tokens}};
            return {ec::kServerCancelled, e.message, data};
        }
        case FeatureError::Kind::kFailed:
            break;
    }
    return {ec::kRequestFailed, e.message, {}};
}

json source_json(const Source& s) {
    return {{"uri", s.uri}, {"path", s.path}, {"range", s.range}, {"why", s.why}};
}

json sources_json(const std::vector<Source>& sources) {
    json a = json::array();
    for (const auto& s : sources) a.push_back(source_json(s));
    return a;
}

json step_json(const AgentStep& s) {
    json j = {{"id", s.id},       {"tool", s.tool},     {"arguments", s.arguments},
              {"title", s.title}, {"status", s.status}, {"sources", sources_json(s.sources)}};
    if (!s.detail.empty()) j["detail"] = s.detail;
    return j;
}

// A Mention of latent/chat (see the extension's protocol.ts).
Mention parse_mention(const json& m) {
    Mention out;
    const std::string kind = m.at("kind").get<std::string>();
    if (kind == "file") {
        out.kind = Mention::Kind::kFile;
        out.uri = m.at("uri").get<std::string>();
        if (m.contains("range")) out.range = m["range"].get<lsp::Range>();
    } else if (kind == "symbol") {
        out.kind = Mention::Kind::kSymbol;
        out.name = m.at("name").get<std::string>();
        if (out.name.size() > 256)
            throw lsp::ProtocolError("a symbol name is longer than 256 bytes");
    } else if (kind == "codebase") {
        out.kind = Mention::Kind::kCodebase;
    } else if (kind == "openEditors") {
        out.kind = Mention::Kind::kOpenEditors;
    } else {
        throw lsp::ProtocolError("unknown mention kind: " + kind.substr(0, 32));
    }
    return out;
}

// The proposal as the extension reviews it: each file's text before and after, and the
// same as one WorkspaceEdit (CreateFile first for new files, then whole-file
// replacements) in the client's position encoding.
json proposal_json(const std::vector<ProposedFile>& files, PositionEncoding enc) {
    json changes = json::array(), list = json::array();
    for (const auto& f : files)
        if (f.created)
            changes.push_back({{"kind", "create"},
                               {"uri", f.uri},
                               {"options", {{"overwrite", false}, {"ignoreIfExists", false}}}});
    for (const auto& f : files) {
        const lsp::Range all{{0, 0}, to_position(f.old_text, f.old_text.size(), enc)};
        changes.push_back({{"textDocument", {{"uri", f.uri}, {"version", nullptr}}},
                           {"edits", json::array({{{"range", all}, {"newText", f.new_text}}})}});
        list.push_back({{"uri", f.uri},
                        {"path", f.path},
                        {"created", f.created},
                        {"oldText", f.old_text},
                        {"newText", f.new_text}});
    }
    return {{"edit", {{"documentChanges", changes}}}, {"files", list}};
}

json chat_json(const ChatResult& r, PositionEncoding enc = PositionEncoding::kUtf16) {
    json j = {{"text", r.text},
              {"cachedTokens", r.cached_tokens},
              {"computedTokens", r.computed_tokens},
              {"generatedTokens", r.generated_tokens}};
    if (r.edit) j["edit"] = *r.edit;
    if (!r.sources.empty()) j["sources"] = sources_json(r.sources);
    if (!r.steps.empty()) {
        j["steps"] = json::array();
        for (const auto& s : r.steps) j["steps"].push_back(step_json(s));
    }
    if (!r.stop_reason.empty()) j["stopReason"] = r.stop_reason;
    if (!r.proposal.empty()) j["proposal"] = proposal_json(r.proposal, enc);
    return j;
}

// Streams text pieces as partial results, batched: one $/progress per piece would flood a
// slow client. flush() sends what is left.
class PartialText {
public:
    explicit PartialText(lsp::RequestContext& ctx) : ctx_(ctx) {}
    void operator()(std::string_view piece) {
        pending_ += piece;
        if (Clock::now() - last_ > std::chrono::milliseconds(30) || pending_.size() > 256) flush();
    }
    // Another kind of partial result ({sources}, {step}), after the text so far.
    void send(json partial) {
        flush();
        ctx_.send_partial_result(std::move(partial));
    }
    void flush() {
        if (pending_.empty()) return;
        ctx_.send_partial_result({{"text", pending_}});
        pending_.clear();
        last_ = Clock::now();
    }

private:
    lsp::RequestContext& ctx_;
    std::string pending_;
    Clock::time_point last_ = Clock::now();
};

}  // namespace

LspServer::LspServer(lsp::Endpoint& endpoint, LspServerOptions options)
    : ep_(endpoint), options_(std::move(options)) {
    AgentOptions ao;
    ao.settings = options_.settings;
    ao.backend = options_.backend;
    ao.factory = options_.factory;
    ao.allow_test_backends = options_.allow_test_backends;
    ao.log = options_.log;
    ao.show_error = [this](const std::string& message) {
        // Nothing chosen yet is not an error where the client guides the first run: its
        // own prompt is the one message (an error toast would outlive the model's load).
        if (client_guides_setup_ && !backend_configured(agent_->settings())) return;
        ep_.notify("window/showMessage", {{"type", 1}, {"message", message}});
    };
    ao.index_report = [this](const std::string& root) { return index_report(root); };
    agent_ = std::make_unique<Agent>(std::move(ao));
    register_handlers();
}

LspServer::~LspServer() {
    // The handlers hold `this`: no message may reach them once the agent goes.
    ep_.stop();
    agent_.reset();
}

void LspServer::log(const std::string& line) const {
    if (options_.log) options_.log(line);
}

void LspServer::register_handlers() {
    ep_.on_request(
        "initialize", [this](const json& p, lsp::RequestContext&) { return initialize(p); },
        C::kSequential);
    ep_.on_notification("initialized", [this](const json&) { initialized(); });
    ep_.on_request(
        "shutdown",
        [this](const json&, lsp::RequestContext&) -> lsp::Result<json> {
            shutdown_ = true;
            return json(nullptr);
        },
        C::kSequential);
    ep_.on_notification("exit", [this](const json&) {
        if (options_.on_exit) options_.on_exit(shutdown_ ? 0 : 1);
    });

    // Document sync: applied on the reading thread, so every request read after it sees
    // the edit; the slower follow-ups go to the workers, in order.
    ep_.on_notification(
        "textDocument/didOpen",
        [this](const json& p) {
            auto d = p.get<lsp::DidOpenTextDocumentParams>();
            const std::string uri = d.textDocument.uri;
            agent_->open_document({uri, std::move(d.textDocument.languageId),
                                   d.textDocument.version, std::move(d.textDocument.text)});
            ep_.post(C::kSequential, [this, uri] { agent_->document_opened(uri); });
        },
        C::kReader);
    ep_.on_notification(
        "textDocument/didChange",
        [this](const json& p) {
            const auto d = p.get<lsp::DidChangeTextDocumentParams>();
            const std::string& uri = d.textDocument.uri;
            if (agent_->change_document(uri, d.textDocument.version, d.contentChanges))
                ep_.post(C::kSequential, [this, uri] { agent_->document_changed(uri); });
        },
        C::kReader);
    ep_.on_notification(
        "textDocument/didClose",
        [this](const json& p) {
            const auto d = p.get<lsp::DidCloseTextDocumentParams>();
            const std::string uri = d.textDocument.uri;
            agent_->close_document(uri);
            ep_.post(C::kSequential, [this, uri] { agent_->document_closed(uri); });
        },
        C::kReader);
    ep_.on_notification("textDocument/didSave", [](const json&) {});
    ep_.on_notification("latent/didFocus", [this](const json& p) {
        const std::string uri = p.at("textDocument").at("uri").get<std::string>();
        std::optional<lsp::Position> pos;
        if (p.contains("position")) pos = p["position"].get<lsp::Position>();
        agent_->focus(uri, pos);
    });
    ep_.on_notification("workspace/didChangeConfiguration", [this](const json& p) {
        apply_settings(p.is_object() && p.contains("settings") ? p["settings"] : json());
    });
    ep_.on_notification("workspace/didChangeWatchedFiles", [this](const json& p) {
        for (const auto& c : p.at("changes")) {
            const int type = c.at("type").get<int>();
            if (type < 1 || type > 3) continue;
            agent_->file_changed(c.at("uri").get<std::string>(),
                                 static_cast<Agent::FileChange>(type));
        }
    });
    ep_.on_notification("workspace/didChangeWorkspaceFolders", [this](const json& p) {
        const json& e = p.at("event");
        for (const auto& f : e.value("removed", json::array()))
            agent_->workspaces().remove_folder(f.at("uri").get<std::string>());
        for (const auto& f : e.value("added", json::array()))
            agent_->workspaces().add_folder(f.at("uri").get<std::string>());
        agent_->folders_changed();
    });
    ep_.on_request(
        "textDocument/inlineCompletion",
        [this](const json& p, lsp::RequestContext& ctx) { return inline_completion(p, ctx); });
    ep_.on_request("textDocument/codeAction",
                   [this](const json& p, lsp::RequestContext&) { return code_action(p); });
    ep_.on_request("workspace/executeCommand", [this](const json& p, lsp::RequestContext& ctx) {
        return execute_command(p, ctx);
    });
    ep_.on_request("latent/chat",
                   [this](const json& p, lsp::RequestContext& ctx) { return chat(p, ctx); });
    ep_.on_request("latent/explain",
                   [this](const json& p, lsp::RequestContext& ctx) { return explain(p, ctx); });
    ep_.on_request("latent/edit",
                   [this](const json& p, lsp::RequestContext& ctx) { return edit(p, ctx); });
    ep_.on_request("latent/mentions",
                   [this](const json& p, lsp::RequestContext&) { return mentions(p); });
    ep_.on_request("latent/prompts",
                   [this](const json&, lsp::RequestContext&) { return prompts(); });
    ep_.on_request("latent/nextEdit",
                   [this](const json& p, lsp::RequestContext& ctx) { return next_edit(p, ctx); });
    ep_.on_notification("latent/nextEditFeedback", [this](const json& p) {
        const std::string id = p.at("id").get<std::string>();
        const std::string action = p.at("action").get<std::string>();
        if (id.size() > 1024 || !agent_->next_edit_feedback(id, action))
            log("warning: latent/nextEditFeedback: ignored (action must be shown, accepted or "
                "dismissed)");
    });
    ep_.on_request("latent/status", [this](const json&, lsp::RequestContext&) -> lsp::Result<json> {
        return agent_->status();
    });
}

lsp::Result<json> LspServer::initialize(const json& params) {
    ResponseError err;
    auto p = parse<lsp::InitializeParams>(params, err);
    if (!p) return err;
    const PositionEncoding enc = negotiate_encoding(
        p->capabilities.general ? p->capabilities.general->positionEncodings : std::nullopt);
    agent_->documents().set_encoding(enc);
    std::vector<std::string> folders;
    if (p->workspaceFolders) {
        for (const auto& f : *p->workspaceFolders) folders.push_back(f.uri);
    } else if (p->rootUri) {
        folders.push_back(*p->rootUri);
    }
    agent_->workspaces().set_folders(folders);
    const json caps = params.value("capabilities", json::object());
    // A capability of another type than boolean, or a path through a non-object, is absent.
    auto flag = [&caps](std::initializer_list<const char*> path) {
        const json* v = &caps;
        for (const char* key : path) {
            if (!v->is_object() || !v->contains(key)) return false;
            v = &(*v)[key];
        }
        return v->is_boolean() && v->get<bool>();
    };
    progress_ok_ = flag({"window", "workDoneProgress"});
    watch_dynamic_ = flag({"workspace", "didChangeWatchedFiles", "dynamicRegistration"});
    client_guides_setup_ = flag({"experimental", "latent", "setupGuide"});
    apply_settings(p->initializationOptions);
    ep_.open_gate();

    lsp::InitializeResult r;
    r.capabilities.positionEncoding = encoding_name(enc);
    r.capabilities.textDocumentSync =
        lsp::TextDocumentSyncOptions{true, lsp::TextDocumentSyncKind::Incremental};
    r.capabilities.inlineCompletionProvider = true;
    r.capabilities.executeCommandProvider =
        lsp::ExecuteCommandOptions{{"latent.explain", "latent.edit"}};
    r.serverInfo = lsp::ServerInfo{"latent", LATENT_VERSION};
    json j = r;
    j["capabilities"]["codeActionProvider"] = {
        {"codeActionKinds", {"refactor.rewrite", "quickfix"}}};
    j["capabilities"]["workspace"] = {
        {"workspaceFolders", {{"supported", true}, {"changeNotifications", true}}}};
    j["capabilities"]["experimental"] = {{"latent",
                                          {{"chat", true},
                                           {"explain", true},
                                           {"edit", true},
                                           {"status", true},
                                           {"didFocus", true}}}};
    log("initialize: position encoding " + std::string(encoding_name(enc)) + ", " +
        std::to_string(agent_->workspaces().folders().size()) + " workspace folder(s)");
    return j;
}

void LspServer::apply_settings(const json& j) {
    std::vector<std::string> problems;
    const Settings s = parse_settings(j, agent_->settings(), &problems);
    for (const auto& p : problems) log("warning: settings: " + p);
    agent_->set_settings(s);
}

void LspServer::initialized() {
    if (initialized_.exchange(true)) return;
    agent_->start();
    // Watch the workspace's files, when the client lets us register dynamically.
    if (watch_dynamic_) {
        lsp::RegistrationParams rp;
        rp.registrations.push_back(
            {"latent-watched-files", "workspace/didChangeWatchedFiles",
             json{{"watchers", json::array({json{{"globPattern", "**/*"}, {"kind", 7}}})}}});
        ep_.send_request("client/registerCapability", rp, [this](lsp::Result<json> r) {
            if (!r) log("warning: client/registerCapability: " + r.error().message);
        });
    }
}

IndexReport LspServer::index_report(const std::string& root) {
    if (!progress_ok_) return {};
    const lsp::ProgressToken token("latent-index-" + std::to_string(++progress_tokens_));
    auto fut =
        ep_.send_request("window/workDoneProgress/create", lsp::WorkDoneProgressCreateParams{token},
                         std::chrono::milliseconds(5000));
    if (fut.wait_for(std::chrono::seconds(6)) != std::future_status::ready || !fut.get().ok())
        return {};
    // WorkDoneProgress is single-threaded: reports and the end come from the index thread
    // only, in order.
    auto progress = std::make_shared<lsp::WorkDoneProgress>(ep_, token);
    progress->begin(
        {"Latent: indexing", false, std::filesystem::path(root).filename().string(), 0});
    auto last = std::make_shared<Clock::time_point>(Clock::now());
    IndexReport r;
    r.progress = [progress, last](size_t done, size_t total) {
        if (done != total && Clock::now() - *last < std::chrono::milliseconds(200)) return;
        *last = Clock::now();
        lsp::WorkDoneProgressReport rep;
        rep.message = std::to_string(done) + "/" + std::to_string(total) + " files";
        rep.percentage = total ? static_cast<uint32_t>(100 * done / total) : 100;
        progress->report(rep);
    };
    r.done = [progress](const std::string& summary) { progress->end({summary}); };
    return r;
}

lsp::Result<json> LspServer::with_backend(lsp::RequestContext& ctx, Handler fn) {
    if (!agent_->generators().loading()) return fn(ctx);
    // The model is loading (seconds to minutes): wait without holding a worker.
    auto reply = ctx.defer();
    agent_->generators().when_ready([this, reply, fn](const GeneratorHost::Lease&) {
        ep_.post(C::kParallel, [reply, fn] {
            if (reply->context().cancelled()) return;  // answered -32800 already
            reply->reply(fn(reply->context()));
        });
    });
    return json(nullptr);  // not sent: the deferred reply answers
}

lsp::Result<json> LspServer::inline_completion(const json& params, lsp::RequestContext& ctx) {
    ResponseError err;
    auto p = parse<lsp::InlineCompletionParams>(params, err);
    if (!p) return err;
    CompletionRequest req;
    req.uri = p->textDocument.uri;
    req.position = p->position;
    req.invoked = p->context.triggerKind == lsp::InlineCompletionTriggerKind::Invoked;
    req.selected = p->context.selectedCompletionInfo;
    if (!agent_->documents().contains(req.uri)) return json{{"items", json::array()}};
    // Ordered by when the client asked, not by when a worker got to it.
    req.order = ctx.arrival();
    return with_backend(ctx, [this, req](lsp::RequestContext& c) -> lsp::Result<json> {
        // The client asked again since (typing while the model loads, or a worker that got
        // to this one late): this one is pointless.
        if (req.order < ep_.newest_arrival("textDocument/inlineCompletion"))
            return ResponseError{ec::kServerCancelled, "superseded by a newer request", {}};
        auto r = agent_->complete(req, [&c] { return c.cancelled(); });
        if (!r) return to_response_error(r.error);
        const CompletionResult& v = *r.value;
        json result = {{"items", json::array()}};
        if (!v.insert.empty() && v.insert != v.selected) {
            lsp::InlineCompletionItem item;
            item.insertText = v.insert;
            item.range = v.range;
            result["items"].push_back(item);
        }
        result["latent"] = {{"ms", v.ms},
                            {"firstTokenMs", v.first_token_ms},
                            {"fromCache", v.from_cache},
                            {"cachedTokens", v.cached_tokens},
                            {"computedTokens", v.computed_tokens},
                            {"timeLimited", v.time_limited}};
        return result;
    });
}

lsp::Result<json> LspServer::chat(const json& params, lsp::RequestContext& ctx) {
    ChatRequest req;
    try {
        const json& ms = params.at("messages");
        if (!ms.is_array()) throw lsp::ProtocolError("messages must be an array");
        for (const auto& m : ms)
            req.messages.push_back(
                {m.at("role").get<std::string>(), m.at("content").get<std::string>()});
        if (params.contains("context") && params["context"].is_object()) {
            const json& c = params["context"];
            if (c.contains("textDocument"))
                req.uri = c["textDocument"].at("uri").get<std::string>();
            if (c.contains("range")) req.range = c["range"].get<lsp::Range>();
        }
        if (params.contains("mode")) {
            const std::string mode = params["mode"].get<std::string>();
            if (mode != "chat" && mode != "agent")
                throw lsp::ProtocolError("mode must be \"chat\" or \"agent\"");
            req.agent = mode == "agent";
        }
        if (params.contains("mentions")) {
            const json& ms2 = params["mentions"];
            if (!ms2.is_array() || ms2.size() > 64)
                throw lsp::ProtocolError("mentions must be an array of at most 64");
            for (const auto& m : ms2) req.mentions.push_back(parse_mention(m));
        }
        if (params.contains("prompt")) req.prompt = params["prompt"].get<std::string>();
        if (params.contains("conversationId")) {
            req.conversation_id = params["conversationId"].get<std::string>();
            if (req.conversation_id.size() > 128)
                throw lsp::ProtocolError("conversationId is longer than 128 bytes");
        }
    } catch (const std::exception& e) {
        return ResponseError{ec::kInvalidParams, e.what(), {}};
    }
    return with_backend(ctx, [this, req](lsp::RequestContext& c) -> lsp::Result<json> {
        PartialText partial(c);
        ChatStreams streams;
        streams.text = [&partial](std::string_view t) { partial(t); };
        streams.sources = [&partial](const std::vector<Source>& s) {
            partial.send({{"sources", sources_json(s)}});
        };
        streams.step = [&partial](const AgentStep& s) { partial.send({{"step", step_json(s)}}); };
        auto r = agent_->chat(
            req, [&c] { return c.cancelled(); }, streams);
        if (!r) return to_response_error(r.error);
        partial.flush();
        return chat_json(*r.value, agent_->documents().encoding());
    });
}

lsp::Result<json> LspServer::mentions(const json& params) {
    MentionKind kind;
    std::string query;
    size_t limit = kDefaultMentionLimit;
    try {
        const std::string k = params.at("kind").get<std::string>();
        if (k == "file")
            kind = MentionKind::kFile;
        else if (k == "symbol")
            kind = MentionKind::kSymbol;
        else
            throw lsp::ProtocolError("kind must be \"file\" or \"symbol\"");
        query = params.value("query", std::string());
        if (query.size() > 256) throw lsp::ProtocolError("query is longer than 256 bytes");
        if (params.contains("limit")) limit = params["limit"].get<size_t>();
    } catch (const std::exception& e) {
        return ResponseError{ec::kInvalidParams, e.what(), {}};
    }
    json items = json::array();
    for (const auto& it : agent_->mention_items(kind, query, limit)) {
        json j = {{"label", it.label}, {"detail", it.detail}, {"uri", it.uri}};
        if (it.range) j["range"] = *it.range;
        items.push_back(std::move(j));
    }
    return json{{"items", items}};
}

lsp::Result<json> LspServer::prompts() {
    json list = json::array();
    for (const auto& p : agent_->prompts()) {
        json context = json::array();
        for (auto c : p.context) context.push_back(prompt_context_name(c));
        json j = {{"name", p.name},
                  {"description", p.description},
                  {"context", context},
                  {"source", p.workspace ? "workspace" : "builtin"}};
        if (!p.path.empty()) j["uri"] = path_to_uri(p.path);
        list.push_back(std::move(j));
    }
    return json{{"prompts", list}};
}

lsp::Result<json> LspServer::next_edit(const json& params, lsp::RequestContext& ctx) {
    NextEditRequest req;
    try {
        req.uri = params.at("textDocument").at("uri").get<std::string>();
        req.version = params.at("textDocument").at("version").get<int32_t>();
        req.position = params.at("position").get<lsp::Position>();
        req.model = params.value("model", true);
    } catch (const std::exception& e) {
        return ResponseError{ec::kInvalidParams, e.what(), {}};
    }
    // The client asks again after each pause in typing: an older question is pointless.
    const uint64_t order = ctx.arrival();
    auto cancelled = [this, order, &ctx] {
        return ctx.cancelled() || order < ep_.newest_arrival("latent/nextEdit");
    };
    auto r = agent_->next_edit(req, cancelled);
    if (!r) return to_response_error(r.error);
    json edits = json::array();
    for (const auto& it : r.value->items) {
        edits.push_back({{"id", it.id},
                         {"uri", it.uri},
                         {"range", it.range},
                         {"newText", it.new_text},
                         {"reason", it.reason},
                         {"kind", it.kind},
                         {"label", it.label}});
    }
    return json{{"version", r.value->version}, {"edits", edits}};
}

lsp::Result<json> LspServer::explain(const json& params, lsp::RequestContext& ctx) {
    std::string uri;
    lsp::Range range;
    try {
        uri = params.at("textDocument").at("uri").get<std::string>();
        range = params.at("range").get<lsp::Range>();
    } catch (const std::exception& e) {
        return ResponseError{ec::kInvalidParams, e.what(), {}};
    }
    return with_backend(ctx, [this, uri, range](lsp::RequestContext& c) -> lsp::Result<json> {
        PartialText partial(c);
        auto r = agent_->explain(
            uri, range, [&c] { return c.cancelled(); },
            [&partial](std::string_view t) { partial(t); });
        if (!r) return to_response_error(r.error);
        partial.flush();
        return chat_json(*r.value);
    });
}

lsp::Result<json> LspServer::edit(const json& params, lsp::RequestContext& ctx) {
    std::string uri, instruction;
    lsp::Range range;
    try {
        uri = params.at("textDocument").at("uri").get<std::string>();
        range = params.at("range").get<lsp::Range>();
        instruction = params.at("instruction").get<std::string>();
    } catch (const std::exception& e) {
        return ResponseError{ec::kInvalidParams, e.what(), {}};
    }
    return with_backend(
        ctx, [this, uri, range, instruction](lsp::RequestContext& c) -> lsp::Result<json> {
            PartialText partial(c);
            auto r = agent_->edit(
                uri, range, instruction, [&c] { return c.cancelled(); },
                [&partial](std::string_view t) { partial(t); });
            if (!r) return to_response_error(r.error);
            partial.flush();
            return chat_json(*r.value);
        });
}

lsp::Result<json> LspServer::code_action(const json& params) {
    json actions = json::array();
    try {
        const std::string uri = params.at("textDocument").at("uri").get<std::string>();
        const auto range = params.at("range").get<lsp::Range>();
        if (range.start == range.end) return actions;  // no selection
        const json args = json::array({uri, json(range)});
        actions.push_back({{"title", "Latent: Explain selection"},
                           {"kind", "quickfix"},
                           {"command",
                            {{"title", "Explain selection"},
                             {"command", "latent.explain"},
                             {"arguments", args}}}});
        actions.push_back(
            {{"title", "Latent: Edit selection…"},
             {"kind", "refactor.rewrite"},
             {"command",
              {{"title", "Edit selection"}, {"command", "latent.edit"}, {"arguments", args}}}});
    } catch (const std::exception& e) {
        return ResponseError{ec::kInvalidParams, e.what(), {}};
    }
    return actions;
}

lsp::Result<json> LspServer::execute_command(const json& params, lsp::RequestContext& ctx) {
    std::string command, uri;
    lsp::Range range;
    json args;
    try {
        command = params.at("command").get<std::string>();
        args = params.value("arguments", json::array());
        if (!args.is_array() || args.size() < 2)
            return ResponseError{ec::kInvalidParams, "arguments: [uri, range, instruction?]", {}};
        uri = args[0].get<std::string>();
        range = args[1].get<lsp::Range>();
    } catch (const std::exception& e) {
        return ResponseError{ec::kInvalidParams, e.what(), {}};
    }
    if (command == "latent.explain")
        return explain({{"textDocument", {{"uri", uri}}}, {"range", range}}, ctx);
    if (command != "latent.edit")
        return ResponseError{ec::kInvalidParams, "unknown command: " + command, {}};
    const std::string instruction =
        args.size() > 2 && args[2].is_string() ? args[2].get<std::string>() : "Improve this code";
    return with_backend(
        ctx, [this, uri, range, instruction](lsp::RequestContext& c) -> lsp::Result<json> {
            auto r = agent_->edit(
                uri, range, instruction, [&c] { return c.cancelled(); }, nullptr);
            if (!r) return to_response_error(r.error);
            // Editors without the extension: ask the client to apply it (they show their own UI).
            lsp::ApplyWorkspaceEditParams ap;
            ap.label = "Latent: edit selection";
            ap.edit = *r.value->edit;
            ep_.send_request("workspace/applyEdit", ap, [this](lsp::Result<json> res) {
                if (!res) log("error: workspace/applyEdit: " + res.error().message);
            });
            return chat_json(*r.value);
        });
}

}  // namespace latent::agent
