// Agent (see agent.h).
#include "agent/agent.h"

#include <algorithm>
#include <cctype>

#include "index/indexer.h"

namespace latent::agent {

using Clock = std::chrono::steady_clock;
using Kind = FeatureError::Kind;

namespace {

// A chat history longer than this is cut from the front: it bounds the prompt we build
// (and what a client can make us tokenize) whatever the client sends.
constexpr size_t kMaxChatMessages = 64;
constexpr size_t kMaxChatBytes = 256u << 10;
// Retrieved context is kept for a document while the cursor stays within this many lines
// of where it was looked up (and the index is unchanged elsewhere): context comes first in
// the prompt, so changing it recomputes the whole prompt.
constexpr uint32_t kContextKeepLines = 40;
constexpr size_t kMaxTouched = 8;
// Selections sent to the model: explain reads up to 32 KiB, edit refuses more than 64 KiB
// (its answer replaces the selection, so it must not be cut), chat context 16 KiB.
constexpr size_t kMaxExplainBytes = 32768;
constexpr size_t kMaxEditBytes = 65536;
constexpr size_t kMaxChatContextBytes = 16384;
constexpr size_t kMaxInstructionBytes = 16384;

// What the index is asked for a completion prompt's context of `budget` tokens (measured by
// `latent bench context` on real repositories). The prompt shows the cursor's file itself,
// so its definitions and chunks are not asked for; names are looked for beyond the lines
// around the cursor (the file's imports, names used all over it) until enough are found;
// larger budgets take more names and similar chunks, smaller ones show long definitions
// as their signature line so that more names fit.
index::ContextOptions completion_context_options(size_t budget) {
    index::ContextOptions o;
    o.current_file = false;
    o.far_lines = 2000;
    o.max_names = std::max<size_t>(o.max_names, budget / 32);
    o.similar = std::max<size_t>(o.similar, budget / 128);
    o.max_snippet_bytes = std::clamp<size_t>(budget, 200, o.max_snippet_bytes);
    return o;
}

// A completion prompt's budget from the settings (line strides at their defaults).
PromptBudget prompt_budget(const Settings& s) {
    PromptBudget b;
    b.context_tokens = static_cast<size_t>(s.context_tokens);
    b.prefix_tokens = static_cast<size_t>(s.prefix_tokens);
    b.suffix_tokens = static_cast<size_t>(s.suffix_tokens);
    return b;
}

std::string extension_language(const std::string& uri) {
    const size_t dot = uri.rfind('.');
    return dot == std::string::npos ? "" : uri.substr(dot + 1);
}

FeatureError not_open(const std::string& uri) {
    return {Kind::kInvalid, "the document is not open: " + uri, 0};
}

}  // namespace

Agent::Agent(AgentOptions options)
    : options_(std::move(options)),
      workspaces_(WorkspacesOptions{options_.index_report, options_.log}),
      prompt_library_(PromptLibraryOptions{options_.log}),
      next_edits_(options_.now_ms ? options_.now_ms
                                  : [] {
                                        return std::chrono::duration_cast<std::chrono::milliseconds>(
                                                   std::chrono::steady_clock::now()
                                                       .time_since_epoch())
                                            .count();
                                    }),
      settings_(options_.settings),
      generators_(GeneratorHostOptions{
          [fixed = options_.backend, factory = options_.factory,
           allow = options_.allow_test_backends,
           log = options_.log](const Settings& s) -> engine::Expected<std::shared_ptr<Generator>> {
              if (fixed) return fixed;
              if (factory) return factory(s);
              return make_generator(s, allow, log);
          },
          [this](const std::shared_ptr<Generator>& b, const std::string& error) {
              on_backend_loaded(b, error);
          },
          options_.log}) {
    workspaces_.set_settings(settings_);
}

Agent::~Agent() { generators_.stop(); }

void Agent::log(const std::string& line) const {
    if (options_.log) options_.log(line);
}

Settings Agent::settings() const {
    std::lock_guard<std::mutex> lock(mu_);
    return settings_;
}

void Agent::set_settings(const Settings& now) {
    Settings old;
    bool started;
    {
        std::lock_guard<std::mutex> lock(mu_);
        old = settings_;
        settings_ = now;
        started = started_;
    }
    workspaces_.set_settings(now);
    log("settings: " + redacted(now).dump());
    if (started && backend_settings_differ(old, now)) generators_.reload(now);
}

void Agent::start() {
    Settings s;
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (started_) return;
        started_ = true;
        s = settings_;
    }
    // Model loading and indexing take seconds: both run on threads of their owners.
    generators_.reload(s);
    workspaces_.start_indexing();
}

