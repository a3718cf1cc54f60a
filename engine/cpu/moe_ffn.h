// The feed-forward block of the fast CPU forward pass (ENGINE_SPEC §3.4): a dense SwiGLU
// layer, or the MoE layer — router, the batch's tokens grouped by routed expert (each
// expert's weights read once per batch), the shared experts in the same job lists, and
// the weighted sum in routing order as the reference sums it. Internal to engine/cpu/.
#pragma once

#include <vector>

#include "engine/cpu/step.h"

namespace latent::engine::cpu {

// y[t] (n_embd values) = the layer's feed-forward output for token t, from xn (the normed
// input rows). y is resized and overwritten.
void feed_forward(Step& step, const LayerWeights& l, const std::vector<float>& xn,
                  std::vector<float>& y);

}  // namespace latent::engine::cpu
