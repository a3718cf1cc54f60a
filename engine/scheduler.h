// Scheduler: the one loop that owns the model. Requests enter a bounded queue with a
// priority (inline completion > chat > warm-up); every step runs one decode token of each
// running sequence and one chunk of the most urgent pending prefill, so a long chat
// prompt delays a completion by at most one chunk. Prompts start from the prefix cache
// (RAM, then disk) and leave their pages in it when done; warm-ups prefill and pin a
// prefix for an owner (an open document). It does not tokenize or format prompts and
// does not speak HTTP: the server and the agent do.
//
// A step is one Backend::forward_batch call over all of its sequences, so a backend
// that batches (the CPU one) reads each weight once per step however many requests run.
//
// Thread safety: submit(), cancel(), warm(), release(), stats() may be called from any
// thread. Callbacks (on_token, on_done) run on the scheduler's thread: they must be
// quick and must not call back into the scheduler except cancel()/submit(). With
// Options::threaded = false no thread is started and the caller drives run_until_idle()
// (deterministic tests).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/backend.h"
#include "engine/disk_cache.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/prefix_cache.h"
#include "engine/sampler.h"
#include "engine/step_speed.h"
#include "engine/token_constraint.h"

namespace latent::engine {

// Lower runs first.
enum class Priority : int { kInline = 0, kChat = 1, kWarm = 2 };

struct RequestResult {
    // "stop" (end-of-generation token, or on_token asked to stop), "length" (max_tokens),
    // "cancelled", "deadline", "error".
    std::string finish_reason;
    std::string error;            // for "error"
    std::vector<int32_t> tokens;  // generated tokens, in order
    int32_t prompt_tokens = 0;
    int32_t cached_tokens = 0;     // prompt tokens whose rows came from the prefix cache
    int32_t computed_tokens = 0;   // prompt tokens run through the model
    int32_t from_disk_tokens = 0;  // of cached_tokens, loaded from the disk tier
    int32_t drafted_tokens = 0;    // speculative drafts proposed
    int32_t accepted_tokens = 0;   // of which accepted
    double first_token_ms = 0;     // from submit to the first sampled token
};

// A sampled token's log-probability under the row it was drawn from (after penalties and
// any constraint's mask, at temperature 1) and the `top` most likely alternatives.
struct TokenLogprobs {
    int32_t token = 0;
    float logprob = 0;
    std::vector<std::pair<int32_t, float>> top;  // (id, logprob), most likely first
};

struct Request {
    std::vector<int32_t> prompt;  // non-empty
    Priority priority = Priority::kChat;
    SamplingParams sampling;
    int32_t max_tokens = 256;  // 0: prefill only (warm-up)
    // Tokens that end generation (EOS, EOT); they are not passed to on_token.
    std::vector<int32_t> end_tokens;
    // When set, the prompt's cached pages are pinned for this owner once prefilled.
    std::string pin_owner;
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
    // Masks each step's logits before sampling (JSON output, tool calls); null: none.
    std::shared_ptr<TokenConstraint> constraint;
    // OpenAI's penalties over the tokens generated so far: a token's logit loses
    // frequency_penalty per earlier occurrence and presence_penalty once if it occurred.
    float frequency_penalty = 0, presence_penalty = 0;
    // >= 0: on_logprobs gets each sampled token's log-probability and this many of the
    // most likely alternatives (at most 20), before on_token sees the token.
    int32_t logprobs = -1;
    std::function<void(const TokenLogprobs&)> on_logprobs;
    // Each sampled token; return false to stop (a stop string matched, the client left).
    std::function<bool(int32_t token)> on_token;
    // Exactly once, at the end, whatever the outcome.
    std::function<void(const RequestResult&)> on_done;
    // When set: the prompt tokens whose rows are computed or cached so far, updated after
    // each chunk (the caller's estimate of what the prefix cache holds of a prompt).
    std::shared_ptr<std::atomic<int32_t>> progress;
};

class Scheduler {
public:
    using Handle = uint64_t;

