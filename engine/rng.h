// Rng: the project's one pseudo-random generator (xoshiro256**), for the sampler's
// draws and make-model's weights. Fully specified integer arithmetic, so a seed gives
// the same stream everywhere; not for anything that needs unpredictability.
#pragma once

#include <array>
#include <cstdint>

namespace latent::engine {

// xoshiro256** (Blackman & Vigna), its state filled from the seed by splitmix64 as the
// authors recommend. Integer arithmetic only, so a seed gives the same stream on every
// compiler and platform, which std::*_distribution does not promise.
class Rng {
public:
    explicit Rng(uint64_t seed);
    // For reference vectors; an all-zero state is a fixed point and must not be used.
    static Rng from_state(const std::array<uint64_t, 4>& state);

    uint64_t next_u64();
    // Uniform in [0, 1): the top 53 bits of next_u64() times 2^-53, exact in a double.
    double next_double();

    const std::array<uint64_t, 4>& state() const { return s_; }

private:
    Rng() = default;
    std::array<uint64_t, 4> s_{};
};

}  // namespace latent::engine
