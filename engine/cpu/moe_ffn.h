// The feed-forward block of the fast CPU forward pass (ENGINE_SPEC §3.4): a dense SwiGLU
// layer, or the MoE layer — router, the batch's tokens grouped by routed expert (each
// expert's weights read once per batch), the shared experts in the same job lists, and
// the weighted sum in routing order as the reference sums it. Internal to engine/cpu/.
#pragma once

#include <vector>

#include "engine/cpu/step.h"

namespace latent::engine::cpu {

// One per call of the pass: its activation rows and job list are reused from layer to layer
// (no allocation per layer once they have grown).
class FeedForward {
public:
    explicit FeedForward(Step& step) : st_(step) {}
    // y[t] (n_embd values) = the layer's feed-forward output for token t, from xn (the
    // normed input rows). y is resized and overwritten.
    void layer(const LayerWeights& l, const std::vector<float>& xn, std::vector<float>& y);

private:
    void dense(const LayerWeights& l, const std::vector<float>& xn, std::vector<float>& y);
    void moe(const LayerWeights& l, const std::vector<float>& xn, std::vector<float>& y);

    Step& st_;
    Acts a_in_, a_aux_, a_aux2_, a_sh_;
    std::vector<Job> jobs_;
    // Float rows: gate, up (routed and shared), router scores, expert and shared outputs.
    std::vector<float> g_, u_, gs_, us_, router_, out_, ys_;
};

}  // namespace latent::engine::cpu