void Agent::folders_changed() {
    bool started;
    {
        std::lock_guard<std::mutex> lock(mu_);
        started = started_;
    }
    if (started) workspaces_.start_indexing();
}

void Agent::on_backend_loaded(const std::shared_ptr<Generator>& b, const std::string& error) {
    if (!error.empty() && options_.show_error) options_.show_error("Latent: " + error);
    if (!b) return;
    std::optional<Focus> focus;
    {
        std::lock_guard<std::mutex> lock(mu_);
        focus = focus_;
    }
    if (focus)
        warm(focus->uri, focus->position, WarmOrder::kFirst);
    else
        for (const auto& uri : docs_.uris()) warm(uri, std::nullopt, WarmOrder::kAlongside);
}

// ---- documents ----

void Agent::open_document(Document doc) {
    if (doc.text.size() > DocumentStore::kMaxDocumentBytes) {
        log("warning: didOpen: a document larger than 64 MiB is not kept: " + doc.uri);
        return;
    }
    docs_.open(std::move(doc));
}

bool Agent::change_document(const std::string& uri, int32_t version,
                            const std::vector<lsp::TextDocumentContentChangeEvent>& changes) {
    std::vector<AppliedChange> applied;
    const auto each = [this, &uri](std::string_view after, const AppliedChange& c) {
        next_edits_.record(uri, after, c);
    };
    if (!docs_.change(uri, version, changes, &applied, each)) {
        log("warning: didChange for a document that is not open (or too large): " + uri);
        return false;
    }
    if (!applied.empty()) {
        // Lines of the last change, read without copying the document.
        uint32_t first = 0, last = 0;
        docs_.read(uri, [&](const Document& d) {
            const auto enc = PositionEncoding::kUtf8;
            first = to_position(d.text, applied.back().start, enc).line;
            last = to_position(d.text, applied.back().new_end, enc).line;
        });
        std::lock_guard<std::mutex> lock(mu_);
        // Merge with the newest entry when it is the same place.
        if (!touched_.empty() && touched_.front().uri == uri &&
            first <= touched_.front().last + 3 && last + 3 >= touched_.front().first) {
            touched_.front().first = std::min(touched_.front().first, first);
            touched_.front().last = std::max(touched_.front().last, last);
        } else {
            touched_.push_front({uri, first, last});
            if (touched_.size() > kMaxTouched) touched_.pop_back();
        }
    }
    return true;
}

void Agent::close_document(const std::string& uri) {
    docs_.close(uri);
    suggestions_.forget(uri);
    {
        // Its context was looked up for a text that is gone (it may reopen changed).
        std::lock_guard<std::mutex> lock(mu_);
        std::erase_if(context_cache_, [&](const auto& e) { return e.first.first == uri; });
    }
    next_edits_.forget(uri);
}

void Agent::document_opened(const std::string& uri) {
    bool focused;
    {
        std::lock_guard<std::mutex> lock(mu_);
        focused = focus_.has_value();
    }
    // Else its focus() says where, if it is shown.
    if (!focused) warm(uri, std::nullopt, WarmOrder::kAlongside);
}

void Agent::document_changed(const std::string& uri) {
    const std::string path = workspaces_.resolve(uri);
    if (path.empty()) return;
    auto ix = workspaces_.index_for(path);
    if (!ix) return;
    ix->update_open(path, [this, uri]() -> std::optional<std::string> {
        if (auto doc = docs_.get(uri)) return std::move(doc->text);
        return std::nullopt;
    });
}

void Agent::document_closed(const std::string& uri) {
    if (auto b = generators_.current().backend) b->release(uri);
    // Back to the disk's version — read only inside the workspace folders.
    const std::string path = workspaces_.resolve(uri);
    if (path.empty()) return;
    if (auto ix = workspaces_.index_for(path)) ix->update(path);
}

