// Session: one conversation with the model — the tokens it holds, their latent cache,
// and prefill/decode that reuse the longest common prefix with what it already holds
// (so a prompt that grew by a few tokens costs only those tokens). It is the API the
// agent and the serving layer build on; it does not tokenize or sample.
//
// Thread safety: none; one thread uses a session at a time. Sessions sharing one
// LatentCache must be used from one thread (the scheduler's) at a time.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/backend.h"
#include "engine/kv_cache.h"
#include "engine/model.h"

namespace latent::engine {

class PrefixCache;

class Session {
public:
    Session(const Model& model, Backend& backend, LatentCache& cache);

    struct PrefillResult {
        std::vector<float> logits;  // n_vocab logits after the last prompt token
        int32_t n_reused = 0;       // prompt tokens whose cache rows were reused
        int32_t n_computed = 0;     // prompt tokens run through the model
    };
    // Makes the session hold exactly `prompt`: keeps the longest common prefix with
    // what it holds (at least one token is always recomputed, for its logits), drops
    // the rest, and runs the remainder. `chunk` > 0 splits the work in pieces of that
    // many tokens (bounds scratch memory for long prompts).
    Expected<PrefillResult> prefill(std::span<const int32_t> prompt, int32_t chunk = 512);

    // Appends one token and returns the logits after it.
    Expected<std::vector<float>> decode(int32_t token);

    // Appends tokens, returning logits of every one of them (n x n_vocab).
    Expected<std::vector<float>> append_all(std::span<const int32_t> tokens);

    const std::vector<int32_t>& tokens() const { return tokens_; }
    int32_t n_tokens() const { return static_cast<int32_t>(tokens_.size()); }
    void truncate(int32_t n);
    const Model& model() const { return model_; }
    const SeqCache& cache() const { return seq_; }

    // Optional: share prompt pages with other sessions through `prefix` (borrowed, must
    // use this session's LatentCache and outlive it; null: off). prefill() then starts
    // from whichever is longer, its own tokens or the prefix cache's (RAM tier), and
    // leaves the prompt's whole pages in the prefix cache.
    void set_prefix_cache(PrefixCache* prefix) { prefix_ = prefix; }

private:
    const Model& model_;
    Backend& backend_;
    SeqCache seq_;
    std::vector<int32_t> tokens_;
    PrefixCache* prefix_ = nullptr;
};

// Length of the common prefix of two token sequences.
int32_t common_prefix(std::span<const int32_t> a, std::span<const int32_t> b);

}  // namespace latent::engine