    struct Options {
        uint32_t page_tokens = 64;  // tokens per cache page
        // Latent cache memory for running sequences and cached prefixes together;
        // 0: twice the prefix cache's budget.
        uint64_t cache_bytes = 0;
        // RAM for cached prefixes; 0: default_prefix_cache_budget() (a quarter of free RAM).
        uint64_t prefix_cache_bytes = 0;
        bool prefix_cache = true;  // false: every prompt is computed in full
        // Disk tier folder; empty: none. "default": default_kv_dir(model identity).
        std::string disk_dir;
        uint64_t disk_bytes = 8ull << 30;
        int32_t prefill_chunk = 256;  // prompt tokens per step for one prefill
        // Chunk for kWarm requests (0: prefill_chunk): smaller, so that a completion that
        // arrives while a document is being warmed waits less.
        int32_t warm_chunk = 0;
        // > 0: a warm-up chunk takes about this long at the measured prefill speed (at
        // least 16 tokens, at most warm_chunk): on a slow machine a completion then waits
        // for at most this much of a warm-up, not for a whole chunk.
        double warm_chunk_ms = 0;
        // The clock steps are timed with (tests inject one).
        std::function<std::chrono::steady_clock::time_point()> now;
        size_t max_queue = 64;    // requests waiting or running; more answer "busy"
        size_t max_running = 16;  // sequences holding cache at once
        // Speculative decoding for greedy requests: up to this many prompt-lookup draft
        // tokens verified per step (0: off).
        int32_t draft_tokens = 0;
        // Drafts from the model's MTP (NextN) block instead, one token per step, where the
        // model has one and the backend runs it (Backend::supports_mtp); else ignored.
        // The block sees the positions this request computed (not cached prefixes).
        bool mtp = false;
        // false: one backend call per sequence in a step (to measure what batching gives).
        bool batch = true;
        bool threaded = true;  // false: no thread; the caller calls run_until_idle()
    };

    struct Stats {
        uint64_t requests = 0, finished = 0, cancelled = 0, rejected_busy = 0, errors = 0;
        uint64_t prompt_tokens = 0, cached_tokens = 0, computed_tokens = 0;
        // Prompt rows the model actually ran (warm-ups and requests cancelled midway
        // included; computed_tokens counts what each finished request needed).
        uint64_t prefilled_tokens = 0;
        uint64_t generated_tokens = 0, drafted_tokens = 0, accepted_tokens = 0;
        uint64_t steps = 0;
        uint64_t batched_sequences = 0;    // sequences summed over steps (÷ steps: mean batch)
        uint64_t max_batch_sequences = 0;  // the most sequences one step ran
        double step_seconds = 0;           // total time inside steps
        // Measured on this machine (StepSpeed); 0 until a step has shown it.
        double prefill_ms_per_token = 0;
        double decode_ms_per_step = 0;
        uint64_t queue_depth = 0;  // waiting + running now
        uint64_t running = 0;
        uint64_t cache_pages_in_use = 0;
        uint64_t cache_pool_bytes = 0;  // latent cache memory allocated (in use or kept)
        uint64_t cache_waits = 0;       // steps a sequence waited for a cache page (all were held)
        PrefixCache::Stats prefix;
        DiskCache::Stats disk;   // zeros without a disk tier
        DevicePageStats device;  // the backend's device tier (CUDA); zeros without one
    };