void Agent::focus(const std::string& uri, std::optional<lsp::Position> position) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        focus_ = Focus{uri, position};
        // The user left the document of the in-flight completion: nobody will see it.
        if (inflight_.superseded && inflight_.uri != uri) {
            inflight_.superseded->store(true);
            inflight_ = {};
        }
    }
    warm(uri, position, WarmOrder::kFirst);
}

void Agent::file_changed(const std::string& uri, FileChange change) {
    // An open document's text is the editor's, not the disk's.
    if (docs_.contains(uri)) return;
    const std::string path = workspaces_.resolve(uri);
    if (path.empty()) return;  // outside every folder (or through a link out of one)
    auto ix = workspaces_.index_for(path);
    if (!ix) return;
    if (change == FileChange::kDeleted)
        ix->remove(path);
    else
        ix->update(path);
}

// ---- context and warming ----

std::vector<ContextBlock> Agent::context_blocks(const std::string& uri, const std::string& path,
                                                uint32_t line, size_t budget) {
    std::vector<ContextBlock> out;
    if (budget == 0) return out;
    // Recently edited ranges of other open documents (a few lines around each).
    std::vector<ContextBlock> edits;
    size_t edit_tokens = 0;
    std::deque<Touched> touched;
    {
        std::lock_guard<std::mutex> lock(mu_);
        touched = touched_;
    }
    for (const auto& t : touched) {
        if (t.uri == uri) continue;
        const uint32_t first = t.first > 5 ? t.first - 5 : 0;
        const uint32_t last = t.last + 5;
        std::string text;
        const bool open = docs_.read(t.uri, [&](const Document& d) {
            const auto enc = PositionEncoding::kUtf8;
            const size_t a = to_offset(d.text, {first, 0}, enc);
            const size_t b = to_offset(d.text, {last + 1, 0}, enc);
            text = d.text.substr(a, std::min<size_t>(b - a, 2048));
        });
        if (!open) continue;
        const std::string real = workspaces_.resolve(t.uri);
        const std::string shown = real.empty() ? uri_to_path(t.uri) : workspaces_.shown_path(real);
        edit_tokens += (shown.size() + text.size() + 16 + 3) / 4;
        edits.push_back({shown, first, last, std::move(text)});
    }
    // The index gets the budget the recent edits leave, a quarter of it at least (before,
    // a fixed three quarters: with no edits, a quarter went unused — bench context).
    const size_t index_budget = budget - std::min(edit_tokens, budget * 3 / 4);
    if (auto ix = path.empty() ? nullptr : workspaces_.index_for(path)) {
        const uint64_t gen = ix->generation_except(path);
        bool hit = false;
        {
            std::lock_guard<std::mutex> lock(mu_);
            auto it = context_cache_.find({uri, index_budget});
            if (it != context_cache_.end() && it->second.generation == gen &&
                it->second.budget == index_budget && line + kContextKeepLines >= it->second.line &&
                line <= it->second.line + kContextKeepLines) {
                out = it->second.blocks;
                hit = true;
            }
        }
        if (!hit) {
            out = ix->context_for(path, line, 0, index_budget,
                                  completion_context_options(index_budget));
            // Nothing yet (a new file the index has not seen): ask again next time.
            if (!out.empty()) {
                std::lock_guard<std::mutex> lock(mu_);
                if (context_cache_.size() > 64) context_cache_.clear();
                context_cache_[{uri, index_budget}] = {gen, index_budget, line, out};
            }
        }
    }
    for (auto& e : edits) out.push_back(std::move(e));
    return out;
}

FimLayout Agent::layout_at(const std::string& uri, std::string_view text, size_t cursor,
                           const PromptBudget& budget, std::string* shown_out) {
    // The document's name as the prompt shows it: folder-relative inside a folder, else
    // its path (or the URI itself when it names no file).
    const std::string path = workspaces_.resolve(uri);
    const std::string shown = !path.empty()               ? workspaces_.shown_path(path)
                              : !uri_to_path(uri).empty() ? uri_to_path(uri)
                                                          : uri;
    if (shown_out) *shown_out = shown;
    const uint32_t line = to_position(text, cursor, PositionEncoding::kUtf8).line;
    return layout_fim_prompt(text, cursor, shown,
                             context_blocks(uri, path, line, budget.context_tokens), budget);
}

