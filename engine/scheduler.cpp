// Scheduler: priorities, chunked prefill, decode steps and prefix reuse (see scheduler.h).
#include "engine/scheduler.h"

#include <algorithm>
#include <cmath>
#include <future>
#include <new>
#include <unordered_map>

#include "engine/backends.h"

namespace latent::engine {

using Clock = std::chrono::steady_clock;

struct Scheduler::Seq {
    Handle handle = 0;
    uint64_t order = 0;  // submission order, for ties within a priority
    Request req;
    std::unique_ptr<SeqCache> cache;
    std::vector<int32_t> tokens;  // prompt + generated tokens whose rows are in `cache`
    std::unique_ptr<Sampler> sampler;
    bool attached = false;  // the prefix cache was consulted
    int32_t pending = -1;   // sampled, not yet run through the model
    RequestResult result;
    Clock::time_point submitted;
    bool done = false;
    // MTP drafting: the block's cache, the trunk outputs it has not seen yet (positions
    // mtp_pos..), and its guess for the token after `pending` (-1: none).
    std::unique_ptr<SeqCache> mtp_cache;
    std::vector<float> mtp_hidden;
    int32_t mtp_pos = -1;
    int32_t mtp_draft = -1;
    // Occurrences of each generated token (frequency and presence penalties).
    std::unordered_map<int32_t, int32_t> generated_counts;

    // The token at position p when it is known (prompt, computed, or sampled), else -1.
    int32_t token_at(size_t p) const {
        if (p < tokens.size()) return tokens[p];
        if (p < req.prompt.size()) return req.prompt[p];
        if (p == tokens.size() && pending >= 0 && !prefilling()) return pending;
        return -1;
    }

    bool prefilling() const { return cache->n_tokens() < static_cast<int32_t>(req.prompt.size()); }
};

std::vector<int32_t> prompt_lookup_draft(std::span<const int32_t> tokens, int32_t max_draft,
                                         int32_t max_ngram) {
    const int64_t n = static_cast<int64_t>(tokens.size());
    for (int64_t g = std::min<int64_t>(max_ngram, n - 1); g >= 1; --g) {
        const auto tail = tokens.subspan(static_cast<size_t>(n - g));
        // The most recent earlier occurrence predicts best what comes next.
        for (int64_t at = n - g - 1; at >= 0; --at) {
            if (!std::equal(tail.begin(), tail.end(), tokens.begin() + at)) continue;
            const int64_t from = at + g;
            const int64_t len = std::min<int64_t>(max_draft, n - from);
            if (len <= 0) continue;
            return {tokens.begin() + from, tokens.begin() + from + len};
        }
    }
    return {};
}

Scheduler::Scheduler(const Model& model, Backend& backend, const Options& options)
    : model_(model), backend_(backend), opt_(options) {}

Expected<std::unique_ptr<Scheduler>> Scheduler::create(const Model& model, Backend& backend,
                                                       const Options& options) {
    std::unique_ptr<Scheduler> s(new Scheduler(model, backend, options));
    Options& o = s->opt_;
    if (o.prefill_chunk <= 0) o.prefill_chunk = 256;
    if (o.page_tokens == 0) o.page_tokens = 64;
    if (!o.now) o.now = [] { return Clock::now(); };
    if (o.prefix_cache_bytes == 0) o.prefix_cache_bytes = default_prefix_cache_budget();
    if (o.cache_bytes == 0) o.cache_bytes = 2 * o.prefix_cache_bytes;
    const HParams& hp = model.hparams();
    LatentCache::Config cc{hp.n_layer, hp.kv_lora_rank, hp.n_rot, o.page_tokens, o.cache_bytes};
    s->cache_ = std::make_unique<LatentCache>(cc);
    if (o.prefix_cache && !o.disk_dir.empty()) {
        std::string dir = o.disk_dir;
        if (dir == "default") {
            auto id = model_identity(model.path(), model.file().data_offset());
            if (!id) return id.error();
            dir = default_kv_dir(*id);
        }
        DiskCache::Options d;
        d.dir = dir;
        d.budget_bytes = o.disk_bytes;
        d.n_layer = hp.n_layer, d.page_tokens = o.page_tokens;
        d.row_width = hp.kv_lora_rank + hp.n_rot;
        auto disk = DiskCache::open(d);
        if (!disk) return disk.error();
        s->disk_ = std::move(*disk);
    }
    s->prefix_ = std::make_unique<PrefixCache>(
        *s->cache_, PrefixCache::Options{o.prefix_cache_bytes, s->disk_.get()});
    if (o.mtp && hp.n_nextn > 0 && backend.supports_mtp()) {
        // One layer beside the trunk's n_layer: a matching share of the cache memory.
        LatentCache::Config mc{1, hp.kv_lora_rank, hp.n_rot, o.page_tokens,
                               std::max<uint64_t>(o.cache_bytes / hp.n_layer, 1 << 20)};
        s->mtp_cache_ = std::make_unique<LatentCache>(mc);
    }
    if (o.threaded) s->thread_ = std::thread([p = s.get()] { p->loop(); });
    return s;
}

Scheduler::~Scheduler() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    // Whatever is left is cancelled, on this thread.
    for (auto& s : running_) finish(*s, "cancelled");
    running_.clear();
    std::deque<std::unique_ptr<Seq>> waiting;
    {
        std::lock_guard lock(mu_);
        waiting.swap(waiting_);
    }
    for (auto& s : waiting) finish(*s, "cancelled");
    waiting.clear();
    prefix_.reset();  // before the caches it uses
}

