// The two ends of the fast CPU forward pass: its input rows (the token embeddings, or for
// the MTP block eh_proj over the normed embedding and trunk state, ENGINE_SPEC §3.6) and
// its output (the final norm and the output head, for the tokens that want logits, in one
// matmul, handed to each sequence). Internal to engine/cpu/.
#pragma once

#include <span>
#include <vector>

#include "engine/cpu/step.h"

namespace latent::engine::cpu {

// x[t] (n_embd values): the first layer's input rows. mtp_hidden empty: the trunk's token
// embeddings; else (one span per sequence) the input of the first MTP block.
void input_rows(Step& step, const Weights& w, std::span<const std::span<const float>> mtp_hidden,
                std::vector<float>& x);

// The logits each sequence of the step asks for (LogitsMode), from the last layer's rows x;
// `mtp`: through the MTP block's own head where it has one.
void output_logits(Step& step, const Weights& w, bool mtp, const std::vector<float>& x);

}  // namespace latent::engine::cpu