FimLayout Agent::layout_in_time(const std::string& uri, std::string_view text, size_t cursor,
                                const Settings& s, int32_t max_tokens, Generator& backend,
                                std::string* shown, bool* reduced, bool* sized) {
    *reduced = *sized = false;
    const PromptBudget full = prompt_budget(s);
    FimLayout layout = layout_at(uri, text, cursor, full, shown);
    if (s.latency_ms <= 0) return layout;
    // The answer's time: what the prompt computes, a line or so of output (a typical
    // inline completion), and at most one warm-up chunk it waits for.
    const int32_t expected_tokens = std::min<int32_t>(max_tokens, 8);
    const auto fits = [&](const FimLayout& l) {
        const auto cost = backend.prompt_cost(l.prompt);
        if (!cost || cost->prefill_ms_per_token <= 0) return true;
        *sized = true;
        return cost->ms(expected_tokens) <= static_cast<double>(s.latency_ms);
    };
    if (fits(layout)) return layout;
    *reduced = true;
    for (const PromptBudget& b : smaller_budgets(full)) {
        layout = layout_at(uri, text, cursor, b, shown);
        if (fits(layout)) break;
    }
    return layout;
}

void Agent::warm(const std::string& uri, std::optional<lsp::Position> position, WarmOrder order) {
    auto b = generators_.current().backend;
    if (!b) return;
    const auto doc = docs_.get(uri);
    if (!doc) return;
    const Settings s = settings();
    const auto enc = docs_.encoding();
    // Without a cursor, warm the top of the file (where a freshly opened editor shows).
    const size_t cursor = position ? to_offset(doc->text, *position, enc) : 0;
    FimLayout layout = layout_at(uri, doc->text, cursor, prompt_budget(s), nullptr);
    // Up to what the user will type: the middle's lines before the cursor's.
    const size_t nl = layout.prompt.middle.rfind('\n');
    layout.prompt.middle.resize(nl == std::string::npos ? 0 : nl + 1);
    b->warm(uri, layout.prompt, order);
}

// ---- inline completion ----

