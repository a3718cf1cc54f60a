// Latent's language server (see server.h).
#include "agent/server.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "agent/local_backend.h"
#include "agent/remote_backend.h"
#include "agent/workspace_index.h"

namespace latent::agent {

using lsp::ResponseError;
using nlohmann::json;
namespace ec = lsp::error_code;
using Clock = std::chrono::steady_clock;

namespace {

// A chat history longer than this is cut from the front: it bounds the prompt we build
// (and what a client can make us tokenize) whatever the client sends.
constexpr size_t kMaxChatMessages = 64;
constexpr size_t kMaxChatBytes = 256u << 10;
// Retrieved context is kept for a document while the cursor stays within this many lines
// of where it was looked up (and the index is unchanged): context comes first in the
// prompt, so changing it recomputes the whole prompt.
constexpr uint32_t kContextKeepLines = 40;
constexpr size_t kMaxTouched = 8;

// A completion prompt's budget from the settings (line strides at their defaults).
PromptBudget prompt_budget(const Settings& s) {
    PromptBudget b;
    b.context_tokens = static_cast<size_t>(s.context_tokens);
    b.prefix_tokens = static_cast<size_t>(s.prefix_tokens);
    b.suffix_tokens = static_cast<size_t>(s.suffix_tokens);
    return b;
}

template <class T>
T get_or(const json& j, const char* key, T fallback) {
    if (!j.is_object()) return fallback;
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    try {
        return it->get<T>();
    } catch (const std::exception&) {
        return fallback;
    }
}

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

std::string extension_language(const std::string& uri) {
    const size_t dot = uri.rfind('.');
    return dot == std::string::npos ? "" : uri.substr(dot + 1);
}

}  // namespace

Settings parse_settings(const json& in, Settings s, std::vector<std::string>* problems) {
    const json& j =
        (in.is_object() && in.contains("latent") && in["latent"].is_object()) ? in["latent"] : in;
    if (!j.is_object()) return s;
    auto str = [&](const json& o, const char* key, std::string& out) {
        if (!o.is_object() || !o.contains(key) || o[key].is_null()) return;
        if (o[key].is_string())
            out = o[key].get<std::string>();
        else if (problems)
            problems->push_back(std::string(key) + " must be a string");
    };
    auto num = [&](const json& o, const char* key, int& out, int lo, int hi) {
        if (!o.is_object() || !o.contains(key) || o[key].is_null()) return;
        if (o[key].is_number_integer())
            out = static_cast<int>(std::clamp<int64_t>(o[key].get<int64_t>(), lo, hi));
        else if (problems)
            problems->push_back(std::string(key) + " must be an integer");
    };
    str(j, "backend", s.backend);
    str(j, "engine", s.engine);
    num(j, "threads", s.threads, 0, 1024);
    str(j, "model", s.model);
    if (j.contains("remote") && j["remote"].is_object()) {
        const json& r = j["remote"];
        str(r, "url", s.remote_url);
        str(r, "model", s.remote_model);
        str(r, "apiKey", s.remote_key);
        if (get_or<bool>(r, "fimViaChat", false)) s.remote_fim_api = "chat";
        std::string api = s.remote_fim_api;
        str(r, "fimApi", api);
        if (api == "completions" || api == "infill" || api == "chat")
            s.remote_fim_api = api;
        else if (problems)
            problems->push_back("remote.fimApi must be completions, infill or chat");
    }
    if (j.contains("completion") && j["completion"].is_object()) {
        const json& c = j["completion"];
        num(c, "maxTokens", s.max_tokens, 1, 1024);
        num(c, "contextTokens", s.context_tokens, 0, 32768);
        num(c, "prefixTokens", s.prefix_tokens, 16, 65536);
        num(c, "suffixTokens", s.suffix_tokens, 0, 32768);
        num(c, "maxTimeMs", s.max_time_ms, 0, 600000);
    }
    if (j.contains("chat") && j["chat"].is_object())
        num(j["chat"], "maxTokens", s.chat_max_tokens, 1, 8192);
    if (j.contains("index") && j["index"].is_object()) {
        const json& x = j["index"];
        s.index = get_or<bool>(x, "enabled", s.index);
        s.exclude = get_or<std::vector<std::string>>(x, "exclude", s.exclude);
        str(x, "db", s.index_db);
    }
    int cache_mb = static_cast<int>(std::min<uint64_t>(s.cache_mb, 1 << 20));
    num(j, "cacheMb", cache_mb, 16, 1 << 20);
    s.cache_mb = static_cast<uint64_t>(cache_mb);
    s.prefix_cache = get_or<bool>(j, "prefixCache", s.prefix_cache);
    s.mtp = get_or<bool>(j, "mtp", s.mtp);
    if (j.contains("diskCache") && j["diskCache"].is_object()) {
        const json& d = j["diskCache"];
        str(d, "dir", s.disk_cache_dir);
        int disk_mb = static_cast<int>(std::min<uint64_t>(s.disk_cache_mb, 1 << 24));
        num(d, "mb", disk_mb, 0, 1 << 24);
        s.disk_cache_mb = static_cast<uint64_t>(disk_mb);
    }
    s.script = get_or<std::vector<std::string>>(j, "script", s.script);
    num(j, "scriptDelayMs", s.script_delay_ms, 0, 60000);
    return s;
}

json redacted(const Settings& s) {
    return {{"backend", s.backend},
            {"engine", s.engine},
            {"threads", s.threads},
            {"model", s.model},
            {"remote",
             {{"url", s.remote_url},
              {"model", s.remote_model},
              {"apiKey", s.remote_key.empty() ? "" : "***"},
              {"fimApi", s.remote_fim_api}}},
            {"completion",
             {{"maxTokens", s.max_tokens},
              {"contextTokens", s.context_tokens},
              {"prefixTokens", s.prefix_tokens},
              {"suffixTokens", s.suffix_tokens},
              {"maxTimeMs", s.max_time_ms}}},
            {"index", {{"enabled", s.index}, {"exclude", s.exclude}}},
            {"cacheMb", s.cache_mb},
            {"prefixCache", s.prefix_cache},
            {"mtp", s.mtp},
            {"diskCache", {{"dir", s.disk_cache_dir}, {"mb", s.disk_cache_mb}}}};
}

Server::Server(lsp::Endpoint& endpoint, ServerOptions options)
    : ep_(endpoint), options_(std::move(options)) {
    settings_ = options_.settings;
    register_handlers();
}

Server::~Server() {
    // Stop the index threads before the members they call back into go.
    std::vector<std::shared_ptr<WorkspaceIndex>> indexes;
    {
        std::lock_guard<std::mutex> lock(mu_);
        indexes.swap(indexes_);
    }
    indexes.clear();
}

void Server::log(const std::string& line) const {
    if (options_.log) options_.log(line);
}

std::shared_ptr<Backend> Server::backend() const {
    std::lock_guard<std::mutex> lock(mu_);
    return backend_;
}

std::shared_ptr<Backend> Server::ready_backend(lsp::RequestContext& ctx,
                                               std::chrono::milliseconds patience) {
    const auto deadline = Clock::now() + patience;
    std::unique_lock<std::mutex> lock(mu_);
    while (backend_loading_ > 0 && Clock::now() < deadline && !ctx.cancelled())
        backend_cv_.wait_for(lock, std::chrono::milliseconds(20));
    return backend_;
}

std::shared_ptr<WorkspaceIndex> Server::index_for(const std::string& path) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::shared_ptr<WorkspaceIndex> best;
    for (const auto& ix : indexes_)
        if (ix->contains(path) && (!best || ix->root().size() > best->root().size())) best = ix;
    return best;
}