Expected<Scheduler::Handle> Scheduler::submit(Request request) {
    if (request.prompt.empty()) return make_error("empty prompt");
    if (request.max_tokens < 0) return make_error("max_tokens must be >= 0");
    const uint64_t ctx = model_.hparams().n_ctx_train;
    if (request.prompt.size() + static_cast<uint64_t>(request.max_tokens) > ctx)
        return make_error("prompt (" + std::to_string(request.prompt.size()) +
                          " tokens) + max_tokens exceeds the model's context of " +
                          std::to_string(ctx));
    const int32_t n_vocab = static_cast<int32_t>(model_.hparams().n_vocab);
    for (int32_t id : request.prompt)
        if (id < 0 || id >= n_vocab) return make_error("token id out of range");
    auto sampler = Sampler::create(request.sampling);
    if (!sampler) return sampler.error();
    if (!(std::fabs(request.frequency_penalty) <= 2) || !(std::fabs(request.presence_penalty) <= 2))
        return make_error("frequency_penalty and presence_penalty must be in [-2, 2]");
    if (request.logprobs > 20) return make_error("logprobs must be at most 20");

    auto s = std::make_unique<Seq>();
    s->sampler = std::make_unique<Sampler>(std::move(*sampler));
    for (int32_t id : request.prompt) s->sampler->accept(id);
    s->req = std::move(request);
    s->submitted = opt_.now();
    s->result.prompt_tokens = static_cast<int32_t>(s->req.prompt.size());
    Handle h;
    {
        std::lock_guard lock(mu_);
        if (waiting_.size() + running_count_ >= opt_.max_queue) {
            ++stats_.rejected_busy;
            return make_error("busy");
        }
        h = s->handle = next_handle_++;
        s->order = h;
        ++stats_.requests;
        waiting_.push_back(std::move(s));
    }
    wake_.notify_all();
    return h;
}

void Scheduler::cancel(Handle handle) {
    {
        std::lock_guard lock(mu_);
        cancels_.push_back(handle);
    }
    wake_.notify_all();
}

Expected<Scheduler::Handle> Scheduler::warm(const std::string& owner, std::vector<int32_t> tokens,
                                            Priority priority) {
    Request r;
    r.prompt = std::move(tokens);
    r.priority = priority;
    r.max_tokens = 0;
    r.pin_owner = owner;
    return submit(std::move(r));
}