Outcome<CompletionResult> Agent::complete(const CompletionRequest& req,
                                          const Cancelled& cancelled) {
    const auto t0 = Clock::now();
    CompletionResult result;
    result.range = {req.position, req.position};
    auto doc = docs_.get(req.uri);
    if (!doc) return result;  // not open: nothing to complete
    const auto enc = docs_.encoding();

    // This request supersedes the older one, whichever document that was for.
    auto mine = std::make_shared<std::atomic<bool>>(false);
    {
        std::lock_guard<std::mutex> lock(mu_);
        const uint64_t order = req.order ? req.order : ++completion_order_;
        completion_order_ = std::max(completion_order_, order);
        if (inflight_.superseded && inflight_.order > order)  // a newer one runs already
            return FeatureError{Kind::kSuperseded, "superseded by a newer request", 0};
        if (inflight_.superseded) inflight_.superseded->store(true);
        inflight_ = {req.uri, mine, order};
    }
    struct Release {
        Agent* a;
        std::shared_ptr<std::atomic<bool>> mine;
        ~Release() {
            std::lock_guard<std::mutex> lock(a->mu_);
            if (a->inflight_.superseded == mine) a->inflight_ = {};
        }
    } release{this, mine};

    std::string text = std::move(doc->text);
    size_t cursor = to_offset(text, req.position, enc);
    auto called = t0;  // when the backend was asked
    if (req.selected) {
        const auto& sel = *req.selected;
        const size_t a = to_offset(text, sel.range.start, enc);
        const size_t b = std::max(a, to_offset(text, sel.range.end, enc));
        text.replace(a, b - a, sel.text);
        cursor = a + sel.text.size();
        result.selected = sel.text;
        result.range = {sel.range.start, req.position};
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
        result.ms = ms;
        result.first_token_ms =
            g && g->first_token_ms >= 0
                ? std::chrono::duration<double, std::milli>(called - t0).count() + g->first_token_ms
                : ms;
        result.from_cache = from_cache;
        if (g) {
            result.prompt_tokens = g->prompt_tokens;
            result.cached_tokens = g->cached_tokens;
            result.computed_tokens = g->computed_tokens;
            result.generated_tokens = g->generated_tokens;
            result.time_limited = g->ended_early;
        }
        result.insert = result.selected + insert;
        return result;
    };
    if (auto hit = suggestions_.get(req.uri, before, after)) return answer(*hit, true, nullptr);

    const auto lease = generators_.current();
    if (!lease.backend) return answer("", false, nullptr);
    const Settings s = settings();
    const CursorText at = cursor_text(text, cursor);
    const bool mid_line = std::any_of(at.line_suffix.begin(), at.line_suffix.end(),
                                      [](char c) { return c != ' ' && c != '\t' && c != '\r'; });
    GenerateOptions go;
    go.max_tokens = mid_line ? std::min(s.max_tokens, 32) : s.max_tokens;
    std::string shown;
    bool reduced = false, sized = false;
    const FimLayout layout = layout_in_time(req.uri, text, cursor, s, go.max_tokens, *lease.backend,
                                            &shown, &reduced, &sized);
    // The full prompt would be late here: this answer is a smaller one, and the full one
    // warms at this place before anything else, for the keystrokes to come.
    if (reduced) warm(req.uri, req.position, WarmOrder::kFirst);
    go.owner = req.uri;
    go.stop = {mid_line ? "\n" : "\n\n\n"};
    go.cancelled = [&] {
        return (cancelled && cancelled()) || mine->load() || generators_.stale(lease.generation);
    };
    // With its prompt sized by the latency target, the answer stops at it too.
    GenerationTimeLimit time_limit{
        std::chrono::milliseconds(s.max_time_ms),
        sized ? std::optional(t0 + std::chrono::milliseconds(s.latency_ms)) : std::nullopt};
    if (s.max_time_ms > 0 || sized)
        go.enough = [&time_limit](std::string_view t) { return time_limit(t, Clock::now()); };
    called = Clock::now();
    auto g = lease.backend->fim(layout.prompt, go);
    if (cancelled && cancelled()) return FeatureError{Kind::kCancelled, "cancelled", 0};
    if (mine->load() || (g && g->cancelled))
        return FeatureError{Kind::kSuperseded, "superseded by a newer request",
                            g ? g->prompt_tokens : 0};
    if (!g) {
        log("error: inlineCompletion: " + g.error().message);
        return FeatureError{Kind::kFailed, g.error().message, 0};
    }
    // Cut by the time limit: the line it was in the middle of goes.
    std::string insert =
        postprocess(g->ended_early && !time_limit.past_deadline() ? whole_lines(g->text)
                                                                  : std::string_view(g->text),
                    at);
    log("inlineCompletion " + shown + ":" + std::to_string(req.position.line + 1) + ": " +
        std::to_string(g->cached_tokens) + " cached + " + std::to_string(g->computed_tokens) +
        " computed prompt tokens, " + std::to_string(g->generated_tokens) + " generated, " +
        std::to_string(insert.size()) + " bytes kept");
    suggestions_.put(req.uri, before, after, insert);
    return answer(std::move(insert), false, &*g);
}

// ---- chat, explain, edit ----

Outcome<ChatResult> Agent::run_chat(std::vector<ChatMessage> messages, const Cancelled& cancelled,
                                    const OnText& on_text, const std::string& owner) {
    const auto lease = generators_.current();
    if (!lease.backend) {
        const std::string e = generators_.error();
        return FeatureError{Kind::kFailed, e.empty() ? "no backend is ready yet" : e, 0};
    }
    GenerateOptions go;
    go.max_tokens = settings().chat_max_tokens;
    go.temperature = 0.0f;
    go.owner = owner;
    go.cancelled = [&] {
        return (cancelled && cancelled()) || generators_.stale(lease.generation);
    };
    go.on_text = on_text;
    auto g = lease.backend->chat(messages, go);
    if (cancelled && cancelled()) return FeatureError{Kind::kCancelled, "cancelled", 0};
    if (!g) return FeatureError{Kind::kFailed, g.error().message, 0};
    if (g->cancelled)
        return FeatureError{Kind::kFailed, "the backend was replaced (settings changed)", 0};
    ChatResult r;
    r.text = std::move(g->text);
    r.cached_tokens = g->cached_tokens;
    r.computed_tokens = g->computed_tokens;
    r.generated_tokens = g->generated_tokens;
    r.prompt_tokens = g->cached_tokens + g->computed_tokens;
    return r;
}

Outcome<ChatResult> Agent::chat(const ChatRequest& req, const Cancelled& cancelled,
                                const OnText& on_text) {
    ChatStreams streams;
    streams.text = on_text;
    return chat(req, cancelled, streams);
}