void Server::register_handlers() {
    using C = lsp::Endpoint::Concurrency;
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
    ep_.on_notification("textDocument/didOpen", [this](const json& p) {
        lsp::DidOpenTextDocumentParams d = p.get<lsp::DidOpenTextDocumentParams>();
        if (d.textDocument.text.size() > DocumentStore::kMaxDocumentBytes) return;
        const std::string uri = d.textDocument.uri;
        if (!inline_sync_)
            docs_.open({uri, d.textDocument.languageId, d.textDocument.version,
                        std::move(d.textDocument.text)});
        bool focused;
        {
            std::lock_guard<std::mutex> lock(mu_);
            focused = focus_.has_value();
        }
        if (!focused) warm(uri, std::nullopt);  // else its didFocus says where, if it is shown
    });
    ep_.on_notification("textDocument/didChange", [this](const json& p) {
        const auto d = p.get<lsp::DidChangeTextDocumentParams>();
        if (!inline_sync_) {
            std::vector<AppliedChange> applied;
            if (!docs_.change(d.textDocument.uri, d.textDocument.version, d.contentChanges,
                              &applied)) {
                log("didChange for a document that is not open (or too large): " +
                    d.textDocument.uri);
                return;
            }
            if (const auto doc = docs_.get(d.textDocument.uri); doc && !applied.empty())
                note_edit(doc->uri, doc->text, applied.back().start, applied.back().new_end);
        }
        const auto doc = docs_.get(d.textDocument.uri);
        if (!doc) return;
        const std::string path = uri_to_path(doc->uri);
        if (auto ix = index_for(path)) ix->update(path, doc->text);
    });
    ep_.on_notification("textDocument/didClose", [this](const json& p) {
        const auto d = p.get<lsp::DidCloseTextDocumentParams>();
        if (!inline_sync_) {
            docs_.close(d.textDocument.uri);
            suggestions_.forget(d.textDocument.uri);
        }
        if (auto b = backend()) b->release(d.textDocument.uri);
        const std::string path = uri_to_path(d.textDocument.uri);
        if (auto ix = index_for(path)) ix->update(path);  // back to the disk's version
    });
    ep_.on_notification("textDocument/didSave", [](const json&) {});
    ep_.on_notification("latent/didFocus", [this](const json& p) {
        const std::string uri = p.at("textDocument").at("uri").get<std::string>();
        std::optional<lsp::Position> pos;
        if (p.contains("position")) pos = p["position"].get<lsp::Position>();
        {
            std::lock_guard<std::mutex> lock(mu_);
            focus_ = Focus{uri, pos};
            // The user left the document of the in-flight completion: nobody will see it.
            if (inflight_.superseded && inflight_.uri != uri) {
                inflight_.superseded->store(true);
                inflight_ = {};
            }
        }
        warm(uri, pos);
    });
    ep_.on_notification("workspace/didChangeConfiguration", [this](const json& p) {
        apply_settings(p.is_object() && p.contains("settings") ? p["settings"] : json());
    });
    ep_.on_notification("workspace/didChangeWatchedFiles", [this](const json& p) {
        for (const auto& c : p.at("changes")) {
            const std::string path = uri_to_path(c.at("uri").get<std::string>());
            const int type = c.at("type").get<int>();
            if (path.empty()) continue;
            // An open document's text is the editor's, not the disk's.
            if (docs_.get(c["uri"].get<std::string>())) continue;
            if (auto ix = index_for(path)) {
                if (type == 3)
                    ix->remove(path);
                else
                    ix->update(path);
            }
        }
    });
    ep_.on_notification("workspace/didChangeWorkspaceFolders", [this](const json& p) {
        const json& e = p.at("event");
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& f : e.value("removed", json::array())) {
            const std::string path = uri_to_path(f.at("uri").get<std::string>());
            std::erase(folders_, path);
            std::erase_if(indexes_, [&](const auto& ix) { return ix->root() == path; });
        }
        for (const auto& f : e.value("added", json::array())) {
            const std::string path = uri_to_path(f.at("uri").get<std::string>());
            if (!path.empty()) folders_.push_back(path);
        }
        if (initialized_) {
            std::thread([this] { start_indexing(); }).detach();
        }
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
    ep_.on_request("latent/status", [this](const json&, lsp::RequestContext&) { return status(); });
}

void Server::sync_documents(std::string_view body) {
    inline_sync_ = true;
    // Most messages are not document sync: skip them without parsing.
    if (body.find("\"textDocument/did") == std::string_view::npos || !ep_.gate_open()) return;
    const json m = json::parse(body, nullptr, false);
    if (!m.is_object() || m.contains("id") || !m.contains("params") || !m["method"].is_string())
        return;
    const std::string method = m["method"].get<std::string>();
    try {
        if (method == "textDocument/didOpen") {
            auto d = m["params"].get<lsp::DidOpenTextDocumentParams>();
            if (d.textDocument.text.size() > DocumentStore::kMaxDocumentBytes) return;
            docs_.open({d.textDocument.uri, d.textDocument.languageId, d.textDocument.version,
                        std::move(d.textDocument.text)});
        } else if (method == "textDocument/didChange") {
            const auto d = m["params"].get<lsp::DidChangeTextDocumentParams>();
            std::vector<AppliedChange> applied;
            if (!docs_.change(d.textDocument.uri, d.textDocument.version, d.contentChanges,
                              &applied)) {
                log("didChange for a document that is not open (or too large): " +
                    d.textDocument.uri);
                return;
            }
            if (const auto doc = docs_.get(d.textDocument.uri); doc && !applied.empty())
                note_edit(doc->uri, doc->text, applied.back().start, applied.back().new_end);
        } else if (method == "textDocument/didClose") {
            const auto d = m["params"].get<lsp::DidCloseTextDocumentParams>();
            docs_.close(d.textDocument.uri);
            suggestions_.forget(d.textDocument.uri);
        }
    } catch (const std::exception& e) {
        log(method + ": " + e.what());  // bad params: the endpoint's handler reports too
    }
}

lsp::Result<json> Server::initialize(const json& params) {
    ResponseError err;
    auto p = parse<lsp::InitializeParams>(params, err);
    if (!p) return err;
    const PositionEncoding enc = negotiate_encoding(
        p->capabilities.general ? p->capabilities.general->positionEncodings : std::nullopt);
    docs_.set_encoding(enc);
    size_t n_folders = 0;
    {
        std::lock_guard<std::mutex> lock(mu_);
        client_caps_ = params.value("capabilities", json::object());
        folders_.clear();
        if (p->workspaceFolders) {
            for (const auto& f : *p->workspaceFolders)
                if (auto path = uri_to_path(f.uri); !path.empty()) folders_.push_back(path);
        } else if (p->rootUri) {
            if (auto path = uri_to_path(*p->rootUri); !path.empty()) folders_.push_back(path);
        }
        n_folders = folders_.size();
    }
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
        std::to_string(n_folders) + " workspace folder(s)");
    return j;
}

