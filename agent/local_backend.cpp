// LocalBackend (see local_backend.h).
#include "agent/local_backend.h"

#include <algorithm>
#include <future>

#include "engine/backends.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "engine/tokenizer.h"
#include "engine/vocab.h"

namespace latent::agent {

using engine::Expected;
using engine::make_error;

struct LocalBackend::OwnerSession {
    std::unique_ptr<engine::Session> session;
};

Expected<std::unique_ptr<LocalBackend>> LocalBackend::create(const LocalBackendOptions& options) {
    std::unique_ptr<LocalBackend> b(new LocalBackend());
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
    const auto& hp = b->model_->hparams();
    engine::LatentCache::Config cc;
    cc.n_layer = hp.n_layer;
    cc.kv_lora_rank = hp.kv_lora_rank;
    cc.n_rot = hp.n_rot;
    cc.max_bytes = std::max<uint64_t>(options.cache_bytes, 16u << 20);
    b->cache_ = std::make_unique<engine::LatentCache>(cc);
    b->family_ = b->tokenizer_->find_token("<｜User｜>") ? ChatFamily::kDeepSeekV3
                                                         : ChatFamily::kDeepSeekCoderV2;
    b->thread_ = std::thread([p = b.get()] { p->loop(); });
    return b;
}

LocalBackend::~LocalBackend() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    // Sessions release their cache pages before the cache goes.
    sessions_.clear();
}

std::string LocalBackend::describe() const {
    return "local " + engine_name_ + " " + options_.model_path;
}

void LocalBackend::submit(Priority p, std::function<void()> run) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        jobs_.push_back({p, next_seq_++, std::move(run)});
    }
    cv_.notify_one();
}

void LocalBackend::loop() {
    while (true) {
        Job job;
        {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
            if (stopping_) {
                // Jobs still queued run now so that their callers are answered (each
                // checks its cancellation first; nothing long is left to do).
                if (jobs_.empty()) return;
            }
            auto it = std::min_element(jobs_.begin(), jobs_.end(), [](const Job& a, const Job& b) {
                return std::tie(a.priority, a.seq) < std::tie(b.priority, b.seq);
            });
            job = std::move(*it);
            jobs_.erase(it);
        }
        job.run();
    }
}

LocalBackend::OwnerSession& LocalBackend::session_for(const std::string& owner) {
    lru_.remove(owner);
    lru_.push_front(owner);
    auto& s = sessions_[owner];
    if (!s) {
        s = std::make_unique<OwnerSession>();
        s->session = std::make_unique<engine::Session>(*model_, *engine_, *cache_);
    }
    while (lru_.size() > std::max<size_t>(1, options_.max_sessions)) {
        sessions_.erase(lru_.back());
        lru_.pop_back();
    }
    return *s;
}

std::vector<int32_t> LocalBackend::fim_tokens(const FimPrompt& p, bool with_suffix) const {
    const auto fim = *tokenizer_->fim();
    std::vector<int32_t> ids = {tokenizer_->bos(), fim.pre};
    // Context and prefix are one text: tokenizing them together keeps the tokens at their
    // seam the same whether or not the prefix grows.
    for (int32_t id : tokenizer_->encode(p.context + p.prefix, false, false)) ids.push_back(id);
    if (!with_suffix) return ids;
    ids.push_back(fim.suf);
    for (int32_t id : tokenizer_->encode(p.suffix, false, false)) ids.push_back(id);
    ids.push_back(fim.mid);
    return ids;
}