Outcome<ChatResult> Agent::chat(const ChatRequest& req, const Cancelled& cancelled,
                                const ChatStreams& streams) {
    std::vector<ChatMessage> shown;
    size_t bytes = 0;
    const size_t from =
        req.messages.size() > kMaxChatMessages ? req.messages.size() - kMaxChatMessages : 0;
    for (size_t i = from; i < req.messages.size(); ++i) {
        bytes += req.messages[i].content.size();
        shown.push_back(req.messages[i]);
    }
    if (bytes > kMaxChatBytes)
        return FeatureError{Kind::kInvalid, "the conversation is larger than 256 KiB", 0};
    if (shown.empty()) return FeatureError{Kind::kInvalid, "no messages", 0};
    const Settings s = settings();
    // The new turn: the user's words, rendered through a library prompt when one was
    // named, with the context gathered for it in front.
    ChatMessage asked = shown.back();
    shown.pop_back();
    ChatMessage turn = asked;
    auto selection = chat_selection(req);
    if (!req.prompt.empty()) {
        auto rendered = render_prompt(req, asked.content, selection);
        if (!rendered) return FeatureError{Kind::kInvalid, rendered.error().message, 0};
        turn.content = std::move(*rendered);
    }
    GatheredContext gathered = gather_context(req, asked.content, s);
    // (A library prompt places the selection itself.)
    if (selection && !selection->text.empty() && req.prompt.empty()) {
        gathered.text = "The user is working on " + selection->path + ":\n```" +
                        extension_language(selection->path) + "\n" + selection->text + "\n```\n" +
                        gathered.text;
        if (selection->source)
            gathered.sources.insert(gathered.sources.begin(), *selection->source);
    }
    if (!gathered.text.empty()) turn.content = gathered.text + "\n" + turn.content;
    if (!gathered.sources.empty() && streams.sources) streams.sources(gathered.sources);
    // What was sent before in this conversation, else the client's history.
    std::vector<ChatMessage> messages;
    if (auto t = conversations_.transcript(req.conversation_id, shown)) {
        messages = std::move(*t);
    } else {
        if (req.agent) {
            std::vector<std::string> names;
            for (const auto& f : workspaces_.folders()) names.push_back(f.substr(f.rfind('/') + 1));
            messages.push_back({"system", agent_system_prompt(names)});
        }
        messages.insert(messages.end(), shown.begin(), shown.end());
    }
    messages.push_back(std::move(turn));

    // Each conversation its own owner: the local backend remembers the token ids of an
    // owner's last prompt and answer, so alternating conversations keep their reuse.
    const std::string owner = req.conversation_id.empty() ? "chat" : "chat:" + req.conversation_id;
    ChatResult result;
    result.sources = std::move(gathered.sources);
    std::vector<ChatMessage> transcript;
    if (req.agent) {
        const auto lease = generators_.current();
        if (!lease.backend) {
            const std::string e = generators_.error();
            return FeatureError{Kind::kFailed, e.empty() ? "no backend is ready yet" : e, 0};
        }
        WorkspaceTools tools(workspaces_, docs_);
        AgentLoopOptions lo;
        lo.max_steps = s.agent_max_steps;
        lo.max_tokens = s.chat_max_tokens;
        lo.owner = owner;
        AgentLoop loop(*lease.backend, tools, lo);
        auto stop = [&] {
            return (cancelled && cancelled()) || generators_.stale(lease.generation);
        };
        auto r = loop.run(std::move(messages), stop, streams.step, streams.text);
        if (cancelled && cancelled()) return FeatureError{Kind::kCancelled, "cancelled", 0};
        if (!r) return FeatureError{Kind::kFailed, r.error().message, 0};
        if (r->cancelled)
            return FeatureError{Kind::kFailed, "the backend was replaced (settings changed)", 0};
        result.text = std::move(r->text);
        result.cached_tokens = r->cached_tokens;
        result.computed_tokens = r->computed_tokens;
        result.generated_tokens = r->generated_tokens;
        result.prompt_tokens = r->last_prompt_tokens;
        result.steps = std::move(r->steps);
        result.stop_reason = std::move(r->stop_reason);
        result.proposal = std::move(r->proposal);
        for (const auto& step : result.steps)
            for (const auto& src : step.sources)
                if (result.sources.size() < 64 &&
                    std::find(result.sources.begin(), result.sources.end(), src) ==
                        result.sources.end())
                    result.sources.push_back(src);
        transcript = std::move(r->transcript);
    } else {
        auto r = run_chat(messages, cancelled, streams.text, owner);
        if (!r) return r;
        result.text = std::move(r.value->text);
        result.cached_tokens = r.value->cached_tokens;
        result.computed_tokens = r.value->computed_tokens;
        result.generated_tokens = r.value->generated_tokens;
        result.prompt_tokens = r.value->prompt_tokens;
        transcript = std::move(messages);
        transcript.push_back({"assistant", result.text});
    }
    // A library prompt's turn is shown in the client's history as "/name words" (as the
    // user typed it): the next turn's history is matched in that form.
    if (!req.prompt.empty())
        asked.content = "/" + req.prompt + (asked.content.empty() ? "" : " " + asked.content);
    shown.push_back(std::move(asked));
    shown.push_back({"assistant", result.text});
    conversations_.store(req.conversation_id, std::move(shown), std::move(transcript));
    return result;
}