void Server::apply_settings(const json& j) {
    std::vector<std::string> problems;
    Settings old, now;
    {
        std::lock_guard<std::mutex> lock(mu_);
        old = settings_;
        settings_ = parse_settings(j, settings_, &problems);
        now = settings_;
    }
    for (const auto& p : problems) log("settings: " + p);
    log("settings: " + redacted(now).dump());
    bool initialized;
    {
        std::lock_guard<std::mutex> lock(mu_);
        initialized = initialized_;
    }
    const bool backend_changed =
        old.backend != now.backend || old.engine != now.engine || old.model != now.model ||
        old.remote_url != now.remote_url || old.remote_model != now.remote_model ||
        old.remote_key != now.remote_key || old.remote_fim_api != now.remote_fim_api ||
        old.script != now.script || old.cache_mb != now.cache_mb || old.threads != now.threads ||
        old.prefix_cache != now.prefix_cache || old.mtp != now.mtp ||
        old.disk_cache_dir != now.disk_cache_dir || old.disk_cache_mb != now.disk_cache_mb;
    if (initialized && backend_changed) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            ++backend_loading_;
        }
        std::thread([this] { start_backend(); }).detach();
    }
}

void Server::initialized() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (initialized_) return;
        initialized_ = true;
        ++backend_loading_;
    }
    // Model loading and indexing take seconds: neither may block the message loop.
    std::thread([this] { start_backend(); }).detach();
    std::thread([this] { start_indexing(); }).detach();
    // Watch the workspace's files, when the client lets us register dynamically.
    bool dynamic = false;
    {
        std::lock_guard<std::mutex> lock(mu_);
        dynamic = client_caps_.value(
            "/workspace/didChangeWatchedFiles/dynamicRegistration"_json_pointer, false);
    }
    if (dynamic) {
        lsp::RegistrationParams rp;
        rp.registrations.push_back(
            {"latent-watched-files", "workspace/didChangeWatchedFiles",
             json{{"watchers", json::array({json{{"globPattern", "**/*"}, {"kind", 7}}})}}});
        ep_.send_request("client/registerCapability", rp, [this](lsp::Result<json> r) {
            if (!r) log("client/registerCapability: " + r.error().message);
        });
    }
}

