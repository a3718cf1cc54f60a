// Backend: the one interface every forward-pass implementation offers (the plain
// reference here; the fast CPU and CUDA backends later). A backend runs a batch of new
// tokens of one sequence through the model, appending their rows to the sequence's
// latent cache, and returns logits. It does not sample or manage prefixes: Session does.
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
};

}  // namespace latent::engine