void Scheduler::release(const std::string& owner) {
    {
        std::lock_guard lock(mu_);
        commands_.push_back([this, owner] { prefix_->release(owner); });
    }
    wake_.notify_all();
}

void Scheduler::calibrate(std::vector<int32_t> tokens, int decode_steps) {
    if (tokens.empty()) return;
    auto run = [this, tokens = std::move(tokens), decode_steps]() mutable {
        try {
            SeqCache seq(*cache_);
            std::vector<float> logits;
            auto pass = [&](std::span<const int32_t> rows, int64_t prefill, int64_t decode) {
                const auto t0 = opt_.now();
                SeqBatch b{&seq, rows, LogitsMode::kLast, &logits, nullptr};
                if (!backend_.forward_batch(model_, std::span(&b, 1))) return false;
                const double ms =
                    std::chrono::duration<double, std::milli>(opt_.now() - t0).count();
                std::lock_guard lock(mu_);
                speed_.observe(prefill, decode, ms);
                return true;
            };
            if (!pass(tokens, static_cast<int64_t>(tokens.size()), 0)) return;
            for (int i = 0; i < decode_steps; ++i)
                if (!pass(std::span<const int32_t>(tokens).first(1), 0, 1)) return;
        } catch (const std::exception&) {
            // The speeds stay unknown; the requests will show them.
        }
    };
    if (!opt_.threaded) {
        run();
        return;
    }
    std::promise<void> done;
    auto finished = done.get_future();
    {
        std::lock_guard lock(mu_);
        commands_.push_back([&run, &done] {
            run();
            done.set_value();
        });
    }
    wake_.notify_all();
    finished.wait();
}

void Scheduler::finish(Seq& s, const std::string& reason, const std::string& error) {
    if (s.done) return;
    s.done = true;
    s.result.finish_reason = reason;
    s.result.error = error;
    if (s.cache) {
        // Leave the rows computed so far (prompt and output) to the next request.
        if (opt_.prefix_cache && reason != "error") {
            prefix_->insert(s.tokens, *s.cache);
            if (s.req.progress) s.req.progress->store(static_cast<int32_t>(s.tokens.size()));
        }
        s.cache.reset();
    }
    s.mtp_cache.reset();
    {
        std::lock_guard lock(mu_);
        ++stats_.finished;
        if (reason == "cancelled") ++stats_.cancelled;
        if (reason == "error") ++stats_.errors;
        stats_.prompt_tokens += static_cast<uint64_t>(s.result.prompt_tokens);
        stats_.cached_tokens += static_cast<uint64_t>(s.result.cached_tokens);
        stats_.computed_tokens += static_cast<uint64_t>(s.result.computed_tokens);
        stats_.generated_tokens += s.result.tokens.size();
        stats_.drafted_tokens += static_cast<uint64_t>(s.result.drafted_tokens);
        stats_.accepted_tokens += static_cast<uint64_t>(s.result.accepted_tokens);
    }
    if (s.req.on_done) s.req.on_done(s.result);
}

int32_t Scheduler::sample(Seq& s, float* logits) {
    const int32_t n_vocab = static_cast<int32_t>(model_.hparams().n_vocab);
    if (s.req.frequency_penalty != 0 || s.req.presence_penalty != 0)
        for (const auto& [id, count] : s.generated_counts)
            logits[id] -= s.req.frequency_penalty * static_cast<float>(count) +
                          (count > 0 ? s.req.presence_penalty : 0.0f);
    if (s.req.constraint) {
        const int32_t remaining =
            std::max<int32_t>(1, s.req.max_tokens - static_cast<int32_t>(s.result.tokens.size()));
        s.req.constraint->mask(logits, n_vocab, remaining);
    }
    const int32_t id = s.sampler->sample(logits, n_vocab);
    s.sampler->accept(id);
    if (s.req.constraint) s.req.constraint->accept(id);
    if (s.req.frequency_penalty != 0 || s.req.presence_penalty != 0) ++s.generated_counts[id];
    if (s.req.logprobs >= 0 && s.req.on_logprobs)
        s.req.on_logprobs(token_logprobs(logits, n_vocab, id, std::min(s.req.logprobs, 20)));
    return id;
}