void Server::start_backend() {
    Settings s;
    {
        std::lock_guard<std::mutex> lock(mu_);
        s = settings_;
    }
    std::shared_ptr<Backend> b;
    std::string error;
    if (options_.backend) {
        b = options_.backend;
    } else if (s.backend == "scripted") {
        b = std::make_shared<ScriptedBackend>(s.script, s.script_delay_ms);
    } else if (s.backend == "remote") {
        RemoteOptions ro;
        ro.url = s.remote_url;
        ro.model = s.remote_model;
        ro.api_key = s.remote_key;
        ro.fim_api = s.remote_fim_api;
        ro.log = options_.log;
        auto r = RemoteBackend::create(ro);
        if (r)
            b = std::move(*r);
        else
            error = r.error().message;
    } else if (s.backend == "local") {
        if (s.model.empty()) {
            error = "no model: set latent.model to a GGUF file (or use a remote backend)";
        } else {
            LocalBackendOptions lo;
            lo.model_path = s.model;
            lo.engine = s.engine;
            lo.threads = s.threads;
            lo.cache_bytes = s.cache_mb << 20;
            lo.prefix_cache = s.prefix_cache;
            lo.mtp = s.mtp;
            if (s.disk_cache_mb > 0) lo.disk_dir = s.disk_cache_dir;
            lo.disk_bytes = s.disk_cache_mb << 20;
            const auto t0 = Clock::now();
            auto r = LocalBackend::create(lo);
            if (r) {
                if (!(*r)->disk_error().empty())
                    log("backend: no disk cache: " + (*r)->disk_error());
                b = std::move(*r);
                log("backend: loaded " + s.model + " in " +
                    std::to_string(std::chrono::duration<double>(Clock::now() - t0).count()) +
                    " s");
            } else {
                error = r.error().message;
            }
        }
    } else if (s.backend != "none") {
        error = "unknown backend '" + s.backend + "' (local | remote | scripted | none)";
    }
    if (!error.empty()) {
        log("backend: " + error);
        ep_.notify("window/showMessage", {{"type", 1}, {"message", "Latent: " + error}});
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        backend_ = b;
        backend_error_ = error;
        --backend_loading_;
    }
    backend_cv_.notify_all();
    if (b) {
        log("backend: " + b->describe());
        std::optional<Focus> focus;
        {
            std::lock_guard<std::mutex> lock(mu_);
            focus = focus_;
        }
        if (focus)
            warm(focus->uri, focus->position);
        else
            for (const auto& uri : docs_.uris()) warm(uri, std::nullopt);
    }
}

void Server::start_indexing() {
    Settings s;
    std::vector<std::string> folders;
    bool progress_ok = false;
    {
        std::lock_guard<std::mutex> lock(mu_);
        s = settings_;
        folders = folders_;
        for (const auto& ix : indexes_) std::erase(folders, ix->root());
        progress_ok = client_caps_.value("/window/workDoneProgress"_json_pointer, false);
    }
    if (!s.index) return;
    for (const auto& folder : folders) {
        std::error_code e;
        if (!std::filesystem::is_directory(folder, e)) continue;
        WorkspaceIndexOptions o;
        o.root = folder;
        if (!s.index_db.empty() && folders.size() == 1) o.db = s.index_db;
        o.exclude = s.exclude;
        o.log = options_.log;
        std::shared_ptr<lsp::WorkDoneProgress> progress;
        if (progress_ok) {
            uint64_t n;
            {
                std::lock_guard<std::mutex> lock(mu_);
                n = ++progress_tokens_;
            }
            const lsp::ProgressToken token("latent-index-" + std::to_string(n));
            auto fut = ep_.send_request("window/workDoneProgress/create",
                                        lsp::WorkDoneProgressCreateParams{token},
                                        std::chrono::milliseconds(5000));
            if (fut.wait_for(std::chrono::seconds(6)) == std::future_status::ready &&
                fut.get().ok()) {
                progress = std::make_shared<lsp::WorkDoneProgress>(ep_, token);
                progress->begin({"Latent: indexing", false,
                                 std::filesystem::path(folder).filename().string(), 0});
            }
        }
        // WorkDoneProgress is single-threaded: reports and the end come from the index
        // thread only (the callbacks below), in order.
        auto last = std::make_shared<Clock::time_point>(Clock::now());
        o.progress = [progress, last](size_t done, size_t total) {
            if (!progress) return;
            if (done != total && Clock::now() - *last < std::chrono::milliseconds(200)) return;
            *last = Clock::now();
            lsp::WorkDoneProgressReport r;
            r.message = std::to_string(done) + "/" + std::to_string(total) + " files";
            r.percentage = total ? static_cast<uint32_t>(100 * done / total) : 100;
            progress->report(r);
        };
        o.done = [progress](const std::string& summary) {
            if (progress) progress->end({summary});
        };
        auto ix = std::make_shared<WorkspaceIndex>(std::move(o));
        {
            std::lock_guard<std::mutex> lock(mu_);
            indexes_.push_back(ix);
        }
        ix->start();
    }
}

