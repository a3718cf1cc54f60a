// Backend: the one interface every forward-pass implementation offers (the plain
// reference, the fast CPU backend in cpu/, CUDA in cuda/). A backend runs new tokens of
// one sequence — or of several at once (forward_batch) — through the model, appending
// their rows to each sequence's latent cache, and returns logits; where it can, it also
// runs the model's MTP block for draft tokens. It does not sample or manage prefixes:
// Session and the Scheduler do.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/expected.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/rope.h"

namespace latent::engine {

enum class LogitsMode { kLast, kAll };

// The device tier of cache pages: full pages of the host LatentCache kept in device
// memory, named by (cache, page, generation), least recently used evicted under a budget.
struct DevicePageStats {
    uint64_t pages = 0;      // held now
    uint64_t bytes = 0;      // their device memory
    uint64_t budget = 0;     // bytes they may take
    uint64_t hits = 0;       // page ranges copied into a sequence's rows on the device
    uint64_t uploads = 0;    // page ranges uploaded from host memory instead
    uint64_t stores = 0;     // pages copied into the tier
    uint64_t evictions = 0;  // pages dropped from it
};

// The model's RoPE (YaRN) parameters, as every backend applies them.
inline RopeParams rope_params(const HParams& hp) {
    return make_rope_params(static_cast<int32_t>(hp.n_rot), hp.rope_freq_base,
                            hp.rope_scaling_factor, hp.rope_yarn, hp.rope_orig_ctx,
                            hp.yarn_beta_fast, hp.yarn_beta_slow, hp.rope_attn_factor);
}

// The checks every backend makes on a batch before touching the cache: not empty, every
// id inside the vocabulary.
inline Status check_tokens(const HParams& hp, std::span<const int32_t> tokens) {
    if (tokens.empty()) return make_error("forward: no tokens");
    for (int32_t id : tokens)
        if (id < 0 || static_cast<uint32_t>(id) >= hp.n_vocab)
            return make_error("forward: token id " + std::to_string(id) +
                              " is outside the vocabulary");
    return Status::success();
}

// One sequence's part of a batched forward pass (Backend::forward_batch).
struct SeqBatch {
    SeqCache* seq = nullptr;
    std::span<const int32_t> tokens;  // at positions seq->n_tokens() ..
    LogitsMode mode = LogitsMode::kLast;
    std::vector<float>* logits = nullptr;  // resized; null: this sequence needs none
    // Resized to [tokens][n_embd]: every new row's output of the last trunk layer (before
    // output_norm), the input of the model's MTP block. Null: not wanted.
    std::vector<float>* hidden = nullptr;
};

// One sequence's part of a pass through the model's MTP (NextN) block
// (Backend::forward_mtp). Row i pairs the trunk's output at some position p (hidden) with
// the token at p + 1 (next); the block's logits for the last row predict the token at
// p + 2: a draft for speculative decoding. The block keeps its own latent cache `seq`
// (a one-layer LatentCache): positions count from its first row, which may be later than
// the sequence's first token (RoPE is relative, so attention sees the same distances).
struct MtpBatch {
    SeqCache* seq = nullptr;
    std::span<const float> hidden;         // [tokens][n_embd]
    std::span<const int32_t> next;         // [tokens]
    std::vector<float>* logits = nullptr;  // resized to the last row's [n_vocab]
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;

    // Runs `tokens` at positions seq.n_tokens() .. + tokens.size() - 1 and commits them
    // to `seq`. Writes n_vocab logits for the last token (kLast) or for every token in
    // order (kAll) into `logits` (resized). On error `seq` is unchanged.
    virtual Status forward(const Model& model, SeqCache& seq, std::span<const int32_t> tokens,
                           LogitsMode mode, std::vector<float>& logits) = 0;

    // Several sequences in one pass (a serving step: every running request's decode
    // token and a chunk of one prompt), so each weight is read once for all of them. The
    // result for each sequence is what forward() on it alone gives, up to float rounding.
    // On error a sequence either advanced completely or not at all (compare n_tokens());
    // the default runs forward() on each in turn and stops at the first error.
    virtual Status forward_batch(const Model& model, std::span<const SeqBatch> batch) {
        std::vector<float> unused;
        for (const SeqBatch& b : batch)
            if (Status s = forward(model, *b.seq, b.tokens, b.mode, b.logits ? *b.logits : unused);
                !s)
                return s;
        return Status::success();
    }

    // Makes what the backend keeps per model (the CPU backend's repacked weights) now, at
    // load, instead of in the first forward; optional (forward does it when needed).
    virtual void prepare(const Model& model) { (void)model; }

    // Whether forward_mtp() works and forward_batch() fills SeqBatch::hidden.
    virtual bool supports_mtp() const { return false; }
    // Runs the model's first MTP block (hparams().n_nextn > 0) over each entry; all or
    // nothing per entry as forward_batch.
    virtual Status forward_mtp(const Model& model, std::span<const MtpBatch> batch) {
        (void)model, (void)batch;
        return make_error("this backend has no MTP block support");
    }
};

}  // namespace latent::engine
