// StepSpeed: how fast the engine runs on this machine, as the scheduler's own steps show
// it — milliseconds per prompt token of prefill, and per decode step (one token of every
// running sequence: the weights are read once, so it costs about the same for one
// sequence or a few). Moving averages, so a slower phase (a cold page cache, the other
// process on the core) shows within a few steps. The language server sizes its prompts
// and the scheduler its warm-up chunks from them.
//
// Thread safety: none; the scheduler's thread writes it, under the scheduler's lock.
#pragma once

#include <cstdint>

namespace latent::engine {

class StepSpeed {
public:
    // One step's work and time: `prefill_tokens` prompt rows (0: none) beside
    // `decode_sequences` sequences' decode rows (0: none).
    void observe(int64_t prefill_tokens, int64_t decode_sequences, double ms) {
        if (ms <= 0) return;
        if (prefill_tokens == 0 && decode_sequences > 0) {
            decode_ms_ = mix(decode_ms_, ms);
        } else if (prefill_tokens >= kMinPrefillRows) {
            // A step with decode rows too: what the decode part costs alone, when known,
            // is not the prompt's.
            const double decode = decode_sequences > 0 ? decode_ms_ : 0;
            if (decode_sequences > 0 && decode_ms_ <= 0) return;
            const double rest = ms - decode;
            if (rest > 0)
                prefill_ms_ = mix(prefill_ms_, rest / static_cast<double>(prefill_tokens));
        }
    }
    // 0 until a step has shown it.
    double prefill_ms_per_token() const { return prefill_ms_; }
    double decode_ms_per_step() const { return decode_ms_; }

    // Steps with fewer prompt rows say little about prefill (fixed costs dominate).
    static constexpr int64_t kMinPrefillRows = 8;

private:
    static double mix(double avg, double x) { return avg <= 0 ? x : avg + kWeight * (x - avg); }
    static constexpr double kWeight = 0.25;
    double prefill_ms_ = 0;
    double decode_ms_ = 0;
};

}  // namespace latent::engine