std::optional<Agent::Selection> Agent::chat_selection(const ChatRequest& req) {
    if (!req.uri) return std::nullopt;
    Selection sel;
    lsp::Range range;
    const auto enc = docs_.encoding();
    const bool open = docs_.read(*req.uri, [&](const Document& d) {
        size_t a = 0, e = d.text.size();
        if (req.range) {
            a = to_offset(d.text, req.range->start, enc);
            e = std::max(a, to_offset(d.text, req.range->end, enc));
        }
        const size_t n = std::min<size_t>(e - a, kMaxChatContextBytes);
        sel.text = d.text.substr(a, n);
        range = {to_position(d.text, a, enc), to_position(d.text, a + n, enc)};
    });
    if (!open) return std::nullopt;
    const std::string real = workspaces_.resolve(*req.uri);
    sel.path = real.empty() ? uri_to_path(*req.uri) : workspaces_.shown_path(real);
    if (sel.path.empty()) sel.path = *req.uri;
    sel.source = Source{*req.uri, sel.path, range, req.range ? "selection" : "current file"};
    return sel;
}

GatheredContext Agent::gather_context(const ChatRequest& req, const std::string& question,
                                      const Settings& s) {
    if (req.mentions.empty() || s.chat_context_tokens <= 0) return {};
    GatherOptions o;
    o.token_budget = static_cast<size_t>(s.chat_context_tokens);
    return agent::gather_context(question, req.mentions, workspaces_, docs_, o);
}

std::vector<MentionItem> Agent::mention_items(MentionKind kind, std::string_view query,
                                              size_t limit) {
    return complete_mentions(workspaces_, kind, query, limit);
}

std::vector<PromptInfo> Agent::prompts() {
    prompt_library_.set_folders(workspaces_.folders());
    return prompt_library_.list();
}

engine::Expected<std::string> Agent::render_prompt(const ChatRequest& req, const std::string& input,
                                                   const std::optional<Selection>& selection) {
    prompt_library_.set_folders(workspaces_.folders());
    const auto info = prompt_library_.find(req.prompt);
    if (!info) return engine::make_error("no prompt is named \"" + req.prompt.substr(0, 64) + "\"");
    PromptInputs in;
    in.input = input;
    auto wants = [&](PromptContext c) {
        return std::find(info->context.begin(), info->context.end(), c) != info->context.end();
    };
    if (selection) {
        in.path = selection->path;
        in.language = extension_language(selection->path);
        if (req.range) in.selection = selection->text;
    }
    if (wants(PromptContext::kFile) && req.uri) {
        docs_.read(*req.uri, [&](const Document& d) {
            in.file = d.text.substr(0, kMaxExplainBytes * 2);
            if (in.language.empty()) in.language = d.language_id;
        });
        // No selection: the file stands in for it.
        if (in.selection.empty() && wants(PromptContext::kSelection)) in.selection = in.file;
    } else if (wants(PromptContext::kSelection) && in.selection.empty() && selection) {
        in.selection = selection->text;
    }
    if (wants(PromptContext::kCodebase)) {
        Mention codebase;
        codebase.kind = Mention::Kind::kCodebase;
        GatherOptions o;
        o.token_budget = static_cast<size_t>(std::max(settings().chat_context_tokens, 256));
        in.codebase = agent::gather_context(input, {codebase}, workspaces_, docs_, o).text;
    }
    if (req.prompt == "review" || info->workspace) {
        // The working tree against HEAD, of the folder holding the current file (else the
        // first), capped: git runs with run_git's safeguards (no hooks, no fsmonitor).
        std::string folder;
        const std::string real = req.uri ? workspaces_.resolve(*req.uri) : "";
        for (const auto& f : workspaces_.folders())
            if (folder.empty() || (!real.empty() && path_within(f, real))) folder = f;
        if (!folder.empty())
            if (auto d =
                    index::run_git({"-C", folder, "diff", "HEAD", "--no-color", "--no-ext-diff"}))
                in.diff = d->substr(0, kMaxEditBytes);
    }
    return prompt_library_.render(req.prompt, in);
}

