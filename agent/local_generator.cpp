// LocalGenerator (see local_generator.h).
#include "agent/local_generator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>

#include "engine/backends.h"
#include "engine/cpu/backend.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/serve/api_request.h"
#include "engine/serve/tool_calls.h"
#include "engine/tokenizer.h"
#include "engine/vocab.h"

namespace latent::agent {

using engine::Expected;
using engine::make_error;

Expected<std::unique_ptr<LocalGenerator>> LocalGenerator::create(
    const LocalGeneratorOptions& options) {
    std::unique_ptr<LocalGenerator> b(new LocalGenerator());
    b->options_ = options;
    auto m = engine::Model::load(options.model_path);
    if (!m) return m.error();
    b->model_ = std::move(*m);
    auto t = engine::Tokenizer::create(b->model_->vocab());
    if (!t) return make_error(options.model_path + ": tokenizer: " + t.error().message);
    b->tokenizer_ = std::make_unique<engine::Tokenizer>(std::move(*t));
    if (!b->tokenizer_->fim())
        return make_error(options.model_path +
                          ": the vocabulary has no FIM tokens (inline completion needs them)");
    for (int32_t id = 0; id < b->tokenizer_->n_vocab(); ++id)
        if (b->tokenizer_->is_eog(id)) b->end_tokens_.push_back(id);
    for (const char* s : {engine::kToolCallsBegin, engine::kToolCallsEnd, engine::kToolCallBegin,
                          engine::kToolCallEnd, engine::kToolSep})
        if (auto id = b->tokenizer_->find_token(s)) b->tool_call_tokens_.push_back(*id);
    b->constraints_ = std::make_unique<serve::OutputConstraints>(*b->tokenizer_, b->end_tokens_);
    auto e = engine::make_backend({options.engine, options.threads});
    if (!e) return e.error();
    b->engine_ = std::move(e->backend);
    b->engine_->prepare(*b->model_);  // e.g. the CPU backend's repacked weights, at load
    b->engine_name_ = b->engine_->name();
    if (const auto* cpu = dynamic_cast<const engine::CpuBackend*>(b->engine_.get())) {
        b->kernels_ = cpu->kernels().name;
        b->threads_ = cpu->threads();
    }
    engine::Scheduler::Options so;
    so.cache_bytes = std::max<uint64_t>(options.cache_bytes, 16u << 20);
    // Cached prefixes may use three quarters; the rest stays for running requests (which
    // take pages from unpinned cached prefixes anyway when they need them).
    so.prefix_cache_bytes = so.cache_bytes / 4 * 3;
    so.prefix_cache = options.prefix_cache;
    so.disk_dir = options.prefix_cache ? options.disk_dir : "";
    so.disk_bytes = options.disk_bytes;
    so.prefill_chunk = std::max(1, options.prefill_chunk);
    so.warm_chunk = std::max(1, options.warm_chunk);
    so.warm_chunk_ms = std::max(0.0, options.warm_chunk_ms);
    so.draft_tokens = std::max(0, options.draft_tokens);
    so.mtp = options.mtp;
    auto s = engine::Scheduler::create(*b->model_, *b->engine_, so);
    if (!s && !so.disk_dir.empty()) {
        // An unusable cache folder costs the disk tier, not the completions.
        b->disk_error_ = s.error().message;
        so.disk_dir.clear();
        s = engine::Scheduler::create(*b->model_, *b->engine_, so);
    }
    if (!s) return make_error("cache: " + s.error().message);
    b->scheduler_ = std::move(*s);
    if (options.calibrate) {
        // Code-like tokens, so that the experts a real prompt routes to are the ones timed.
        std::vector<int32_t> ids = b->tokenizer_->encode(
            "def area(shape):\n    if shape.kind == \"circle\":\n        return 3.14159 * "
            "shape.r ** 2\n    return shape.w * shape.h  # rectangles and squares\n",
            false, false);
        if (!ids.empty()) {
            const std::vector<int32_t> once = ids;
            while (ids.size() < kCalibrationTokens) ids.insert(ids.end(), once.begin(), once.end());
            ids.resize(kCalibrationTokens);
            b->scheduler_->calibrate(std::move(ids), 2);
        }
    }
    return b;
}

LocalGenerator::~LocalGenerator() {
    // The scheduler answers whatever is still queued ("cancelled") and writes pinned
    // pages to the disk tier before the model and the engine go.
    {
        std::lock_guard lock(mu_);
        closing_ = true;
    }
    scheduler_.reset();
}

std::string LocalGenerator::describe() const {
    return "local " + engine_name_ + " " + options_.model_path;
}

void LocalGenerator::wait_idle() { scheduler_->wait_idle(); }

std::vector<int32_t> LocalGenerator::fim_tokens(const FimPrompt& p) const {
    // Context and prefix are one text: tokenizing them together keeps the tokens at their
    // seam the same whether or not the prefix grows. (create() checked the FIM tokens.)
    auto ids = engine::fim_tokens(*tokenizer_, p.context + p.prefix, p.suffix, p.middle);
    return ids ? std::move(*ids) : std::vector<int32_t>();
}

namespace {

// What a request's scheduler callbacks (on the scheduler's thread) share with the caller
// waiting for it.
struct Call {
    std::mutex mu;
    std::condition_variable cv;
    std::string text;  // emitted since the caller last took it
    bool done = false;
    engine::RequestResult result;
    std::atomic<bool> stop{false};  // the caller cancelled
    // Scheduler thread until done, then the caller's.
    engine::StopMatcher matcher;
    int32_t generated = 0;
    std::vector<int32_t> ids;  // the tokens of the text, in order
    bool stopped = false;      // a stop string matched
    // The scheduler thread's own, with options.enough only: all the text emitted, and
    // whether enough ended it.
    std::string so_far;
    bool ended_early = false;
    std::chrono::steady_clock::time_point first_token;
};

}  // namespace

Expected<GenerateResult> LocalGenerator::generate(std::vector<int32_t> prompt,
                                                  engine::Priority priority,
                                                  const GenerateOptions& options,
                                                  const ChatSetup* chat,
                                                  std::vector<int32_t>* answer_ids) {
    GenerateResult out;
    out.prompt_tokens = static_cast<int32_t>(prompt.size());
    if (options.cancelled && options.cancelled()) {
        out.cancelled = true;
        return out;
    }
    auto matcher = engine::StopMatcher::create(options.stop);
    if (!matcher) return matcher.error();
    auto call = std::make_shared<Call>();
    call->matcher = std::move(*matcher);
    const bool tools = chat && chat->tools;

    engine::Request r;
    r.prompt = std::move(prompt);
    r.priority = priority;
    r.max_tokens = std::max(1, options.max_tokens);
    r.sampling.temperature = options.temperature;
    r.end_tokens = end_tokens_;
    if (chat) r.constraint = chat->constraint;
    r.on_token = [this, call, tools, enough = options.enough](int32_t id) {
        if (call->stop.load(std::memory_order_relaxed) || tokenizer_->is_eog(id)) return false;
        // A control token (FIM or chat markers) is never text for the user: it ends the
        // answer as EOS would. With tools, the tool-call markers are the calls' text
        // (ToolCallStream reads them; the constraint keeps them well-formed).
        const auto& types = model_->vocab().types;
        const bool tool_marker =
            tools && std::find(tool_call_tokens_.begin(), tool_call_tokens_.end(), id) !=
                         tool_call_tokens_.end();
        if (!tool_marker && id >= 0 && static_cast<size_t>(id) < types.size() &&
            types[static_cast<size_t>(id)] == engine::TokenType::kControl)
            return false;
        const auto step = call->matcher.push(tokenizer_->token_to_piece(id));
        {
            std::lock_guard lock(call->mu);
            if (call->generated == 0) call->first_token = std::chrono::steady_clock::now();
            ++call->generated;
            call->ids.push_back(id);
            call->text += step.emit;
            call->stopped = step.stopped;
        }
        if (!step.emit.empty()) call->cv.notify_all();
        if (step.stopped) return false;
        if (!enough || step.emit.empty()) return true;
        call->so_far += step.emit;
        call->ended_early = enough(call->so_far);
        return !call->ended_early;
    };
    r.on_done = [call](const engine::RequestResult& res) {
        {
            std::lock_guard lock(call->mu);
            call->result = res;
            call->done = true;
        }
        call->cv.notify_all();
    };
    // With tools the text streams through a ToolCallStream: content to the caller, calls
    // to the result.
    serve::ToolCallStream split;
    auto take = [&](const std::string& piece) {
        std::string content = piece;
        if (tools) {
            auto u = split.push(piece);
            content = std::move(u.content);
            for (auto& c : u.calls)
                out.tool_calls.push_back(
                    {std::move(c.id), std::move(c.name), std::move(c.arguments)});
        }
        if (content.empty()) return;
        out.text += content;
        if (options.on_text) options.on_text(content);
    };
    {
        std::lock_guard lock(mu_);
        r.progress = know(r.prompt);
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto handle = scheduler_->submit(std::move(r));
    if (!handle) return handle.error();

    bool cancel_sent = false;
    for (;;) {
        std::string piece;
        bool done;
        {
            std::unique_lock lock(call->mu);
            // Wake for text, the end, or now and then to poll the caller's cancellation.
            call->cv.wait_for(lock, std::chrono::milliseconds(5),
                              [&] { return call->done || !call->text.empty(); });
            piece.swap(call->text);
            done = call->done;
        }
        if (!piece.empty()) take(piece);
        if (done) break;
        if (!cancel_sent && options.cancelled && options.cancelled()) {
            call->stop = true;
            scheduler_->cancel(*handle);
            cancel_sent = true;
        }
    }
    const engine::RequestResult& res = call->result;
    if (res.finish_reason == "error") return make_error(res.error);
    out.cancelled = cancel_sent || res.finish_reason == "cancelled";
    out.ended_early = !out.cancelled && call->ended_early;
    if (!out.cancelled && !call->stopped && !out.ended_early) {
        const std::string rest = call->matcher.flush();
        if (!rest.empty()) take(rest);
    }
    if (tools) {
        auto u = split.finish();
        if (!u.content.empty()) {
            out.text += u.content;
            if (options.on_text) options.on_text(u.content);
        }
        for (auto& c : u.calls)
            out.tool_calls.push_back({std::move(c.id), std::move(c.name), std::move(c.arguments)});
        for (auto& c : out.tool_calls)
            if (c.id.empty()) c.id = serve::new_call_id();
    }
    out.finish_reason = out.cancelled ? "cancelled" : res.finish_reason;
    if (!out.cancelled && !out.tool_calls.empty()) out.finish_reason = "tool_calls";
    if (answer_ids) *answer_ids = std::move(call->ids);
    out.cached_tokens = res.cached_tokens;
    out.computed_tokens = res.computed_tokens;
    out.generated_tokens = call->generated;
    if (call->generated > 0)
        out.first_token_ms =
            std::chrono::duration<double, std::milli>(call->first_token - t0).count();
    return out;
}

Expected<GenerateResult> LocalGenerator::fim(const FimPrompt& prompt,
                                             const GenerateOptions& options) {
    return generate(fim_tokens(prompt), engine::Priority::kInline, options);
}

std::vector<LocalGenerator::Segment> LocalGenerator::chat_segments(
    const std::vector<ChatMessage>& messages, const engine::ChatOptions& chat_options,
    const std::string& owner) const {
    const auto pieces =
        engine::chat_pieces(engine::chat_family(*tokenizer_), messages, chat_options);
    std::vector<Segment> out;
    out.reserve(pieces.size());
    size_t i = 0;
    {
        std::lock_guard lock(mu_);
        if (auto it = memories_.find(owner); it != memories_.end()) {
            const auto& said = it->second.segments;
            while (i < pieces.size() && i < said.size() &&
                   pieces[i].special == said[i].piece.special &&
                   pieces[i].text == said[i].piece.text) {
                out.push_back(said[i]);
                ++i;
            }
        }
    }
    for (; i < pieces.size(); ++i)
        out.push_back({pieces[i], engine::piece_tokens(*tokenizer_, pieces[i])});
    return out;
}

std::vector<int32_t> LocalGenerator::chat_prompt_tokens(const std::vector<ChatMessage>& messages,
                                                        const engine::ChatOptions& chat_options,
                                                        const std::string& owner) const {
    std::vector<int32_t> ids;
    for (const auto& s : chat_segments(messages, chat_options, owner))
        ids.insert(ids.end(), s.ids.begin(), s.ids.end());
    return ids;
}

void LocalGenerator::remember(const std::string& owner, std::vector<Segment> prompt,
                              const std::vector<int32_t>& answer_ids) {
    const auto& types = model_->vocab().types;
    bool in_text = false;  // the last segment is a run of this answer's ordinary tokens
    for (int32_t id : answer_ids) {
        // Text: ordinary tokens, and those with no text at all (unused padding ids a
        // random-weight model may write), which mark nothing either.
        const auto type = id >= 0 && static_cast<size_t>(id) < types.size()
                              ? types[static_cast<size_t>(id)]
                              : engine::TokenType::kControl;
        const bool ordinary =
            type == engine::TokenType::kNormal ||
            (type != engine::TokenType::kControl && type != engine::TokenType::kUserDefined &&
             tokenizer_->token_to_piece(id).empty());
        if (!ordinary) {
            // Its spelling as a special piece: it matches a prompt's marker of that
            // spelling, never text.
            Segment marker;
            marker.piece.special = true;
            marker.piece.text = tokenizer_->token_to_piece(id);
            marker.ids.push_back(id);
            prompt.push_back(std::move(marker));
            in_text = false;
            continue;
        }
        if (!in_text) prompt.emplace_back();
        prompt.back().piece.text += tokenizer_->token_to_piece(id);
        prompt.back().ids.push_back(id);
        in_text = true;
    }
    std::lock_guard lock(mu_);
    if (memories_.size() >= kMaxChatMemories && !memories_.contains(owner)) {
        auto oldest = std::min_element(memories_.begin(), memories_.end(), [](auto& x, auto& y) {
            return x.second.used < y.second.used;
        });
        memories_.erase(oldest);
    }
    memories_[owner] = {std::move(prompt), ++memory_clock_};
}

Expected<GenerateResult> LocalGenerator::chat(const std::vector<ChatMessage>& messages,
                                              const GenerateOptions& options) {
    // The output options checked and typed as serve checks a request body's.
    serve::ApiRequest req;
    req.chat = true;
    req.messages = messages;
    req.max_tokens = std::max(1, options.max_tokens);
    nlohmann::ordered_json body = nlohmann::ordered_json::object();
    for (const auto& [key, value] :
         {std::pair<const char*, const nlohmann::json*>{"tools", &options.tools},
          {"tool_choice", &options.tool_choice},
          {"response_format", &options.response_format}})
        if (!value->is_null()) body[key] = nlohmann::ordered_json::parse(value->dump());
    if (engine::Status st = serve::parse_chat_output_options(body, req); !st) return st.error();
    engine::ChatOptions co;
    if (req.tool_choice != serve::ToolChoice::kNone || !req.tools.empty())
        co.tool_prompt = serve::tool_prompt(req.tools);
    ChatSetup setup;
    setup.tools = !req.tools.empty();
    // A plain chat goes free, as before: a control token (a tool marker too) ends it, and
    // prompt-lookup drafts (which a constraint turns off) still speed it up.
    if (setup.tools || req.response_format.kind != serve::ResponseFormat::Kind::kText) {
        auto constraint = constraints_->for_request(req);
        if (!constraint) return constraint.error();
        setup.constraint = *constraint;
    }

    std::vector<Segment> segments = chat_segments(messages, co, options.owner);
    std::vector<int32_t> prompt;
    for (const auto& s : segments) prompt.insert(prompt.end(), s.ids.begin(), s.ids.end());
    std::vector<int32_t> answer;
    auto out = generate(std::move(prompt), engine::Priority::kChat, options, &setup, &answer);
    if (out) remember(options.owner, std::move(segments), answer);
    return out;
}

std::shared_ptr<std::atomic<int32_t>> LocalGenerator::know(const std::vector<int32_t>& ids) {
    auto progress = std::make_shared<std::atomic<int32_t>>(0);
    known_.push_front({ids, progress});
    if (known_.size() > kMaxKnown) known_.pop_back();
    return progress;
}

std::optional<PromptCost> LocalGenerator::prompt_cost(const FimPrompt& prompt) const {
    const std::vector<int32_t> ids = fim_tokens(prompt);
    PromptCost c;
    c.prompt_tokens = static_cast<int32_t>(ids.size());
    int32_t cached = 0;
    {
        std::lock_guard lock(mu_);
        if (!warming_.empty()) c.wait_ms = options_.warm_chunk_ms;
        if (options_.prefix_cache)
            for (const Known& k : known_) {
                const size_t n = std::min(ids.size(), k.ids.size());
                const auto shared = static_cast<int32_t>(
                    std::mismatch(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n),
                                  k.ids.begin())
                        .first -
                    ids.begin());
                cached = std::max(cached, std::min(shared, k.progress->load()));
            }
    }
    // The last prompt token is always computed (its logits are not cached).
    c.computed_tokens =
        std::max<int32_t>(std::min<int32_t>(1, c.prompt_tokens), c.prompt_tokens - cached);
    const auto st = scheduler_->stats();
    c.prefill_ms_per_token = st.prefill_ms_per_token;
    c.decode_ms_per_token = st.decode_ms_per_step;
    return c;
}

void LocalGenerator::submit_warm(const std::string& owner, std::vector<int32_t> ids) {
    engine::Request r;
    r.prompt = ids;
    r.priority = engine::Priority::kWarm;
    r.max_tokens = 0;
    r.pin_owner = owner;
    r.progress = know(ids);
    r.on_done = [this, owner, progress = r.progress](const engine::RequestResult&) {
        warm_done(owner, progress);
    };
    auto progress = r.progress;
    auto h = scheduler_->submit(std::move(r));
    if (h) {
        warming_[owner] = {*h, std::move(ids), std::move(progress)};
        return;
    }
    warming_.erase(owner);  // busy: the next completion prefills it anyway
    if (owner == first_) resume_deferred();
}

void LocalGenerator::warm_done(const std::string& owner,
                               const std::shared_ptr<std::atomic<int32_t>>& progress) {
    std::lock_guard lock(mu_);
    auto it = warming_.find(owner);
    // A newer warm-up of the owner replaced it, or it was put off: nothing to do.
    if (it == warming_.end() || it->second.progress != progress) return;
    warming_.erase(it);
    if (owner == first_) resume_deferred();
}

void LocalGenerator::resume_deferred() {
    first_.clear();
    if (closing_) return;
    auto deferred = std::move(deferred_);
    deferred_.clear();
    for (auto& [owner, ids] : deferred) submit_warm(owner, std::move(ids));
}

void LocalGenerator::warm(const std::string& owner, const FimPrompt& stable, WarmOrder order) {
    if (!options_.prefix_cache) return;
    std::vector<int32_t> ids = fim_tokens(stable);
    if (ids.size() < 2 || ids.size() >= model_->hparams().n_ctx_train) return;
    std::lock_guard lock(mu_);
    if (closing_) return;
    // The owner's previous warm-up, if still queued or running, is stale now — unless it
    // is this one (the same place warmed again, a keystroke later): it goes on.
    deferred_.erase(owner);
    bool running = false;
    if (auto it = warming_.find(owner); it != warming_.end()) {
        if (it->second.ids == ids) {
            running = true;
        } else {
            scheduler_->cancel(it->second.handle);
            warming_.erase(it);
        }
    }
    if (order == WarmOrder::kFirst) {
        // Nothing else until this place is ready: the other warm-ups stop (their pages
        // so far stay in the prefix cache) and start again, from there, after it.
        for (auto it = warming_.begin(); it != warming_.end();) {
            if (it->first == owner) {
                ++it;
                continue;
            }
            scheduler_->cancel(it->second.handle);
            deferred_[it->first] = std::move(it->second.ids);
            it = warming_.erase(it);
        }
        first_ = owner;
    } else if (!first_.empty() && first_ != owner) {
        deferred_[owner] = std::move(ids);
        return;
    }
    if (!running) submit_warm(owner, std::move(ids));
}

void LocalGenerator::release(const std::string& owner) {
    {
        std::lock_guard lock(mu_);
        deferred_.erase(owner);
        if (auto it = warming_.find(owner); it != warming_.end()) {
            scheduler_->cancel(it->second.handle);
            warming_.erase(it);
        }
        if (owner == first_) resume_deferred();
    }
    scheduler_->release(owner);
    std::lock_guard lock(mu_);
    memories_.erase(owner);
}

nlohmann::json LocalGenerator::stats() const {
    const auto s = scheduler_->stats();
    return {{"engine", engine_name_},
            {"kernels", kernels_},
            {"threads", threads_},
            {"model", options_.model_path},
            {"cache_ram_bytes", s.prefix.bytes},
            {"cache_disk_bytes", s.disk.bytes},
            {"cache_disk_files", s.disk.files},
            {"cache_disk_error", disk_error_},
            {"cached_pages", s.prefix.nodes},
            {"pinned_pages", s.prefix.pinned_nodes},
            {"pages_from_disk", s.prefix.disk_loads},
            {"running", s.running},
            {"queue_depth", s.queue_depth},
            {"prompt_tokens", s.prompt_tokens},
            {"cached_prompt_tokens", s.cached_tokens},
            {"computed_prompt_tokens", s.computed_tokens},
            {"prefilled_prompt_tokens", s.prefilled_tokens},
            {"device_pages", s.device.pages},
            {"device_page_hits", s.device.hits},
            {"device_page_uploads", s.device.uploads},
            {"cache_hit_rate", s.prompt_tokens ? double(s.cached_tokens) / s.prompt_tokens : 0.0},
            {"prefill_ms_per_token", s.prefill_ms_per_token},
            {"decode_ms_per_step", s.decode_ms_per_step},
            {"drafted_tokens", s.drafted_tokens},
            {"accepted_tokens", s.accepted_tokens}};
}

}  // namespace latent::agent
