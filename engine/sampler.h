// Sampler: turns one row of logits into the next token id (repetition penalty, greedy or
// top-k / temperature / top-p / min-p, then a draw from a seeded, platform-independent
// PRNG), and StopMatcher: cuts streamed text at a stop string. Neither runs the model,
// detokenizes, or counts tokens: the generation loop owns those and calls in here.
//
// Thread safety: a Sampler or StopMatcher is used by one generation at a time; distinct
// instances share nothing and may run on different threads.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "engine/expected.h"
#include "engine/rng.h"

namespace latent::engine {

// ---------------------------------------------------------------------------------------
// Sampling parameters
// ---------------------------------------------------------------------------------------

// Defaults follow llama.cpp's CLI so a run without flags behaves like theirs; the stage
// order is not quite theirs (see Sampler). Every stage has an "off" value.
struct SamplingParams {
    // Divides the logits before the softmax. 0 means greedy: argmax, no PRNG draw. >= 0.
    float temperature = 0.8f;
    // Keep only the k highest logits. 0 = off. Must be >= 0.
    int32_t top_k = 40;
    // Keep the smallest most-likely set whose probability reaches top_p. 1 = off; (0, 1].
    float top_p = 0.95f;
    // Drop tokens whose probability is below min_p * (highest probability). 0 = off; [0, 1].
    float min_p = 0.05f;
    // Penalizes tokens seen among the last repeat_last_n accepted ones: a positive logit
    // is divided by it, a negative one multiplied (llama.cpp). 1 = off; must be > 0.
    float repeat_penalty = 1.0f;
    // Window for repeat_penalty, in accepted tokens. 0 = no window; [0, kMaxRepeatLastN].
    int32_t repeat_last_n = 64;
    // PRNG seed. Fixed by default so that two runs with the same inputs give the same text.
    uint64_t seed = 0xC0FFEE;

    // The window is scanned for every sampled token; a client asking for a window of
    // 2^31 tokens must not make each step cost that. No context is longer than this.
    static constexpr int32_t kMaxRepeatLastN = 1 << 20;

    // Ok, or an Error naming the first bad field and its allowed range (NaN and infinities
    // are rejected everywhere). Values come from CLI flags and client requests.
    Status validate() const;
};

// One surviving candidate: `logit` after the repetition penalty (before temperature),
// `prob` its probability in the final, renormalized distribution.
struct TokenProb {
    int32_t id = 0;
    float logit = 0.0f;
    float prob = 0.0f;
};

// ---------------------------------------------------------------------------------------
// Sampler
// ---------------------------------------------------------------------------------------

// Pipeline for one step, in this order:
//   1. repetition penalty over the distinct tokens among the last repeat_last_n accepted;
//   2. temperature == 0: argmax, ties to the lowest id; stop here;
//   3. top-k (ties at the k-th logit go to the lower ids);
//   4. softmax of logit / temperature;
//   5. top-p: smallest prefix, by descending probability, whose sum >= top_p (>= 1 token);
//   6. min-p: drop probability < min_p * max probability;
//   7. renormalize and draw one Rng::next_double() (every non-greedy step draws exactly
//      once, even when one candidate is left, so the stream position is predictable).
// Unlike llama.cpp's default chain, which applies temperature last, top-p and min-p here
// see the tempered distribution (as in HF transformers), so raising the temperature
// widens the nucleus instead of only flattening it.
//
// Non-finite logits: NaN counts as -inf (never drawn while any finite logit exists); if
// the highest logit is not finite (all -inf, or some +inf) the step falls back to argmax,
// so a diverged model gives a deterministic token rather than a crash.
class Sampler {
public:
    // `params` must satisfy params.validate() (asserted); use create() for outside input.
    explicit Sampler(const SamplingParams& params);
    static Expected<Sampler> create(const SamplingParams& params);

    // Picks the next token from logits[0, n_vocab) (F32 [n_vocab], borrowed for the call,
    // never modified). Does not record the token: call accept() with what was kept.
    // Returns -1 only for the programmer error logits == nullptr or n_vocab <= 0 (also
    // asserted).
    int32_t sample(const float* logits, int32_t n_vocab);

