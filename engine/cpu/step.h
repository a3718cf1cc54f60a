// The tokens of one call of the fast CPU forward pass (CpuBackend::run), shared by its
// parts (mla_attention, moe_ffn, logits): the sequences' tokens one after another, each
// token's sequence and position, and the rotary tables of those positions.
// Internal to engine/cpu/.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/backend.h"
#include "engine/cpu/pass.h"
#include "engine/model.h"

namespace latent::engine::cpu {

struct Step {
    Step(const HParams& h, std::span<const SeqBatch> b, Pass& p) : hp(h), batch(b), pass(p) {}

    const HParams& hp;
    std::span<const SeqBatch> batch;
    Pass& pass;
    int64_t S = 0;                   // sequences
    int64_t T = 0;                   // tokens
    std::vector<int64_t> seg_begin;  // sequence b's tokens: [seg_begin[b], seg_begin[b + 1])
    std::vector<int32_t> pos, ids;   // each token's position and id
    std::vector<SeqCache*> seq_of;   // each token's sequence
    std::vector<int64_t> seq_index;  // each token's sequence's index in batch
    // cos and sin (times the rope magnitude) of each rotated pair at each token's
    // position: T rows of n_rot / 2, shared by every layer and head.
    std::vector<double> rope_cos, rope_sin;
};

}  // namespace latent::engine::cpu