void Server::note_edit(const std::string& uri, const std::string& text, size_t start, size_t end) {
    const auto enc = PositionEncoding::kUtf8;
    const uint32_t first = to_position(text, start, enc).line;
    const uint32_t last = to_position(text, end, enc).line;
    std::lock_guard<std::mutex> lock(mu_);
    // Merge with the newest entry when it is the same place.
    if (!touched_.empty() && touched_.front().uri == uri && first <= touched_.front().last + 3 &&
        last + 3 >= touched_.front().first) {
        touched_.front().first = std::min(touched_.front().first, first);
        touched_.front().last = std::max(touched_.front().last, last);
        return;
    }
    touched_.push_front({uri, first, last});
    if (touched_.size() > kMaxTouched) touched_.pop_back();
}

std::vector<ContextBlock> Server::context_blocks(const std::string& uri, const std::string& path,
                                                 uint32_t line) {
    std::vector<ContextBlock> out;
    auto ix = index_for(path);
    size_t budget;
    {
        std::lock_guard<std::mutex> lock(mu_);
        budget = static_cast<size_t>(settings_.context_tokens);
    }
    if (budget == 0) return out;
    if (ix) {
        const uint64_t gen = ix->generation();
        bool hit = false;
        {
            std::lock_guard<std::mutex> lock(mu_);
            auto it = context_cache_.find(uri);
            if (it != context_cache_.end() && it->second.generation == gen &&
                line + kContextKeepLines >= it->second.line &&
                line <= it->second.line + kContextKeepLines) {
                out = it->second.blocks;
                hit = true;
            }
        }
        if (!hit) {
            out = ix->context_for(path, line, 0, budget * 3 / 4);
            // Nothing yet (a new file the index has not seen): ask again next time.
            if (!out.empty()) {
                std::lock_guard<std::mutex> lock(mu_);
                if (context_cache_.size() > 64) context_cache_.clear();
                context_cache_[uri] = {gen, line, out};
            }
        }
    }
    // Recently edited ranges of other open documents (a few lines around each).
    std::deque<Touched> touched;
    {
        std::lock_guard<std::mutex> lock(mu_);
        touched = touched_;
    }
    for (const auto& t : touched) {
        if (t.uri == uri) continue;
        const auto doc = docs_.get(t.uri);
        if (!doc) continue;
        const auto enc = PositionEncoding::kUtf8;
        const uint32_t first = t.first > 5 ? t.first - 5 : 0;
        const uint32_t last = t.last + 5;
        const size_t a = to_offset(doc->text, {first, 0}, enc);
        const size_t b = to_offset(doc->text, {last + 1, 0}, enc);
        std::string p = uri_to_path(t.uri);
        if (auto tix = index_for(p)) p = tix->relative(p);
        out.push_back({p, first, last, doc->text.substr(a, std::min<size_t>(b - a, 2048))});
    }
    return out;
}

void Server::warm(const std::string& uri, std::optional<lsp::Position> position) {
    auto b = backend();
    if (!b) return;
    const auto doc = docs_.get(uri);
    if (!doc) return;
    Settings s;
    {
        std::lock_guard<std::mutex> lock(mu_);
        s = settings_;
    }
    const auto enc = docs_.encoding();
    // Without a cursor, warm the top of the file (where a freshly opened editor shows).
    const size_t cursor = position ? to_offset(doc->text, *position, enc) : 0;
    const std::string path = uri_to_path(uri);
    auto ix = index_for(path);
    const std::string shown = ix ? ix->relative(path) : (path.empty() ? uri : path);
    const PromptBudget budget = prompt_budget(s);
    const uint32_t line = to_position(doc->text, cursor, PositionEncoding::kUtf8).line;
    FimLayout layout =
        layout_fim_prompt(doc->text, cursor, shown, context_blocks(uri, path, line), budget);
    // Up to what the user will type: the middle's lines before the cursor's.
    const size_t nl = layout.prompt.middle.rfind('\n');
    layout.prompt.middle.resize(nl == std::string::npos ? 0 : nl + 1);
    b->warm(uri, layout.prompt);
}