    // Records a token that joined the output (sampled, or forced by the caller) for the
    // repetition penalty. Ids outside the vocabulary are kept but never match a logit.
    void accept(int32_t token);

    // Forgets accepted tokens and reseeds the Rng with params().seed: the next sample()
    // calls repeat a fresh sampler's.
    void reset();

    // The distribution sample() would draw from for these logits, without drawing:
    // greedy gives the argmax alone with prob 1. Order: descending logit (ties by id) when
    // top-k cut the list or top_p < 1, otherwise id order. Tests check each stage with it.
    std::vector<TokenProb> candidates_for_test(const float* logits, int32_t n_vocab) const;

    const SamplingParams& params() const { return params_; }

private:
    // Buffers grown once to the vocabulary and reused, so a step allocates nothing.
    struct Scratch {
        std::vector<float> logits;          // F32 [n_vocab]: NaN -> -inf, penalized
        std::vector<TokenProb> candidates;  // the distribution being built
    };

    // Runs stages 1-7 except the draw; the result is scratch.candidates.
    void build_candidates(const float* logits, int32_t n_vocab, Scratch& scratch) const;

    SamplingParams params_;
    std::deque<int32_t> history_;  // last repeat_last_n accepted ids, oldest first
    Rng rng_;
    Scratch scratch_;
};

// ---------------------------------------------------------------------------------------
// Stop strings
// ---------------------------------------------------------------------------------------

// Cuts a stream of text pieces at the first stop string to complete. push() returns the
// text that can no longer become part of a stop string: it holds back the longest tail
// that is a proper prefix of some stop string, and an incomplete UTF-8 sequence at the
// end, so every emit is whole characters when the input is valid UTF-8. When a stop string
// completes, the text before it is emitted and the stop string and all after it dropped.
// "First to complete" (earliest end; at equal ends the longest) makes the result the same
// however the text is split into pieces. Matching is on bytes, by one KMP automaton per
// stop string, so each byte pushed costs O(number of stop strings).
class StopMatcher {
public:
    // Requests supply the stop list: the caps bound the bytes held back from a streaming
    // client and the per-byte matching work.
    static constexpr size_t kMaxStopStrings = 16;
    static constexpr size_t kMaxStopBytes = 256;

    struct Step {
        std::string emit;      // text safe to show now (may be empty)
        bool stopped = false;  // a stop string completed; later pushes emit nothing
    };

    // A matcher with no stop strings passes text through (less an incomplete UTF-8 tail).
    StopMatcher() = default;
    // Error if more than kMaxStopStrings strings or one longer than kMaxStopBytes. Empty
    // strings are ignored: one would end generation before the first token, which no
    // client means.
    static Expected<StopMatcher> create(std::vector<std::string> stops);

    Step push(std::string_view piece);
    // End of generation (max tokens, EOS): returns what was held back and clears it; a
    // later push() starts matching afresh. Empty after a stop (a stopped matcher stays
    // stopped).
    std::string flush();

    bool stopped() const { return stopped_; }
    // The stop string that ended the stream; empty until stopped().
    const std::string& matched_stop() const { return matched_; }

private:
    struct Stop {
        std::string text;
        std::vector<uint16_t> fail;  // KMP: longest proper border of text[0, i]
        size_t matched = 0;          // bytes of text matched by the stream's tail
    };

    std::vector<Stop> stops_;
    std::string held_;  // pending bytes, fewer than kMaxStopBytes after each push()
    std::string matched_;
    bool stopped_ = false;
};

// The caller's limits for one generation: it stops at max_tokens sampled tokens, at EOS,
// at the context size, or when a StopMatcher built from `stop` reports stopped.
struct GenerationLimits {
    int32_t max_tokens = 256;  // >= 1
    std::vector<std::string> stop;

    // Ok, or an Error for max_tokens < 1 or a stop list StopMatcher::create rejects.
    Status validate() const;
};

}  // namespace latent::engine