Outcome<ChatResult> Agent::explain(const std::string& uri, lsp::Range range,
                                   const Cancelled& cancelled, const OnText& on_text) {
    std::string sel;
    const auto enc = docs_.encoding();
    const bool open = docs_.read(uri, [&](const Document& d) {
        const size_t a = to_offset(d.text, range.start, enc);
        const size_t e = std::max(a, to_offset(d.text, range.end, enc));
        sel = d.text.substr(a, std::min<size_t>(e - a, kMaxExplainBytes));
    });
    if (!open) return not_open(uri);
    // Definitions of the names the selection uses, from the index.
    std::string defs;
    const std::string path = workspaces_.resolve(uri);
    if (auto ix = path.empty() ? nullptr : workspaces_.index_for(path)) {
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
    const std::string shown = uri_to_path(uri).empty() ? uri : uri_to_path(uri);
    std::string prompt = "Explain what this code from " + shown +
                         " does, briefly and precisely.\n```" + extension_language(uri) + "\n" +
                         sel + "\n```\n";
    if (!defs.empty()) prompt += "Definitions it uses:\n" + defs;
    return run_chat({{"user", prompt}}, cancelled, on_text);
}

Outcome<ChatResult> Agent::edit(const std::string& uri, lsp::Range range,
                                const std::string& instruction, const Cancelled& cancelled,
                                const OnText& on_text) {
    if (instruction.size() > kMaxInstructionBytes)
        return FeatureError{Kind::kInvalid, "the instruction is longer than 16 KiB", 0};
    const auto doc = docs_.get(uri);
    if (!doc) return not_open(uri);
    const auto enc = docs_.encoding();
    const size_t a = to_offset(doc->text, range.start, enc);
    const size_t e = std::max(a, to_offset(doc->text, range.end, enc));
    if (e - a > kMaxEditBytes)
        return FeatureError{Kind::kInvalid, "the selection is larger than 64 KiB", 0};
    const std::string sel = doc->text.substr(a, e - a);
    const std::string prompt =
        "Rewrite the following code from " + uri_to_path(uri) + " as instructed. Answer with " +
        "the new code only, in one fenced code block.\nInstruction: " + instruction + "\n```" +
        extension_language(uri) + "\n" + sel + "\n```\n";
    auto r = run_chat({{"user", prompt}}, cancelled, on_text);
    if (!r) return r;
    std::string text = r.value->text;
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
    r.value->text = std::move(text);
    r.value->edit = std::move(we);
    return r;
}

nlohmann::json Agent::status() const {
    nlohmann::json j;
    const auto lease = generators_.current();
    {
        std::lock_guard<std::mutex> lock(mu_);
        j["settings"] = redacted(settings_);
        j["completions"] = completions_;
        j["suggestionCacheHits"] = cache_hits_;
        j["lastCompletionMs"] = last_latency_ms_;
        j["lastCachedTokens"] = last_cached_tokens_;
        j["lastComputedTokens"] = last_computed_tokens_;
    }
    const bool loading = generators_.loading();
    j["backend"] = lease.backend ? lease.backend->describe() : loading ? "loading" : "none";
    if (const std::string e = generators_.error(); !e.empty()) j["backendError"] = e;
    j["backendLoads"] = generators_.loads();
    j["cache"] = lease.backend ? lease.backend->stats() : nlohmann::json::object();
    j["documents"] = docs_.size();
    j["index"] = workspaces_.stats();
    j["nextEdit"] = next_edits_.counters();
    return j;
}

}  // namespace latent::agent