lsp::Result<json> Server::inline_completion(const json& params, lsp::RequestContext& ctx) {
    const auto t0 = Clock::now();
    ResponseError err;
    auto p = parse<lsp::InlineCompletionParams>(params, err);
    if (!p) return err;
    const std::string uri = p->textDocument.uri;
    json result = {{"items", json::array()}};
    auto doc = docs_.get(uri);
    if (!doc) return result;  // not open: nothing to complete
    const auto enc = docs_.encoding();

    // This request supersedes the older one, whichever document that was for.
    auto mine = std::make_shared<std::atomic<bool>>(false);
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (inflight_.superseded) inflight_.superseded->store(true);
        inflight_ = {uri, mine};
    }
    struct Release {
        Server* s;
        std::shared_ptr<std::atomic<bool>> mine;
        ~Release() {
            std::lock_guard<std::mutex> lock(s->mu_);
            if (s->inflight_.superseded == mine) s->inflight_ = {};
        }
    } release{this, mine};

    std::string text = std::move(doc->text);
    size_t cursor = to_offset(text, p->position, enc);
    auto called = t0;  // when the backend was asked
    lsp::Range range{p->position, p->position};
    std::string selected;  // the completion-menu item the editor shows, when any
    if (p->context.selectedCompletionInfo) {
        const auto& sel = *p->context.selectedCompletionInfo;
        const size_t a = to_offset(text, sel.range.start, enc);
        const size_t b = std::max(a, to_offset(text, sel.range.end, enc));
        text.replace(a, b - a, sel.text);
        cursor = a + sel.text.size();
        selected = sel.text;
        range = {sel.range.start, p->position};
    }
    const std::string_view before(text.data(), cursor);
    const std::string_view after(text.data() + cursor, text.size() - cursor);
    auto answer = [&](std::string insert, bool from_cache, const GenerateResult* g) {
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        {
            std::lock_guard<std::mutex> lock(mu_);
            ++completions_;
            if (from_cache) ++cache_hits_;
            last_latency_ms_ = ms;
            last_cached_tokens_ = g ? g->cached_tokens : 0;
            last_computed_tokens_ = g ? g->computed_tokens : 0;
        }
        json stats = {
            {"ms", ms},
            {"firstTokenMs", g && g->first_token_ms >= 0
                                 ? std::chrono::duration<double, std::milli>(called - t0).count() +
                                       g->first_token_ms
                                 : ms},
            {"fromCache", from_cache},
            {"cachedTokens", g ? g->cached_tokens : 0},
            {"computedTokens", g ? g->computed_tokens : 0},
            {"timeLimited", g && g->ended_early}};
        if (!insert.empty() || !selected.empty()) {
            lsp::InlineCompletionItem item;
            item.insertText = selected + insert;
            item.range = range;
            if (!item.insertText.empty() && item.insertText != selected)
                result["items"].push_back(item);
        }
        result["latent"] = stats;
        return result;
    };
    if (auto hit = suggestions_.get(uri, before, after)) return answer(*hit, true, nullptr);

    // A model still loading (seconds) is worth a short wait; an explicit request longer.
    auto b = ready_backend(
        ctx,
        std::chrono::milliseconds(
            p->context.triggerKind == lsp::InlineCompletionTriggerKind::Invoked ? 60000 : 10000));
    if (!b) return answer("", false, nullptr);
    Settings s;
    {
        std::lock_guard<std::mutex> lock(mu_);
        s = settings_;
    }
    const std::string path = uri_to_path(uri);
    auto ix = index_for(path);
    const std::string shown = ix ? ix->relative(path) : (path.empty() ? uri : path);
    const uint32_t line = to_position(text, cursor, PositionEncoding::kUtf8).line;
    const PromptBudget budget = prompt_budget(s);
    const FimLayout layout =
        layout_fim_prompt(text, cursor, shown, context_blocks(uri, path, line), budget);
    const CursorText at = cursor_text(text, cursor);
    const bool mid_line = std::any_of(at.line_suffix.begin(), at.line_suffix.end(),
                                      [](char c) { return c != ' ' && c != '\t' && c != '\r'; });
    GenerateOptions go;
    go.max_tokens = mid_line ? std::min(s.max_tokens, 32) : s.max_tokens;
    go.owner = uri;
    if (mid_line)
        go.stop = {"\n"};
    else
        go.stop = {"\n\n\n"};
    go.cancelled = [&ctx, mine] { return ctx.cancelled() || mine->load(); };
    GenerationTimeLimit time_limit{std::chrono::milliseconds(s.max_time_ms)};
    if (s.max_time_ms > 0)
        go.enough = [&time_limit](std::string_view t) { return time_limit(t, Clock::now()); };
    called = Clock::now();
    auto g = b->fim(layout.prompt, go);
    if (ctx.cancelled()) return ResponseError{ec::kRequestCancelled, "cancelled", {}};
    if (mine->load() || (g && g->cancelled)) {
        // The prompt's size, so that a client (bench replay) can weigh what the engine ran
        // against every prompt asked for, answered or not.
        json data;
        if (g && g->prompt_tokens > 0) data = {{"promptTokens", g->prompt_tokens}};
        return ResponseError{ec::kServerCancelled, "superseded by a newer request", data};
    }
    if (!g) {
        log("inlineCompletion: " + g.error().message);
        return ResponseError{ec::kRequestFailed, g.error().message, {}};
    }
    // Cut by the time limit: the line it was in the middle of goes.
    std::string insert =
        postprocess(g->ended_early ? whole_lines(g->text) : std::string_view(g->text), at);
    log("inlineCompletion " + shown + ":" + std::to_string(p->position.line + 1) + ": " +
        std::to_string(g->cached_tokens) + " cached + " + std::to_string(g->computed_tokens) +
        " computed prompt tokens, " + std::to_string(g->generated_tokens) + " generated, " +
        std::to_string(insert.size()) + " bytes kept");
    suggestions_.put(uri, before, after, insert);
    return answer(std::move(insert), false, &*g);
}