TokenLogprobs token_logprobs(const float* logits, int32_t n_vocab, int32_t token, int32_t top) {
    // log p = logit - log(sum exp(logit)), in double; -inf rows (masked) count as 0.
    float max = -INFINITY;
    for (int32_t i = 0; i < n_vocab; ++i)
        if (std::isfinite(logits[i])) max = std::max(max, logits[i]);
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; ++i)
        if (std::isfinite(logits[i])) sum += std::exp(static_cast<double>(logits[i]) - max);
    const double log_z = max + std::log(sum);
    auto lp = [&](int32_t i) {
        return std::isfinite(logits[i]) ? static_cast<float>(logits[i] - log_z) : -INFINITY;
    };
    TokenLogprobs out;
    out.token = token;
    out.logprob = lp(token);
    if (top > 0) {
        std::vector<int32_t> ids;
        for (int32_t i = 0; i < n_vocab; ++i)
            if (std::isfinite(logits[i])) ids.push_back(i);
        const size_t k = std::min<size_t>(static_cast<size_t>(top), ids.size());
        std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(),
                          [&](int32_t a, int32_t b) {
                              return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
                          });
        for (size_t i = 0; i < k; ++i) out.top.emplace_back(ids[i], lp(ids[i]));
    }
    return out;
}

bool Scheduler::emit(Seq& s, int32_t token) {
    if (s.result.tokens.empty())
        s.result.first_token_ms =
            std::chrono::duration<double, std::milli>(opt_.now() - s.submitted).count();
    const auto& end = s.req.end_tokens;
    if (std::find(end.begin(), end.end(), token) != end.end()) {
        finish(s, "stop");
        return false;
    }
    s.result.tokens.push_back(token);
    if (s.req.on_token && !s.req.on_token(token)) {
        finish(s, "stop");
        return false;
    }
    if (static_cast<int32_t>(s.result.tokens.size()) >= s.req.max_tokens) {
        finish(s, "length");
        return false;
    }
    s.pending = token;
    return true;
}

// A sequence's part of this step: what it feeds the model and where its logits land.
struct Scheduler::Work {
    Seq* seq = nullptr;
    bool prefill = false;
    std::vector<int32_t> tokens;  // a prompt chunk, or the pending token + draft tokens
    std::vector<float> logits;
    std::vector<float> hidden;  // MTP on: the trunk's output rows, for the block
    bool waits = false;         // no cache page for it this step: planned again next step
};

Scheduler::Work Scheduler::plan_prefill(Seq& s, bool boosted) {
    const auto& prompt = s.req.prompt;
    const int32_t n = static_cast<int32_t>(prompt.size());
    if (!s.attached) {
        s.attached = true;
        if (opt_.prefix_cache) {
            // At least the last prompt token is computed: its logits are not cached.
            const auto m = prefix_->attach(prompt, *s.cache, n - 1);
            s.result.cached_tokens = m.n_tokens;
            s.result.from_disk_tokens = m.from_disk;
            s.tokens.assign(prompt.begin(), prompt.begin() + m.n_tokens);
        }
        s.result.computed_tokens = n - s.result.cached_tokens;
        if (mtp_on() && s.req.max_tokens > 1) {  // warm-ups and one-token requests never draft
            s.mtp_cache = std::make_unique<SeqCache>(*mtp_cache_);
            s.mtp_pos = s.cache->n_tokens();  // the block starts where computing starts
        }
    }
    const int32_t at = s.cache->n_tokens();
    int32_t chunk = opt_.prefill_chunk;
    if (!boosted && s.req.priority == Priority::kWarm) {
        if (opt_.warm_chunk > 0) chunk = opt_.warm_chunk;
        double per_token;
        {
            std::lock_guard lock(mu_);
            per_token = speed_.prefill_ms_per_token();
        }
        if (opt_.warm_chunk_ms > 0 && per_token > 0)
            chunk = std::clamp(static_cast<int32_t>(opt_.warm_chunk_ms / per_token),
                               std::min<int32_t>(kMinWarmChunk, chunk), chunk);
    }
    const int32_t len = std::min(chunk, n - at);
    Work w;
    w.seq = &s;
    w.prefill = true;
    w.tokens.assign(prompt.begin() + at, prompt.begin() + at + len);
    return w;
}