    // Borrows model and backend for its lifetime. Error: the disk folder cannot be used.
    static Expected<std::unique_ptr<Scheduler>> create(const Model& model, Backend& backend,
                                                       const Options& options);
    // Cancels everything still queued or running (on_done with "cancelled") and stops.
    ~Scheduler();
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    // Queues a request. Errors: "busy" when max_queue requests are already in, or a bad
    // request (empty prompt, prompt + max_tokens past the model's context, bad sampling).
    Expected<Handle> submit(Request request);
    // Cancels at the next step (its pages go back); unknown or finished handles are ignored.
    void cancel(Handle handle);
    // Prefills `tokens` at `priority` (kWarm by default) and pins them for `owner`.
    Expected<Handle> warm(const std::string& owner, std::vector<int32_t> tokens,
                          Priority priority = Priority::kWarm);
    // Unpins owner's prefix (at the next step).
    void release(const std::string& owner);
    // Measures this machine's speeds before the first request (so that the first prompt
    // can already be sized by them): `tokens` as one prefill, then `decode_steps` single
    // tokens, on a scratch sequence; seeds stats' prefill_ms_per_token and
    // decode_ms_per_step and counts nothing else. Runs on the scheduler's thread ahead of
    // what is queued after it; returns when done. A failed pass leaves the speeds unknown.
    void calibrate(std::vector<int32_t> tokens, int decode_steps);

    // threaded = false: runs steps until nothing is queued or running.
    void run_until_idle();
    // threaded = false: one step; false when there was nothing to do.
    bool step();
    // Blocks until nothing is queued or running (threaded mode).
    void wait_idle();

    Stats stats() const;
    const Options& options() const { return opt_; }
    const Model& model() const { return model_; }

private:
    struct Seq;
    struct Work;
    Scheduler(const Model& model, Backend& backend, const Options& options);
    void loop();
    void finish(Seq& s, const std::string& reason, const std::string& error = {});
    bool emit(Seq& s, int32_t token);  // false: the sequence finished
    // Masks the row by the request's constraint (if any), samples, records the token.
    int32_t sample(Seq& s, float* logits);
    Work plan_decode(Seq& s);
    // boosted: run for a more urgent request that waits on its rows (the normal chunk size).
    Work plan_prefill(Seq& s, bool boosted = false);
    void run_batch(std::vector<Work>& work);
    // Feeds a step's backend pass (begun at t0) to speed_.
    void observe_step(const std::vector<Work>& work, std::chrono::steady_clock::time_point t0);
    static constexpr int32_t kMinWarmChunk = 16;
    void after_decode(Seq& s, Work& w);
    void after_prefill(Seq& s, Work& w);
    void run_mtp();
    bool mtp_on() const { return mtp_cache_ != nullptr; }

    const Model& model_;
    Backend& backend_;
    Options opt_;
    std::unique_ptr<LatentCache> cache_;
    std::unique_ptr<DiskCache> disk_;
    std::unique_ptr<PrefixCache> prefix_;
    std::unique_ptr<LatentCache> mtp_cache_;  // the MTP block's rows (one layer); null: off

    mutable std::mutex mu_;  // guards everything below it
    std::condition_variable wake_, idle_;
    std::deque<std::unique_ptr<Seq>> waiting_;
    std::vector<Handle> cancels_;
    std::vector<std::function<void()>> commands_;  // run on the loop's thread
    Handle next_handle_ = 1;
    size_t running_count_ = 0;
    bool busy_ = false;  // a step is in progress
    bool stop_ = false;
    Stats stats_;
    StepSpeed speed_;

    // Loop thread only.
    std::vector<std::unique_ptr<Seq>> running_;
    std::thread thread_;
};

// The log-probability of `token` in a row of logits (log-softmax, -inf entries excluded)
// and the `top` most likely tokens (ties to the lower id).
TokenLogprobs token_logprobs(const float* logits, int32_t n_vocab, int32_t token, int32_t top);

// Prompt-lookup drafting: the longest match of the sequence's last n-gram (n from
// max_ngram down to 1) earlier in the sequence, and up to `max_draft` tokens that
// followed it. Empty when nothing matches.
std::vector<int32_t> prompt_lookup_draft(std::span<const int32_t> tokens, int32_t max_draft,
                                         int32_t max_ngram = 3);

}  // namespace latent::engine