Expected<GenerateResult> LocalBackend::generate(const std::string& owner,
                                                const std::vector<int32_t>& prompt,
                                                const GenerateOptions& options) {
    GenerateResult r;
    const auto& hp = model_->hparams();
    const int32_t max_tokens = std::max(1, options.max_tokens);
    if (prompt.size() + static_cast<size_t>(max_tokens) > hp.n_ctx_train)
        return make_error("the prompt (" + std::to_string(prompt.size()) +
                          " tokens) does not fit the model's context of " +
                          std::to_string(hp.n_ctx_train));
    if (options.cancelled && options.cancelled()) {
        r.cancelled = true;
        return r;
    }
    auto& os = session_for(owner);
    if (!options_.prefix_cache) os.session->truncate(0);
    // The prompt goes in by pieces of kPrefillStep tokens, with a cancellation check
    // between them: a request superseded by the next keystroke stops within one piece
    // instead of finishing a long prefill nobody will read. Each piece keeps what the
    // session holds (prefill's common-prefix reuse), so the pieces cost what one call would.
    constexpr int32_t kPrefillStep = 256;
    const auto n = static_cast<int32_t>(prompt.size());
    const int32_t reused = std::min(engine::common_prefix(os.session->tokens(), prompt), n - 1);
    for (int32_t k = reused + kPrefillStep; k < n; k += kPrefillStep) {
        if (options.cancelled && options.cancelled()) {
            r.cancelled = true;
            return r;
        }
        auto part = os.session->prefill(std::span<const int32_t>(prompt.data(), k));
        if (!part) break;  // the full prefill below retries (and reports) it
    }
    auto pre = os.session->prefill(prompt);
    if (!pre) {
        // Most likely the cache budget: drop the other owners' sessions and try once more.
        for (auto it = sessions_.begin(); it != sessions_.end();) {
            if (it->first != owner) {
                lru_.remove(it->first);
                it = sessions_.erase(it);
            } else {
                ++it;
            }
        }
        os.session->truncate(0);
        pre = os.session->prefill(prompt);
        if (!pre) return pre.error();
        r.cached_tokens = 0;
        r.computed_tokens = n;
    } else {
        r.cached_tokens = std::max(0, reused);
        r.computed_tokens = n - r.cached_tokens;
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        prompt_tokens_ += prompt.size();
        reused_tokens_ += static_cast<uint64_t>(r.cached_tokens);
    }
    engine::SamplingParams sp;
    sp.temperature = options.temperature;
    engine::Sampler sampler(sp);
    auto stop_or = engine::StopMatcher::create(options.stop);
    if (!stop_or) return stop_or.error();
    engine::StopMatcher stop = std::move(*stop_or);
    std::vector<float> logits = std::move(pre->logits);
    const auto n_vocab = static_cast<int32_t>(hp.n_vocab);
    for (int32_t i = 0; i < max_tokens; ++i) {
        if (options.cancelled && options.cancelled()) {
            r.cancelled = true;
            break;
        }
        const int32_t id = sampler.sample(logits.data(), n_vocab);
        sampler.accept(id);
        if (tokenizer_->is_eog(id)) break;
        // A control token (FIM or chat markers) is never text for the user: it ends the
        // answer as EOS would.
        const auto& types = model_->vocab().types;
        if (id >= 0 && static_cast<size_t>(id) < types.size() &&
            types[static_cast<size_t>(id)] == engine::TokenType::kControl)
            break;
        ++r.generated_tokens;
        const auto step = stop.push(tokenizer_->token_to_piece(id));
        r.text += step.emit;
        if (options.on_text && !step.emit.empty()) options.on_text(step.emit);
        if (step.stopped || i + 1 == max_tokens) break;
        if (os.session->n_tokens() + 1 >= static_cast<int32_t>(hp.n_ctx_train)) break;
        auto next = os.session->decode(id);
        if (!next) return next.error();
        logits = std::move(*next);
    }
    if (!stop.stopped()) {
        const std::string rest = stop.flush();
        r.text += rest;
        if (options.on_text && !rest.empty()) options.on_text(rest);
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        cache_bytes_in_use_ = cache_->bytes_in_use();
        sessions_count_ = sessions_.size();
    }
    return r;
}

Expected<GenerateResult> LocalBackend::fim(const FimPrompt& prompt,
                                           const GenerateOptions& options) {
    std::promise<Expected<GenerateResult>> done;
    auto fut = done.get_future();
    submit(kCompletion, [&] {
        const std::string owner = options.owner.empty() ? "fim" : options.owner;
        done.set_value(generate(owner, fim_tokens(prompt, true), options));
    });
    return fut.get();
}

Expected<GenerateResult> LocalBackend::chat(const std::vector<ChatMessage>& messages,
                                            const GenerateOptions& options) {
    std::vector<int32_t> ids;
    for (const auto& piece : apply_chat_template(family_, messages)) {
        if (piece.special) {
            if (auto id = tokenizer_->find_token(piece.text)) {
                ids.push_back(*id);
                continue;
            }
        }
        for (int32_t id : tokenizer_->encode(piece.text, false, false)) ids.push_back(id);
    }
    std::promise<Expected<GenerateResult>> done;
    auto fut = done.get_future();
    submit(kChat, [&] {
        done.set_value(generate(options.owner.empty() ? "chat" : options.owner, ids, options));
    });
    return fut.get();
}

void LocalBackend::warm(const std::string& owner, const FimPrompt& stable) {
    auto ids = std::make_shared<std::vector<int32_t>>(fim_tokens(stable, false));
    submit(kWarm, [this, owner, ids] {
        {
            std::lock_guard<std::mutex> lock(mu_);
            // Stale by the time it runs when newer work for anyone is waiting: the user
            // moved on; a completion will prefill anyway.
            for (const auto& j : jobs_)
                if (j.priority != kWarm) return;
        }
        if (ids->size() >= model_->hparams().n_ctx_train) return;
        if (!options_.prefix_cache) return;
        auto& os = session_for(owner);
        // Already holding this prefix (a completion ran since): prefill would only drop
        // the cached completion tokens after it.
        const int32_t common = engine::common_prefix(os.session->tokens(), *ids);
        if (common + 2 >= static_cast<int32_t>(ids->size())) return;
        auto pre = os.session->prefill(*ids);
        std::lock_guard<std::mutex> lock(mu_);
        cache_bytes_in_use_ = cache_->bytes_in_use();
        sessions_count_ = sessions_.size();
        (void)pre;
    });
}

void LocalBackend::release(const std::string& owner) {
    submit(kWarm, [this, owner] {
        lru_.remove(owner);
        sessions_.erase(owner);
        std::lock_guard<std::mutex> lock(mu_);
        cache_bytes_in_use_ = cache_->bytes_in_use();
        sessions_count_ = sessions_.size();
    });
}

nlohmann::json LocalBackend::stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return {{"engine", engine_name_},
            {"model", options_.model_path},
            {"cache_ram_bytes", cache_bytes_in_use_},
            {"cache_disk_bytes", 0},
            {"sessions", sessions_count_},
            {"prompt_tokens", prompt_tokens_},
            {"cached_prompt_tokens", reused_tokens_},
            {"cache_hit_rate", prompt_tokens_ ? double(reused_tokens_) / prompt_tokens_ : 0.0}};
}

}  // namespace latent::agent
