// LocalGenerator (see local_backend.h).
#include "agent/local_generator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>

#include "engine/backends.h"
#include "engine/model.h"
#include "engine/sampler.h"
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
    auto e = engine::make_backend({options.engine, options.threads});
    if (!e) return e.error();
    b->engine_ = std::move(e->backend);
    b->engine_name_ = b->engine_->name();
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
    return b;
}

LocalGenerator::~LocalGenerator() {
    // The scheduler answers whatever is still queued ("cancelled") and writes pinned
    // pages to the disk tier before the model and the engine go.
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
    bool stopped = false;  // a stop string matched
    // The scheduler thread's own, with options.enough only: all the text emitted, and
    // whether enough ended it.
    std::string so_far;
    bool ended_early = false;
    std::chrono::steady_clock::time_point first_token;
};

}  // namespace

Expected<GenerateResult> LocalGenerator::generate(std::vector<int32_t> prompt,
                                                  engine::Priority priority,
                                                  const GenerateOptions& options) {
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

    engine::Request r;
    r.prompt = std::move(prompt);
    r.priority = priority;
    r.max_tokens = std::max(1, options.max_tokens);
    r.sampling.temperature = options.temperature;
    r.on_token = [this, call, enough = options.enough](int32_t id) {
        if (call->stop.load(std::memory_order_relaxed) || tokenizer_->is_eog(id)) return false;
        // A control token (FIM or chat markers) is never text for the user: it ends the
        // answer as EOS would.
        const auto& types = model_->vocab().types;
        if (id >= 0 && static_cast<size_t>(id) < types.size() &&
            types[static_cast<size_t>(id)] == engine::TokenType::kControl)
            return false;
        const auto step = call->matcher.push(tokenizer_->token_to_piece(id));
        {
            std::lock_guard lock(call->mu);
            if (call->generated == 0) call->first_token = std::chrono::steady_clock::now();
            ++call->generated;
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
        if (!piece.empty()) {
            out.text += piece;
            if (options.on_text) options.on_text(piece);
        }
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
        out.text += rest;
        if (options.on_text && !rest.empty()) options.on_text(rest);
    }
    out.finish_reason = out.cancelled ? "cancelled" : res.finish_reason;
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

namespace {

// What chat cannot honour yet (see local_generator.h): an error saying so, or nothing.
engine::Status check_chat_options(const GenerateOptions& o) {
    const nlohmann::json& tc = o.tool_choice;
    if (!o.tools.is_null() && (tc.is_object() || (tc.is_string() && tc == "required")))
        return make_error(
            "the local backend cannot call tools yet: tool_choice " +
            (tc.is_object() ? std::string("naming a function") : std::string("\"required\"")) +
            " needs the engine's function calling (use the remote backend)");
    const nlohmann::json& rf = o.response_format;
    if (!rf.is_null() && !(rf.is_object() && rf.value("type", std::string()) == "text"))
        return make_error("the local backend cannot constrain answers to a response_format yet (" +
                          rf.dump() + "); use the remote backend");
    return engine::Status();
}

}  // namespace

Expected<GenerateResult> LocalGenerator::chat(const std::vector<ChatMessage>& messages,
                                              const GenerateOptions& options) {
    if (engine::Status st = check_chat_options(options); !st) return st.error();
    return generate(engine::chat_tokens(*tokenizer_, messages), engine::Priority::kChat, options);
}

void LocalGenerator::warm(const std::string& owner, const FimPrompt& stable) {
    if (!options_.prefix_cache) return;
    std::vector<int32_t> ids = fim_tokens(stable);
    if (ids.size() < 2 || ids.size() >= model_->hparams().n_ctx_train) return;
    std::lock_guard lock(mu_);
    // The owner's previous warm-up, if still queued or running, is stale now.
    if (auto it = warming_.find(owner); it != warming_.end()) scheduler_->cancel(it->second);
    auto h = scheduler_->warm(owner, std::move(ids));
    if (h)
        warming_[owner] = *h;
    else
        warming_.erase(owner);  // busy: the next completion prefills it anyway
}

void LocalGenerator::release(const std::string& owner) {
    {
        std::lock_guard lock(mu_);
        if (auto it = warming_.find(owner); it != warming_.end()) {
            scheduler_->cancel(it->second);
            warming_.erase(it);
        }
    }
    scheduler_->release(owner);
}

nlohmann::json LocalGenerator::stats() const {
    const auto s = scheduler_->stats();
    return {{"engine", engine_name_},
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
            {"drafted_tokens", s.drafted_tokens},
            {"accepted_tokens", s.accepted_tokens}};
}

}  // namespace latent::agent
