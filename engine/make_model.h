// make-model: writes a seeded random-weight GGUF of the real DeepSeek architecture
// (arch "deepseek2", exactly llama.cpp's metadata keys and tensor names) with a real
// DeepSeek tokenizer (V3's, or Coder-V2-Lite's), for tests and benchmarks where no real
// weights can be had.
// Same options and seed -> the same bytes. Writes as a stream: one row in memory.
// Not a converter of real checkpoints.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/expected.h"
#include "engine/quant.h"
#include "engine/vocab.h"

namespace latent::engine {

struct ModelShape {
    std::string preset;
    uint32_t n_layer = 0, n_dense_lead = 0, n_embd = 0, n_head = 0;
    uint32_t q_lora_rank = 0;  // 0: no q-LoRA
    uint32_t kv_lora_rank = 0, nope = 0, rope = 0, v_dim = 0;
    uint32_t n_ff = 0, n_ff_exp = 0;
    uint32_t n_expert = 0, n_expert_used = 0, n_expert_shared = 0;
    uint32_t n_group = 0, n_group_used = 0;  // 0: no grouping
    bool sigmoid_gating = true;              // V3 style (+ selection bias); false: V2 softmax
    bool weights_norm = true;
    float weights_scale = 2.5f;
    float yarn_log_multiplier = 0.1f;
    uint32_t n_vocab = 129280;
    uint32_t n_mtp = 0;  // MTP (NextN) blocks after the trunk
};

struct MakeModelOptions {
    std::string preset = "tiny";  // tiny | small | lite | tiny-v2 | v3-tiny
    GgmlType quant = GgmlType::kF16;
    std::optional<bool> v3_gating;  // unset: the preset's own
    std::optional<bool> q_lora;     // unset: the preset's own
    std::optional<bool> mtp;        // unset: the preset's own
    bool split_kv = true;           // attn_k_b/attn_v_b (else legacy attn_kv_b)
    uint64_t seed = 1;
    std::string out;
    std::string tokenizer_json;    // HF tokenizer.json (found by the CLI when empty)
    std::string tokenizer_config;  // tokenizer_config.json, may be empty
    // Progress: bytes written so far of the total; called about once a second.
    std::function<void(uint64_t done, uint64_t total, const std::string& tensor)> progress;
};

// The shapes of a preset after the options' overrides; error for an unknown preset.
Expected<ModelShape> model_shape(const MakeModelOptions& options);
const std::vector<std::string>& model_presets();

// Writes the model with the given vocabulary (tests pass a small one; the CLI the real
// DeepSeek-V3 one). Returns bytes written.
Expected<uint64_t> make_model(const MakeModelOptions& options, const Vocab& vocab);

// Coder-V2-Lite's vocabulary made from DeepSeek LLM's (llama.cpp's ggml-vocab-deepseek-llm.gguf:
// 102,400 ids, pre-tokenizer deepseek-llm, the BPE part V2, V2-Lite and Coder-V2 share):
// <｜fim▁hole｜>, <｜fim▁begin｜>, <｜fim▁end｜> laid over ids 100002-100004 (ENGINE_SPEC §4.2;
// USER_DEFINED, as in the real model's GGUF), where DeepSeek LLM has three of its 13 byte
// characters ('ø', 'ö', 'ú'). Everything else is kept: BOS 100000, EOS 100001, the other
// byte characters and the [PAD...] fillers (Coder-V2-Lite's other added tokens are not
// known here). Error for any other vocabulary.
Expected<Vocab> coder_v2_lite_vocab(Vocab deepseek_llm);

// The type a tensor is stored in: norms, biases and the router stay f32; matrices use
// the requested type where their rows fit its block, else q8_0 where they fit 32, else
// f16 (what llama.cpp's quantizer also does for small rows).
GgmlType storage_type(GgmlType requested, const std::string& name, int64_t ne0, int n_dims);

}  // namespace latent::engine
