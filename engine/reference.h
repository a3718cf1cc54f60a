// ReferenceBackend: DeepSeek-V2/V3's forward pass in plain float, written to read like
// the paper's equations (ENGINE_SPEC §3): every weight dequantized row by row, MLA in
// its naive (unabsorbed) form — K and V decompressed from the latent cache for every
// position — and the MoE computed expert by expert for each token. Slow on purpose:
// it is the ground truth every fast path is tested against, not a path to optimise.
//
// Thread safety: a ReferenceBackend holds no state; one call per SeqCache at a time.
#pragma once

#include <functional>

#include "engine/backend.h"

namespace latent::engine {

class ReferenceBackend final : public Backend {
public:
    std::string name() const override { return "reference"; }
    Status forward(const Model& model, SeqCache& seq, std::span<const int32_t> tokens,
                   LogitsMode mode, std::vector<float>& logits) override;
    // One sequence after another, as forward(), with SeqBatch::hidden filled.
    Status forward_batch(const Model& model, std::span<const SeqBatch> batch) override;
    bool supports_mtp() const override { return true; }
    // The MTP block as DeepSeek-V3 defines it: eh_proj over [enorm(embedding of the next
    // token) | hnorm(trunk output)], one transformer block, shared_head_norm and
    // shared_head_head (the model's output_norm / output where the file has none).
    Status forward_mtp(const Model& model, std::span<const MtpBatch> batch) override;

    // Called after each layer of a forward pass (layer index, layer count), so a caller
    // can show progress when a pass takes long (a big model through the slow reference).
    std::function<void(uint32_t layer, uint32_t n_layer)> on_layer;

private:
    Status run(const Model& model, SeqCache& seq, std::span<const int32_t> tokens, LogitsMode mode,
               std::vector<float>& logits, std::vector<float>* hidden);
};

// Building blocks, exposed for tests and for fast paths to check themselves against.
namespace ref {

// y[t][o] = sum_i W[o][i] x[t][i] for the matrix `index` of W (3D: expert or head),
// t < n_tokens; x rows are W.ne[0] wide, y rows W.ne[1] wide. Accumulates in double.
void matmul(const Tensor& w, int64_t index, const float* x, int64_t n_tokens, float* y);
// x / sqrt(mean(x^2) + eps) * w, in place over n values.
void rms_norm(float* x, const float* w, int64_t n, float eps);
float silu(float x);

// MoE routing for one token (ENGINE_SPEC §3.5): fills the chosen experts and their
// weights from the router logits.
struct Routing {
    std::vector<int32_t> experts;
    std::vector<float> weights;
};
Routing route(const HParams& hp, const float* router_logits, const float* selection_bias);

}  // namespace ref
}  // namespace latent::engine