Scheduler::Work Scheduler::plan_decode(Seq& s) {
    Work w;
    w.seq = &s;
    w.tokens = {s.pending};
    const int32_t room = s.req.max_tokens - static_cast<int32_t>(s.result.tokens.size());
    if (s.mtp_cache) {
        if (s.mtp_draft >= 0 && room > 1 && !s.req.constraint) w.tokens.push_back(s.mtp_draft);
    } else if (opt_.draft_tokens > 0 && !s.req.constraint) {
        std::vector<int32_t> ctx = s.tokens;
        ctx.push_back(s.pending);
        auto draft = prompt_lookup_draft(ctx, std::min(opt_.draft_tokens, room - 1));
        w.tokens.insert(w.tokens.end(), draft.begin(), draft.end());
    }
    return w;
}

void Scheduler::after_prefill(Seq& s, Work& w) {
    const auto& prompt = s.req.prompt;
    s.tokens.insert(s.tokens.end(), w.tokens.begin(), w.tokens.end());
    if (s.mtp_cache) s.mtp_hidden.insert(s.mtp_hidden.end(), w.hidden.begin(), w.hidden.end());
    if (s.prefilling()) {
        // The prompt's whole pages so far go to the prefix cache at once, so that a request
        // arriving meanwhile with the same start (a completion while its file is being
        // warmed) finds them instead of computing them again.
        if (opt_.prefix_cache) {
            const size_t whole = s.tokens.size() / opt_.page_tokens * opt_.page_tokens;
            if (whole > 0) {
                prefix_->insert(std::span<const int32_t>(s.tokens).first(whole), *s.cache);
                if (s.req.progress) s.req.progress->store(static_cast<int32_t>(whole));
            }
        }
        return;
    }
    if (opt_.prefix_cache) {
        // Share the prompt's whole pages at once (concurrent requests with the same
        // prefix); the partial last page follows at the end, when no more writes go in.
        const size_t whole = prompt.size() / opt_.page_tokens * opt_.page_tokens;
        prefix_->insert(std::span<const int32_t>(prompt).first(whole), *s.cache);
        if (s.req.progress) s.req.progress->store(static_cast<int32_t>(whole));
        if (!s.req.pin_owner.empty()) {
            prefix_->insert(prompt, *s.cache);
            prefix_->pin(s.req.pin_owner, prompt);
            if (s.req.progress) s.req.progress->store(static_cast<int32_t>(prompt.size()));
        }
    }
    if (s.req.max_tokens == 0) {
        finish(s, "length");
        return;
    }
    const int32_t id = sample(s, w.logits.data());
    emit(s, id);
}