lsp::Result<json> Server::run_chat(std::vector<ChatMessage> messages, lsp::RequestContext& ctx,
                                   int max_tokens) {
    auto b = ready_backend(ctx, std::chrono::minutes(2));
    if (!b) {
        std::lock_guard<std::mutex> lock(mu_);
        return ResponseError{ec::kRequestFailed,
                             backend_error_.empty() ? "no backend is ready yet" : backend_error_,
                             {}};
    }
    GenerateOptions go;
    go.max_tokens = max_tokens;
    go.temperature = 0.0f;
    go.owner = "chat";
    go.cancelled = [&ctx] { return ctx.cancelled(); };
    // Partial results are batched: one $/progress per piece would flood a slow client.
    std::string pending;
    auto last = Clock::now();
    go.on_text = [&](std::string_view piece) {
        pending += piece;
        if (Clock::now() - last > std::chrono::milliseconds(30) || pending.size() > 256) {
            ctx.send_partial_result({{"text", pending}});
            pending.clear();
            last = Clock::now();
        }
    };
    auto g = b->chat(messages, go);
    if (ctx.cancelled()) return ResponseError{ec::kRequestCancelled, "cancelled", {}};
    if (!g) return ResponseError{ec::kRequestFailed, g.error().message, {}};
    if (!pending.empty()) ctx.send_partial_result({{"text", pending}});
    return json{{"text", g->text},
                {"cachedTokens", g->cached_tokens},
                {"computedTokens", g->computed_tokens},
                {"generatedTokens", g->generated_tokens}};
}

lsp::Result<json> Server::chat(const json& params, lsp::RequestContext& ctx) {
    std::vector<ChatMessage> messages;
    try {
        const json& ms = params.at("messages");
        if (!ms.is_array()) throw lsp::ProtocolError("messages must be an array");
        size_t bytes = 0;
        const size_t from = ms.size() > kMaxChatMessages ? ms.size() - kMaxChatMessages : 0;
        for (size_t i = from; i < ms.size(); ++i) {
            ChatMessage m{ms[i].at("role").get<std::string>(),
                          ms[i].at("content").get<std::string>()};
            bytes += m.content.size();
            messages.push_back(std::move(m));
        }
        if (bytes > kMaxChatBytes)
            return ResponseError{ec::kInvalidParams, "the conversation is larger than 256 KiB", {}};
        // Optional context: the document and selection the user is looking at.
        if (params.contains("context") && params["context"].is_object()) {
            const json& c = params["context"];
            if (c.contains("textDocument")) {
                const std::string uri = c["textDocument"].at("uri").get<std::string>();
                if (auto doc = docs_.get(uri)) {
                    std::string snippet;
                    if (c.contains("range")) {
                        const auto r = c["range"].get<lsp::Range>();
                        const auto enc = docs_.encoding();
                        const size_t a = to_offset(doc->text, r.start, enc);
                        const size_t e = std::max(a, to_offset(doc->text, r.end, enc));
                        snippet = doc->text.substr(a, std::min<size_t>(e - a, 16384));
                    } else {
                        snippet = doc->text.substr(0, 16384);
                    }
                    messages.insert(messages.begin(),
                                    {"system", "The user is working on " + uri_to_path(uri) +
                                                   ":\n```\n" + snippet + "\n```"});
                }
            }
        }
    } catch (const std::exception& e) {
        return ResponseError{ec::kInvalidParams, e.what(), {}};
    }
    if (messages.empty()) return ResponseError{ec::kInvalidParams, "no messages", {}};
    int max_tokens;
    {
        std::lock_guard<std::mutex> lock(mu_);
        max_tokens = settings_.chat_max_tokens;
    }
    return run_chat(std::move(messages), ctx, max_tokens);
}

lsp::Result<json> Server::explain(const json& params, lsp::RequestContext& ctx) {
    std::string uri;
    lsp::Range range;
    try {
        uri = params.at("textDocument").at("uri").get<std::string>();
        range = params.at("range").get<lsp::Range>();
    } catch (const std::exception& e) {
        return ResponseError{ec::kInvalidParams, e.what(), {}};
    }
    const auto doc = docs_.get(uri);
    if (!doc) return ResponseError{ec::kInvalidParams, "the document is not open: " + uri, {}};
    const auto enc = docs_.encoding();
    const size_t a = to_offset(doc->text, range.start, enc);
    const size_t e = std::max(a, to_offset(doc->text, range.end, enc));
    const std::string sel = doc->text.substr(a, std::min<size_t>(e - a, 32768));
    // Definitions of the names the selection uses, from the index.
    std::string defs;
    const std::string path = uri_to_path(uri);
    if (auto ix = index_for(path)) {
        std::vector<std::string> names;
        std::string cur;
        for (char c : sel + " ") {
            if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') {
                cur += c;
            } else {
                if (cur.size() > 2 && !std::isdigit(static_cast<unsigned char>(cur[0])) &&
                    std::find(names.begin(), names.end(), cur) == names.end())
                    names.push_back(cur);
                cur.clear();
            }
        }
        if (names.size() > 16) names.resize(16);
        for (const auto& n : names) {
            for (const auto& h : ix->definitions(n, 1)) {
                if (defs.size() > 8192) break;
                defs += h.path + ": " + h.definition.signature + "\n";
            }
        }
    }
    std::string prompt = "Explain what this code from " + (path.empty() ? uri : path) +
                         " does, briefly and precisely.\n```" + extension_language(uri) + "\n" +
                         sel + "\n```\n";
    if (!defs.empty()) prompt += "Definitions it uses:\n" + defs;
    int max_tokens;
    {
        std::lock_guard<std::mutex> lock(mu_);
        max_tokens = settings_.chat_max_tokens;
    }
    return run_chat({{"user", prompt}}, ctx, max_tokens);
}

