// MLA attention of the fast CPU forward pass (ENGINE_SPEC §3.3), one layer at a time, in
// four forms:
// - absorbed, per token (decode, short chunks, speculative verification): W_UK folded
//   into the query, scores against c_kv and k_pe straight from the latent cache with an
//   online softmax (Kernels::attend), W_UV applied to the attended latent;
// - absorbed on the tile matmul (prompt chunks after a long cached prefix): scores
//   Q·[c_kv | k_pe]^T and P·C_kv as tile matmuls over the cache rows;
// - absorbed and blocked (prompt chunks on a table without the tile matmul): the same
//   two products with Kernels::mla_scores and mla_mix, all of a chunk's query rows at once;
// - expanded on the tile matmul (prompt chunks that are most of what they attend): K and V
//   of every cache row per head, attention with head sizes n + r and v.
// Which tokens take which: Pass::tiled_attention, Pass::blocked_attention and
// CpuBackend::MlaPrefill. Writes the layer's cache rows (normed c_kv, rotated k_pe).
// Internal to engine/cpu/.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/cpu/backend.h"
#include "engine/cpu/step.h"

namespace latent::engine::cpu {

class MlaAttention {
public:
    // wuk_t: the legacy layout's W_UK^T per layer (float, made at first use, kept by the
    // backend across calls).
    MlaAttention(Step& step, CpuBackend::MlaPrefill form, std::vector<std::vector<float>>& wuk_t)
        : st_(step), form_(form), wuk_t_(wuk_t) {}

    // attn[t] (n_embd values) = the attention block's output for token t at weights layer
    // il, cache layer cl, from xn (the normed input rows).
    void layer(const LayerWeights& l, uint32_t il, uint32_t cl, const std::vector<float>& xn,
               std::vector<float>& attn);

private:
    void project(const std::vector<float>& xn);  // q, c_kv | k_pe, the cache rows
    void absorb_queries();                       // q_abs = W_UK^T q_nope (where read)
    void attend_tiled_absorbed(int64_t sb);
    void attend_tiled_expanded(int64_t sb);
    void attend_blocked(int64_t sb);
    void attend_per_token();
    void output(std::vector<float>& attn);  // o = W_UV o_lat (where not yet), attn_output

    Step& st_;
    CpuBackend::MlaPrefill form_;
    std::vector<std::vector<float>>& wuk_t_;
    struct Dims {
        int64_t T, S, E, H, n, r, v, L, qk;  // tokens, sequences; ENGINE_SPEC's sizes
        float eps, kq_scale;
    };
    Dims d_{};
    // The layer being run.
    const LayerWeights* l_ = nullptr;
    uint32_t il_ = 0, cl_ = 0;
    bool split_ = false;          // attn_k_b / attn_v_b (else attn_kv_b)
    std::vector<char> expanded_;  // per sequence: the expanded form
    std::vector<char> by_tiles_;  // per sequence: on the tiles (1), blocked (2) or per token (0)
    std::vector<std::vector<const float*>> rows_;  // per sequence: its cache rows
    // Scratch, reused across layers.
    std::vector<float> q_, kva_, q_abs_, o_lat_, o_, cq_, cr_, ct_, qcat_, sc_, kx_, vx_, vt_, wuk_;
    std::vector<const uint8_t*> ptrs_, qptr_, pptr_;
    std::vector<const float*> qlat_, qpe_;
    std::vector<float*> outp_;
    std::vector<Job> jobs_;
    Acts a_in_, a_aux_;
};

}  // namespace latent::engine::cpu