void Scheduler::after_decode(Seq& s, Work& w) {
    const auto& batch = w.tokens;
    const size_t n_vocab = model_.hparams().n_vocab;
    s.result.drafted_tokens += static_cast<int32_t>(batch.size() - 1);
    // Row i of logits follows batch[i]; draft token batch[i + 1] is kept only if it is
    // what sampling row i gives, so the output is what decoding one by one gives.
    const size_t E = model_.hparams().n_embd;
    for (size_t i = 0; i < batch.size(); ++i) {
        s.tokens.push_back(batch[i]);
        if (s.mtp_cache)  // the row of a committed token: the block's input
            s.mtp_hidden.insert(s.mtp_hidden.end(), w.hidden.begin() + i * E,
                                w.hidden.begin() + (i + 1) * E);
        const int32_t id = sample(s, w.logits.data() + i * n_vocab);
        const bool accepted = i + 1 < batch.size() && batch[i + 1] == id;
        if (!emit(s, id)) return;  // finish() has recorded the rows in s.tokens
        if (!accepted) break;
        ++s.result.accepted_tokens;
    }
    // Drop the rows of rejected drafts.
    if (s.cache->n_tokens() > static_cast<int32_t>(s.tokens.size()))
        s.cache->truncate(static_cast<int32_t>(s.tokens.size()));
}

void Scheduler::observe_step(const std::vector<Work>& work, Clock::time_point t0) {
    int64_t prefill = 0, decode = 0;
    for (const Work& w : work) {
        if (w.prefill)
            prefill += static_cast<int64_t>(w.tokens.size());
        else
            ++decode;  // with its draft rows: the weights are read once all the same
    }
    const double ms = std::chrono::duration<double, std::milli>(opt_.now() - t0).count();
    std::lock_guard lock(mu_);
    speed_.observe(prefill, decode, ms);
}

void Scheduler::run_batch(std::vector<Work>& work) {
    if (work.empty()) return;
    std::vector<SeqBatch> batch;
    std::vector<int32_t> before;
    for (Work& w : work) {
        const LogitsMode mode =
            w.tokens.size() > 1 && !w.prefill ? LogitsMode::kAll : LogitsMode::kLast;
        batch.push_back({w.seq->cache.get(), w.tokens, mode, &w.logits,
                         w.seq->mtp_cache ? &w.hidden : nullptr});
        before.push_back(w.seq->cache->n_tokens());
    }
    const bool together = opt_.batch && work.size() > 1;
    Status st = Status::success();
    if (together) st = backend_.forward_batch(model_, batch);
    if (!together || !st) {
        // One sequence per call: without batching, or after a failed batch (which sequence
        // failed is not said — the cache may be full for one of them), so that an error
        // ends only its own request.
        std::vector<std::pair<size_t, std::string>> failed;
        bool moved = false;  // some sequence advanced this step
        for (size_t i = 0; i < work.size(); ++i) {
            Work& w = work[i];
            if (together && w.seq->cache->n_tokens() != before[i]) {  // advanced
                moved = true;
                continue;
            }
            if (Status one = backend_.forward_batch(model_, std::span(&batch[i], 1)); !one)
                failed.emplace_back(i, one.error().message);
            else
                moved = true;
        }
        // Out of cache pages (all held by running sequences): a sequence waits for the
        // pages the others give back as they end, as long as one of them moves; when none
        // does, the last one fails, which frees its pages for the rest.
        for (size_t k = 0; k < failed.size(); ++k) {
            Work& w = work[failed[k].first];
            if (cache_->full() && (moved || k + 1 < failed.size())) {
                w.waits = true;
                ++stats_.cache_waits;
            } else {
                finish(*w.seq, "error", failed[k].second);
            }
        }
    }
    for (Work& w : work) {
        if (w.seq->done || w.waits) continue;
        if (w.prefill) {
            {
                std::lock_guard lock(mu_);
                stats_.prefilled_tokens += w.tokens.size();
            }
            after_prefill(*w.seq, w);
        } else {
            after_decode(*w.seq, w);
        }
    }
}