lsp::Result<json> Server::edit(const json& params, lsp::RequestContext& ctx) {
    std::string uri, instruction;
    lsp::Range range;
    try {
        uri = params.at("textDocument").at("uri").get<std::string>();
        range = params.at("range").get<lsp::Range>();
        instruction = params.at("instruction").get<std::string>();
    } catch (const std::exception& e) {
        return ResponseError{ec::kInvalidParams, e.what(), {}};
    }
    if (instruction.size() > 16384)
        return ResponseError{ec::kInvalidParams, "the instruction is longer than 16 KiB", {}};
    const auto doc = docs_.get(uri);
    if (!doc) return ResponseError{ec::kInvalidParams, "the document is not open: " + uri, {}};
    const auto enc = docs_.encoding();
    const size_t a = to_offset(doc->text, range.start, enc);
    const size_t e = std::max(a, to_offset(doc->text, range.end, enc));
    if (e - a > 65536)
        return ResponseError{ec::kInvalidParams, "the selection is larger than 64 KiB", {}};
    const std::string sel = doc->text.substr(a, e - a);
    const std::string prompt =
        "Rewrite the following code from " + uri_to_path(uri) + " as instructed. Answer with " +
        "the new code only, in one fenced code block.\nInstruction: " + instruction + "\n```" +
        extension_language(uri) + "\n" + sel + "\n```\n";
    int max_tokens;
    {
        std::lock_guard<std::mutex> lock(mu_);
        max_tokens = settings_.chat_max_tokens;
    }
    auto r = run_chat({{"user", prompt}}, ctx, max_tokens);
    if (!r) return r;
    std::string text = r.value()["text"].get<std::string>();
    // The code block's body when the answer has one.
    if (const size_t f = text.find("```"); f != std::string::npos) {
        const size_t body = text.find('\n', f);
        const size_t close = body == std::string::npos ? body : text.find("```", body + 1);
        if (body != std::string::npos)
            text = text.substr(body + 1,
                               (close == std::string::npos ? text.size() : close) - body - 1);
    }
    if (!sel.empty() && sel.back() == '\n' && (text.empty() || text.back() != '\n')) text += '\n';
    if (!sel.empty() && sel.back() != '\n' && !text.empty() && text.back() == '\n') text.pop_back();
    lsp::WorkspaceEdit we;
    we.changes[uri].push_back(
        {{to_position(doc->text, a, enc), to_position(doc->text, e, enc)}, text});
    json out = r.value();
    out["text"] = text;
    out["edit"] = we;
    return out;
}

lsp::Result<json> Server::code_action(const json& params) {
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

lsp::Result<json> Server::execute_command(const json& params, lsp::RequestContext& ctx) {
    std::string command;
    json args;
    try {
        command = params.at("command").get<std::string>();
        args = params.value("arguments", json::array());
        if (!args.is_array() || args.size() < 2)
            return ResponseError{ec::kInvalidParams, "arguments: [uri, range, instruction?]", {}};
    } catch (const std::exception& e) {
        return ResponseError{ec::kInvalidParams, e.what(), {}};
    }
    json p = {{"textDocument", {{"uri", args[0]}}}, {"range", args[1]}};
    if (command == "latent.explain") return explain(p, ctx);
    if (command == "latent.edit") {
        p["instruction"] =
            args.size() > 2 && args[2].is_string() ? args[2] : json("Improve this code");
        auto r = edit(p, ctx);
        if (!r) return r;
        // Editors without the extension: ask the client to apply it (they show their own UI).
        lsp::ApplyWorkspaceEditParams ap;
        ap.label = "Latent: edit selection";
        ap.edit = r.value()["edit"].get<lsp::WorkspaceEdit>();
        ep_.send_request("workspace/applyEdit", ap, [this](lsp::Result<json> res) {
            if (!res) log("workspace/applyEdit: " + res.error().message);
        });
        return r;
    }
    return ResponseError{ec::kInvalidParams, "unknown command: " + command, {}};
}

lsp::Result<json> Server::status() {
    std::shared_ptr<Backend> b;
    json j;
    std::vector<std::shared_ptr<WorkspaceIndex>> indexes;
    {
        std::lock_guard<std::mutex> lock(mu_);
        b = backend_;
        indexes = indexes_;
        j["settings"] = redacted(settings_);
        j["backend"] = b ? b->describe() : backend_loading_ > 0 ? "loading" : "none";
        if (!backend_error_.empty()) j["backendError"] = backend_error_;
        j["completions"] = completions_;
        j["suggestionCacheHits"] = cache_hits_;
        j["lastCompletionMs"] = last_latency_ms_;
        j["lastCachedTokens"] = last_cached_tokens_;
        j["lastComputedTokens"] = last_computed_tokens_;
    }
    j["cache"] = b ? b->stats() : json::object();
    j["documents"] = docs_.size();
    j["index"] = json::array();
    for (const auto& ix : indexes) j["index"].push_back(ix->stats());
    return j;
}

}  // namespace latent::agent
