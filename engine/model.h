// Model: a DeepSeek-V2/V3 (GGUF arch "deepseek2") checkpoint as hyper-parameters, a
// tokenizer vocabulary and typed views of its weights, straight from the mmap (no copy).
// It validates every tensor's presence, type and shape; it computes nothing — the
// forward passes (reference.h, the backends) read it.
//
// Thread safety: immutable after load(); share it freely between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/expected.h"
#include "engine/gguf.h"
#include "engine/quant.h"
#include "engine/vocab.h"

namespace latent::engine {

enum class GatingFunc : uint32_t { kSoftmax = 1, kSigmoid = 2 };

struct HParams {
    uint32_t n_vocab = 0;
    uint32_t n_ctx_train = 0;
    uint32_t n_embd = 0;   // E
    uint32_t n_layer = 0;  // trunk layers (MTP blocks excluded)
    uint32_t n_nextn = 0;  // MTP blocks after the trunk
    uint32_t n_head = 0;   // H
    uint32_t n_ff = 0;     // dense FFN width
    uint32_t n_layer_dense_lead = 0;
    uint32_t q_lora_rank = 0;          // 0: no q-LoRA (attn_q)
    uint32_t kv_lora_rank = 0;         // L
    uint32_t n_embd_head_qk_nope = 0;  // n
    uint32_t n_rot = 0;                // r (rope dims)
    uint32_t n_embd_head_v = 0;        // v
    uint32_t n_expert = 0;             // X
    uint32_t n_expert_used = 0;        // top-k
    uint32_t n_expert_shared = 0;      // S
    uint32_t n_ff_exp = 0;             // f
    uint32_t n_expert_groups = 0;      // 0/1: no grouping
    uint32_t n_group_used = 0;
    GatingFunc gating = GatingFunc::kSoftmax;
    bool expert_weights_norm = false;
    float expert_weights_scale = 1.0f;
    float rms_eps = 1e-6f;
    float rope_freq_base = 10000.0f;
    // YaRN (rope.scaling.type "yarn"); factor 1 means no scaling.
    bool rope_yarn = false;
    float rope_scaling_factor = 1.0f;
    uint32_t rope_orig_ctx = 0;
    float yarn_beta_fast = 32.0f;
    float yarn_beta_slow = 1.0f;
    float rope_attn_factor = 1.0f;     // A
    float yarn_log_multiplier = 0.0f;  // as stored (0.1 x mscale_all_dim)
    bool split_kv_b = true;            // attn_k_b/attn_v_b (else legacy attn_kv_b)

    uint32_t n_embd_head_qk() const { return n_embd_head_qk_nope + n_rot; }
    // Softmax scale (ENGINE_SPEC §3.3): (A (1 + 0.1 M ln F))^2 / sqrt(n + r).
    float kq_scale() const;
    std::string describe() const;
};

// A typed view of one tensor in the mapping; null data when the tensor is absent.
struct Tensor {
    const uint8_t* data = nullptr;
    GgmlType type = GgmlType::kF32;
    int64_t ne[4] = {1, 1, 1, 1};
    std::string name;

    explicit operator bool() const { return data != nullptr; }
    int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
    uint64_t row_size() const { return row_bytes(type, ne[0]); }
    const uint8_t* row(int64_t i) const { return data + static_cast<uint64_t>(i) * row_size(); }
    // The i-th 2D matrix of a 3D tensor (experts, heads).
    const uint8_t* matrix(int64_t i) const {
        return data + static_cast<uint64_t>(i) * ne[1] * row_size();
    }
};

struct LayerWeights {
    Tensor attn_norm;       // F32 [E]
    Tensor attn_q;          // [E, H*(n+r)]            (no q-LoRA)
    Tensor attn_q_a;        // [E, q_lora]             (q-LoRA)
    Tensor attn_q_a_norm;   // F32 [q_lora]
    Tensor attn_q_b;        // [q_lora, H*(n+r)]
    Tensor attn_kv_a_mqa;   // [E, L+r]
    Tensor attn_kv_a_norm;  // F32 [L]
    Tensor attn_kv_b;       // [L, H*(n+v)]            (legacy layout)
    Tensor attn_k_b;        // [n, L, H]               (split layout)
    Tensor attn_v_b;        // [L, v, H]               (split layout)
    Tensor attn_output;     // [H*v, E]
    Tensor ffn_norm;        // F32 [E]
    // Dense layers (il < n_layer_dense_lead).
    Tensor ffn_gate, ffn_up;  // [E, n_ff]
    Tensor ffn_down;          // [n_ff, E]
    // MoE layers.
    Tensor ffn_gate_inp;                  // [E, X]
    Tensor exp_probs_b;                   // F32 [X] (V3 selection bias)
    Tensor ffn_gate_exps, ffn_up_exps;    // [E, f, X]
    Tensor ffn_down_exps;                 // [f, E, X]
    Tensor ffn_gate_shexp, ffn_up_shexp;  // [E, f*S]
    Tensor ffn_down_shexp;                // [f*S, E]
    // MTP (NextN) blocks only.
    Tensor nextn_eh_proj;                                     // [2E, E]
    Tensor nextn_enorm, nextn_hnorm, nextn_shared_head_norm;  // F32 [E]
    Tensor nextn_shared_head_head;                            // [E, V]
    Tensor nextn_embed_tokens;                                // [E, V]

    bool is_moe() const { return ffn_gate_inp.data != nullptr; }
};

struct Weights {
    Tensor token_embd;                 // [E, V]
    Tensor output_norm;                // F32 [E]
    Tensor output;                     // [E, V]
    std::vector<LayerWeights> layers;  // n_layer trunk layers, then n_nextn MTP blocks
};

class Model {
public:
    // Loads and validates a GGUF; errors name the file and the problem.
    static Expected<std::unique_ptr<Model>> load(const std::string& path);
    static Expected<std::unique_ptr<Model>> from_gguf(std::unique_ptr<GgufFile> file);

    const HParams& hparams() const { return hp_; }
    const Vocab& vocab() const { return vocab_; }
    const Weights& weights() const { return w_; }
    const GgufFile& file() const { return *file_; }
    const std::string& path() const { return file_->path(); }
    // Bytes of weights read per token on the decode path (embedding row, attention,
    // shared and n_expert_used routed experts, output): the memory-bandwidth figure.
    uint64_t active_weight_bytes() const;
    uint64_t total_weight_bytes() const;

private:
    Model() = default;
    std::unique_ptr<GgufFile> file_;
    HParams hp_;
    Vocab vocab_;
    Weights w_;
};

}  // namespace latent::engine