void Scheduler::run_mtp() {
    // Every sequence's trunk rows whose next token is known go through the MTP block; the
    // last row's guess, where it follows the newest token, is the next step's draft.
    const size_t E = model_.hparams().n_embd;
    struct Item {
        Seq* seq;
        size_t rows;
        std::vector<int32_t> next;
        std::vector<float> logits;
    };
    std::vector<Item> items;
    for (auto& sp : running_) {
        Seq& s = *sp;
        if (s.done || !s.mtp_cache) continue;
        s.mtp_draft = -1;
        Item it{&s, 0, {}, {}};
        const size_t avail = s.mtp_hidden.size() / E;
        while (it.rows < avail) {
            const int32_t next = s.token_at(static_cast<size_t>(s.mtp_pos) + it.rows + 1);
            if (next < 0) break;
            it.next.push_back(next);
            ++it.rows;
        }
        if (it.rows > 0) items.push_back(std::move(it));
    }
    if (items.empty()) return;
    std::vector<MtpBatch> batch;
    for (Item& it : items)
        batch.push_back({it.seq->mtp_cache.get(),
                         std::span<const float>(it.seq->mtp_hidden).first(it.rows * E), it.next,
                         &it.logits});
    if (Status st = backend_.forward_mtp(model_, batch); !st) {
        // Drafts are only a guess: without them every request still runs, one token a step.
        for (Item& it : items) {
            it.seq->mtp_cache.reset();
            it.seq->mtp_hidden.clear();
        }
        return;
    }
    for (Item& it : items) {
        Seq& s = *it.seq;
        s.mtp_hidden.erase(s.mtp_hidden.begin(),
                           s.mtp_hidden.begin() + static_cast<std::ptrdiff_t>(it.rows * E));
        s.mtp_pos += static_cast<int32_t>(it.rows);
        // The last row was position mtp_pos - 1 with next token at mtp_pos: its logits
        // guess the token at mtp_pos + 1, a draft when mtp_pos is where `pending` sits.
        if (!s.prefilling() && s.pending >= 0 && s.mtp_pos == static_cast<int32_t>(s.tokens.size()))
            s.mtp_draft = static_cast<int32_t>(
                std::max_element(it.logits.begin(), it.logits.end()) - it.logits.begin());
    }
}

bool Scheduler::step() {
    std::vector<Handle> cancels;
    std::vector<std::function<void()>> commands;
    {
        std::lock_guard lock(mu_);
        cancels.swap(cancels_);
        commands.swap(commands_);
        // Admit waiting requests, most urgent first.
        std::stable_sort(waiting_.begin(), waiting_.end(), [](const auto& a, const auto& b) {
            return std::pair(a->req.priority, a->order) < std::pair(b->req.priority, b->order);
        });
        while (!waiting_.empty() && running_.size() < opt_.max_running) {
            running_.push_back(std::move(waiting_.front()));
            waiting_.pop_front();
        }
        running_count_ = running_.size();
        if (running_.empty() && cancels.empty() && commands.empty()) return false;
        busy_ = true;
    }
    const auto t0 = opt_.now();
    for (auto& c : commands) c();
    for (auto& s : running_) {
        if (!s->cache) s->cache = std::make_unique<SeqCache>(*cache_);
        if (std::find(cancels.begin(), cancels.end(), s->handle) != cancels.end())
            finish(*s, "cancelled");
        else if (Clock::now() > s->req.deadline)
            finish(*s, "deadline");
    }
    // One backend pass: a token (or a draft to verify) for every sequence past its
    // prompt, and a chunk of the most urgent sequence still in its prompt.
    std::vector<Work> work;
    for (auto& s : running_)
        if (!s->done && !s->prefilling() && s->pending >= 0) work.push_back(plan_decode(*s));
    Seq* next = nullptr;
    for (auto& s : running_) {
        if (s->done || !s->prefilling()) continue;
        if (!next ||
            std::pair(s->req.priority, s->order) < std::pair(next->req.priority, next->order))
            next = s.get();
    }
    bool boosted = false;
    if (next && !next->attached && opt_.prefix_cache) {
        // A prompt that starts like one still being prefilled waits for it: that one's
        // chunks run first, at this one's urgency, and this one then finds their pages
        // (entered after each chunk) instead of computing the same rows a second time.
        for (auto& o : running_) {
            if (o.get() == next || o->done || !o->attached || !o->prefilling()) continue;
            const auto& a = next->req.prompt;
            const auto& b = o->req.prompt;
            const size_t shared = static_cast<size_t>(
                std::mismatch(a.begin(), a.begin() + std::min(a.size(), b.size()), b.begin())
                    .first -
                a.begin());
            if (shared >= static_cast<size_t>(o->cache->n_tokens()) + opt_.page_tokens) {
                next = o.get();
                boosted = true;
                break;
            }
        }
    }
    // Warm-ups use idle time only: beside a request's decode step a warm-up chunk would
    // make each of its tokens wait for that chunk (on a large model on a CPU, a 16-token
    // chunk costs what 7 decode steps do).
    if (next && !boosted && next->req.priority == Priority::kWarm)
        for (const Work& w : work)
            if (w.seq->req.priority != Priority::kWarm) {
                next = nullptr;
                break;
            }
    if (next) work.push_back(plan_prefill(*next, boosted));
    try {
        const auto pass = opt_.now();
        run_batch(work);
        if (!work.empty()) observe_step(work, pass);
        if (mtp_on()) run_mtp();
    } catch (const std::bad_alloc&) {
        // A backend that throws (bad_alloc for a huge batch, a driver error) fails the
        // sequences of this step, not the process: the loop goes on with the next.
        for (auto& s : running_) finish(*s, "error", "out of memory in the engine");
    } catch (const std::exception& e) {
        for (auto& s : running_) finish(*s, "error", std::string("the engine failed: ") + e.what());
    }
    std::erase_if(running_, [](const auto& s) { return s->done; });
    {
        std::lock_guard lock(mu_);
        // Cancels of requests still waiting take effect now too.
        for (Handle h : cancels) {
            for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
                if ((*it)->handle != h) continue;
                std::unique_ptr<Seq> s = std::move(*it);
                waiting_.erase(it);
                mu_.unlock();
                finish(*s, "cancelled");
                mu_.lock();
                break;
            }
        }
        running_count_ = running_.size();
        stats_.cache_pages_in_use = cache_->pages_in_use();
        stats_.cache_pool_bytes = cache_->pool_bytes();
        stats_.prefix = prefix_->stats();
        if (disk_) stats_.disk = disk_->stats();
        stats_.device = device_page_stats(backend_);  // on this thread, which runs the passes
        ++stats_.steps;
        stats_.batched_sequences += work.size();
        stats_.max_batch_sequences = std::max<uint64_t>(stats_.max_batch_sequences, work.size());
        stats_.step_seconds += std::chrono::duration<double>(opt_.now() - t0).count();
        busy_ = false;
    }
    idle_.notify_all();
    return true;
}

void Scheduler::loop() {
    for (;;) {
        {
            std::unique_lock lock(mu_);
            wake_.wait(lock, [&] {
                return stop_ || !waiting_.empty() || !running_.empty() || !cancels_.empty() ||
                       !commands_.empty();
            });
            if (stop_) return;
        }
        step();
        {
            std::lock_guard lock(mu_);
            if (waiting_.empty() && running_.empty()) idle_.notify_all();
        }
    }
}

void Scheduler::run_until_idle() {
    while (step()) {
    }
}

void Scheduler::wait_idle() {
    std::unique_lock lock(mu_);
    idle_.wait(lock, [&] {
        return !busy_ && waiting_.empty() && running_count_ == 0 && cancels_.empty() &&
               commands_.empty();
    });
}

Scheduler::Stats Scheduler::stats() const {
    std::lock_guard lock(mu_);
    Stats s = stats_;
    s.queue_depth = waiting_.size() + running_count_;
    s.running = running_count_;
    s.prefill_ms_per_token = speed_.prefill_ms_per_token();
    s.decode_ms_per_step = speed_.decode_ms_per_step();
    return s;
}

}  // namespace latent::engine
