// Random-weight DeepSeek GGUFs (see make_model.h). Every tensor draws from its own
// stream seeded by (seed, tensor name), so tensors can be produced in any order and a
// layout change (split vs single kv_b) describes the very same model.
#include "engine/make_model.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <map>

#include "engine/gguf_writer.h"
#include "engine/rng.h"

namespace latent::engine {
namespace {

// Normal draws from the project's Rng by Box-Muller in double: fully specified, so the
// same seed gives the same bytes with every compiler and standard library.
class NormalRng {
public:
    explicit NormalRng(uint64_t seed) : rng_(seed) {}
    double uniform() { return rng_.next_double(); }  // [0, 1)
    double normal() {
        if (have_spare_) {
            have_spare_ = false;
            return spare_;
        }
        double u1 = uniform();
        while (u1 <= 0) u1 = uniform();
        const double u2 = uniform();
        const double rad = std::sqrt(-2.0 * std::log(u1));
        spare_ = rad * std::sin(2.0 * M_PI * u2);
        have_spare_ = true;
        return rad * std::cos(2.0 * M_PI * u2);
    }

private:
    Rng rng_;
    double spare_ = 0;
    bool have_spare_ = false;
};

uint64_t stream_seed(uint64_t seed, const std::string& name) {
    uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a
    for (unsigned char c : name) h = (h ^ c) * 0x100000001B3ull;
    return h ^ (seed * 0x9E3779B97F4A7C15ull);
}

std::string blk(uint32_t il, const std::string& name) {
    return "blk." + std::to_string(il) + "." + name;
}

// How a tensor's values are drawn.
enum class Init { kNormal, kNorm, kBias };

struct TensorPlan {
    std::string name;
    std::vector<int64_t> ne;
    GgmlType type;
    Init init;
    float stddev;  // kNormal
    // Rows come from another tensor's stream (the k_b/v_b split of kv_b).
    enum class Derive { kNone, kKB, kVB } derive = Derive::kNone;
};

ModelShape preset_shape(const std::string& p) {
    ModelShape s;
    s.preset = p;
    if (p == "tiny" || p == "v3-tiny") {
        s.n_layer = 3, s.n_dense_lead = 1, s.n_embd = 32, s.n_head = 4, s.q_lora_rank = 32;
        s.kv_lora_rank = 32, s.nope = 16, s.rope = 8, s.v_dim = 16, s.n_ff = 96, s.n_ff_exp = 32;
        s.n_expert = 8, s.n_expert_used = 2, s.n_expert_shared = 1, s.n_group = 4,
        s.n_group_used = 2;
        if (p == "v3-tiny") s.n_mtp = 1;
    } else if (p == "small") {
        s.n_layer = 8, s.n_dense_lead = 2, s.n_embd = 256, s.n_head = 8, s.q_lora_rank = 256;
        s.kv_lora_rank = 256, s.nope = 64, s.rope = 32, s.v_dim = 64, s.n_ff = 1024,
        s.n_ff_exp = 256;
        s.n_expert = 32, s.n_expert_used = 4, s.n_expert_shared = 1, s.n_group = 4,
        s.n_group_used = 2;
    } else if (p == "lite" || p == "tiny-v2") {
        const bool lite = p == "lite";
        s.n_layer = 27, s.n_dense_lead = 1, s.q_lora_rank = 0;
        s.n_embd = lite ? 2048 : 32, s.n_head = lite ? 16 : 4;
        s.kv_lora_rank = lite ? 512 : 32, s.nope = lite ? 128 : 16, s.rope = lite ? 64 : 8;
        s.v_dim = lite ? 128 : 16, s.n_ff = lite ? 10944 : 96, s.n_ff_exp = lite ? 1408 : 32;
        s.n_expert = lite ? 64 : 8, s.n_expert_used = lite ? 6 : 2, s.n_expert_shared = 2;
        s.n_group = 0, s.n_group_used = 0;
        s.sigmoid_gating = false, s.weights_norm = false, s.weights_scale = 1.0f;
        s.yarn_log_multiplier = 0.0707f;
    } else {
        s.preset.clear();
    }
    return s;
}

}  // namespace

const std::vector<std::string>& model_presets() {
    static const std::vector<std::string> kPresets = {"tiny", "small", "lite", "tiny-v2",
                                                      "v3-tiny"};
    return kPresets;
}

Expected<ModelShape> model_shape(const MakeModelOptions& o) {
    ModelShape s = preset_shape(o.preset);
    if (s.preset.empty())
        return make_error("unknown preset '" + o.preset +
                          "' (choose tiny, small, lite, tiny-v2 or v3-tiny)");
    if (o.v3_gating) {
        if (*o.v3_gating) {
            s.sigmoid_gating = true, s.weights_norm = true, s.weights_scale = 2.5f;
            if (s.n_group == 0) {
                // V3's 8 groups keep 4 (256 experts); smaller expert counts keep the ratio.
                s.n_group = s.n_expert >= 64 ? 8 : 4;
                s.n_group_used = s.n_group / 2;
            }
        } else {
            s.sigmoid_gating = false, s.weights_norm = false, s.weights_scale = 1.0f;
            s.n_group = 0, s.n_group_used = 0;
        }
    }
    if (o.q_lora) s.q_lora_rank = *o.q_lora ? (s.q_lora_rank ? s.q_lora_rank : s.kv_lora_rank) : 0;
    if (o.mtp) s.n_mtp = *o.mtp ? 1 : 0;
    return s;
}

Expected<Vocab> coder_v2_lite_vocab(Vocab v) {
    constexpr size_t kSize = 102400;
    constexpr int32_t kBos = 100000, kEos = 100001, kFimHole = 100002;
    if (v.model != "gpt2" || v.pre != "deepseek-llm" || v.tokens.size() != kSize ||
        v.bos_id != kBos || v.eos_id != kEos)
        return make_error(
            "Coder-V2-Lite's vocabulary is made from DeepSeek LLM's (pre-tokenizer deepseek-llm, " +
            std::to_string(kSize) + " ids, BOS 100000, EOS 100001); this one has pre '" + v.pre +
            "' and " + std::to_string(v.tokens.size()) + " ids");
    const char* fim[] = {"<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>"};
    for (int i = 0; i < 3; ++i) {
        v.tokens[size_t(kFimHole + i)] = fim[i];
        v.types[size_t(kFimHole + i)] = TokenType::kUserDefined;
    }
    return v;
}

GgmlType storage_type(GgmlType requested, const std::string& name, int64_t ne0, int n_dims) {
    const bool is_vector = n_dims == 1;
    // The router stays f32 (llama.cpp's quantizer does not quantize ffn_gate_inp either).
    if (is_vector || name.find("ffn_gate_inp") != std::string::npos) return GgmlType::kF32;
    if (ne0 % traits(requested).block_size == 0) return requested;
    if (ne0 % 32 == 0 && requested != GgmlType::kF16 && requested != GgmlType::kBF16 &&
        requested != GgmlType::kF32)
        return GgmlType::kQ8_0;
    return GgmlType::kF16;
}

Expected<uint64_t> make_model(const MakeModelOptions& o, const Vocab& vocab) {
    auto shape = model_shape(o);
    if (!shape) return shape.error();
    const ModelShape& s = *shape;
    if (vocab.tokens.empty()) return make_error("make-model: empty vocabulary");
    if (o.out.empty()) return make_error("make-model: no output path");
    const uint32_t n_vocab = static_cast<uint32_t>(vocab.tokens.size());
    const int64_t E = s.n_embd, V = n_vocab, H = s.n_head, n = s.nope, r = s.rope, v = s.v_dim,
                  L = s.kv_lora_rank, X = s.n_expert, f = s.n_ff_exp, S = s.n_expert_shared;
    const uint32_t n_block = s.n_layer + s.n_mtp;

    // ---- Metadata (llama.cpp's keys for arch deepseek2, ENGINE_SPEC §2.2) ----
    GgufWriter w;
    const std::string a = "deepseek2.";
    w.set_string("general.architecture", "deepseek2");
    w.set_string("general.name", "latent-make-model-" + s.preset);
    w.set_u32("general.quantization_version", 2);
    w.set_u32(a + "block_count", n_block);
    w.set_u32(a + "context_length", 163840);
    w.set_u32(a + "embedding_length", s.n_embd);
    w.set_u32(a + "feed_forward_length", s.n_ff);
    w.set_u32(a + "attention.head_count", s.n_head);
    w.set_u32(a + "attention.head_count_kv", o.split_kv ? 1 : s.n_head);
    w.set_f32(a + "rope.freq_base", 10000.0f);
    w.set_f32(a + "attention.layer_norm_rms_epsilon", 1e-6f);
    w.set_u32(a + "expert_used_count", s.n_expert_used);
    w.set_u32(a + "expert_count", s.n_expert);
    if (o.split_kv) {
        w.set_u32(a + "attention.key_length", s.kv_lora_rank + s.rope);
        w.set_u32(a + "attention.value_length", s.kv_lora_rank);
        w.set_u32(a + "attention.key_length_mla", s.nope + s.rope);
        w.set_u32(a + "attention.value_length_mla", s.v_dim);
    } else {
        w.set_u32(a + "attention.key_length", s.nope + s.rope);
        w.set_u32(a + "attention.value_length", s.v_dim);
    }
    w.set_u32(a + "vocab_size", n_vocab);
    w.set_u32(a + "leading_dense_block_count", s.n_dense_lead);
    if (s.q_lora_rank) w.set_u32(a + "attention.q_lora_rank", s.q_lora_rank);
    w.set_u32(a + "attention.kv_lora_rank", s.kv_lora_rank);
    w.set_u32(a + "expert_feed_forward_length", s.n_ff_exp);
    w.set_u32(a + "expert_shared_count", s.n_expert_shared);
    w.set_f32(a + "expert_weights_scale", s.weights_scale);
    w.set_bool(a + "expert_weights_norm", s.weights_norm);
    w.set_u32(a + "expert_gating_func", s.sigmoid_gating ? 2 : 1);
    if (s.n_group > 1) {
        w.set_u32(a + "expert_group_count", s.n_group);
        w.set_u32(a + "expert_group_used_count", s.n_group_used);
    }
    if (s.n_mtp) w.set_u32(a + "nextn_predict_layers", s.n_mtp);
    w.set_u32(a + "rope.dimension_count", s.rope);
    w.set_string(a + "rope.scaling.type", "yarn");
    w.set_f32(a + "rope.scaling.factor", 40.0f);
    w.set_u32(a + "rope.scaling.original_context_length", 4096);
    w.set_f32(a + "rope.scaling.yarn_log_multiplier", s.yarn_log_multiplier);
    w.set_string("tokenizer.ggml.model", vocab.model);
    w.set_string("tokenizer.ggml.pre", vocab.pre);
    w.set_string_array("tokenizer.ggml.tokens", vocab.tokens);
    std::vector<int32_t> types(vocab.types.size());
    for (size_t i = 0; i < types.size(); ++i) types[i] = static_cast<int32_t>(vocab.types[i]);
    w.set_i32_array("tokenizer.ggml.token_type", types);
    w.set_string_array("tokenizer.ggml.merges", vocab.merges);
    w.set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(vocab.bos_id));
    w.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(vocab.eos_id));
    if (vocab.pad_id >= 0)
        w.set_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(vocab.pad_id));
    w.set_bool("tokenizer.ggml.add_bos_token", vocab.add_bos);
    w.set_bool("tokenizer.ggml.add_eos_token", vocab.add_eos);
    if (!vocab.chat_template.empty()) w.set_string("tokenizer.chat_template", vocab.chat_template);

    // ---- Tensors. Projections draw N(0, 1/sqrt(fan_in)): 0.022 at lite's width (the
    // "about N(0, 0.02)" of real checkpoints) and unit-scale activations at every
    // width, so nothing vanishes or explodes through the layers. ----
    std::vector<TensorPlan> plan;
    auto sd = [](int64_t fan_in) {
        return static_cast<float>(1.0 / std::sqrt(static_cast<double>(fan_in)));
    };
    auto add = [&](const std::string& name, std::vector<int64_t> ne, Init init, float stddev,
                   TensorPlan::Derive derive = TensorPlan::Derive::kNone) {
        const GgmlType t = storage_type(o.quant, name, ne[0], static_cast<int>(ne.size()));
        // Projections that write into the residual stream are scaled by 1/sqrt(2 n_layer)
        // (GPT-2's rule): the stream then grows to about twice the embedding's scale
        // over all layers instead of being dominated by the last ones, which keeps the
        // logits stable under small perturbations (other engines' rounding) as trained
        // models are.
        if (name.find("attn_output") != std::string::npos ||
            name.find("ffn_down") != std::string::npos)
            stddev /= static_cast<float>(std::sqrt(2.0 * n_block));
        plan.push_back({name, std::move(ne), t, init, stddev, derive});
    };
    add("token_embd.weight", {E, V}, Init::kNormal, 1.0f);
    add("output_norm.weight", {E}, Init::kNorm, 0);
    add("output.weight", {E, V}, Init::kNormal, sd(E));
    for (uint32_t il = 0; il < n_block; ++il) {
        add(blk(il, "attn_norm.weight"), {E}, Init::kNorm, 0);
        if (s.q_lora_rank) {
            const int64_t qr = s.q_lora_rank;
            add(blk(il, "attn_q_a.weight"), {E, qr}, Init::kNormal, sd(E));
            add(blk(il, "attn_q_a_norm.weight"), {qr}, Init::kNorm, 0);
            add(blk(il, "attn_q_b.weight"), {qr, H * (n + r)}, Init::kNormal, sd(qr));
        } else {
            add(blk(il, "attn_q.weight"), {E, H * (n + r)}, Init::kNormal, sd(E));
        }
        add(blk(il, "attn_kv_a_mqa.weight"), {E, L + r}, Init::kNormal, sd(E));
        add(blk(il, "attn_kv_a_norm.weight"), {L}, Init::kNorm, 0);
        if (o.split_kv) {
            add(blk(il, "attn_k_b.weight"), {n, L, H}, Init::kNormal, sd(L),
                TensorPlan::Derive::kKB);
            add(blk(il, "attn_v_b.weight"), {L, v, H}, Init::kNormal, sd(L),
                TensorPlan::Derive::kVB);
        } else {
            add(blk(il, "attn_kv_b.weight"), {L, H * (n + v)}, Init::kNormal, sd(L));
        }
        add(blk(il, "attn_output.weight"), {H * v, E}, Init::kNormal, sd(H * v));
        add(blk(il, "ffn_norm.weight"), {E}, Init::kNorm, 0);
        if (il < s.n_dense_lead) {
            add(blk(il, "ffn_gate.weight"), {E, s.n_ff}, Init::kNormal, sd(E));
            add(blk(il, "ffn_up.weight"), {E, s.n_ff}, Init::kNormal, sd(E));
            add(blk(il, "ffn_down.weight"), {s.n_ff, E}, Init::kNormal, sd(s.n_ff));
        } else {
            add(blk(il, "ffn_gate_inp.weight"), {E, X}, Init::kNormal, sd(E));
            if (s.sigmoid_gating) add(blk(il, "exp_probs_b.bias"), {X}, Init::kBias, 0);
            add(blk(il, "ffn_gate_exps.weight"), {E, f, X}, Init::kNormal, sd(E));
            add(blk(il, "ffn_up_exps.weight"), {E, f, X}, Init::kNormal, sd(E));
            add(blk(il, "ffn_down_exps.weight"), {f, E, X}, Init::kNormal, sd(f));
            if (S > 0) {
                add(blk(il, "ffn_gate_shexp.weight"), {E, f * S}, Init::kNormal, sd(E));
                add(blk(il, "ffn_up_shexp.weight"), {E, f * S}, Init::kNormal, sd(E));
                add(blk(il, "ffn_down_shexp.weight"), {f * S, E}, Init::kNormal, sd(f * S));
            }
        }
        if (il >= s.n_layer) {
            add(blk(il, "nextn.eh_proj.weight"), {2 * E, E}, Init::kNormal, sd(2 * E));
            add(blk(il, "nextn.enorm.weight"), {E}, Init::kNorm, 0);
            add(blk(il, "nextn.hnorm.weight"), {E}, Init::kNorm, 0);
            add(blk(il, "nextn.shared_head_norm.weight"), {E}, Init::kNorm, 0);
            add(blk(il, "nextn.shared_head_head.weight"), {E, V}, Init::kNormal, sd(E));
        }
    }
    for (const TensorPlan& t : plan) w.add_tensor(t.name, t.ne, t.type);

    uint64_t total = 0;
    for (const TensorPlan& t : plan) {
        uint64_t b = row_bytes(t.type, t.ne[0]);
        for (size_t d = 1; d < t.ne.size(); ++d) b *= static_cast<uint64_t>(t.ne[d]);
        total += b;
    }
    if (Status st = w.begin(o.out); !st) return st.error();

    using Clock = std::chrono::steady_clock;
    auto last_report = Clock::now();
    uint64_t done = 0;
    std::vector<float> row;
    std::vector<uint8_t> qrow;
    for (const TensorPlan& t : plan) {
        const int64_t ne0 = t.ne[0];
        int64_t rows = 1;
        for (size_t d = 1; d < t.ne.size(); ++d) rows *= t.ne[d];
        row.resize(static_cast<size_t>(ne0));
        qrow.resize(row_bytes(t.type, ne0));
        // k_b and v_b are the two halves of one kv_b [L, H(n+v)] drawn per head, so that
        // split and single files of the same seed hold the same model.
        std::vector<float> head;  // [n + v][L] for the current head
        int64_t head_index = -1;
        std::string kv_b_name = t.name;
        if (t.derive != TensorPlan::Derive::kNone)
            kv_b_name.replace(
                kv_b_name.find(t.derive == TensorPlan::Derive::kKB ? "attn_k_b" : "attn_v_b"), 8,
                "attn_kv_b");
        NormalRng rng(
            stream_seed(o.seed, t.derive == TensorPlan::Derive::kNone ? t.name : kv_b_name));
        for (int64_t i = 0; i < rows; ++i) {
            if (t.derive != TensorPlan::Derive::kNone) {
                const int64_t rows_per_head = t.ne[1];
                const int64_t h = i / rows_per_head, k = i % rows_per_head;
                if (h != head_index) {
                    // Draw head h of kv_b: rows h(n+v) .. h(n+v)+n+v-1, each of L values
                    // (heads come in order, so the stream matches the single layout's).
                    head.resize(static_cast<size_t>((n + v) * L));
                    for (float& x : head) x = static_cast<float>(rng.normal() * t.stddev);
                    head_index = h;
                }
                if (t.derive == TensorPlan::Derive::kKB) {
                    // k_b row k (over latent c = k) holds k_nope weights d = 0..n-1.
                    for (int64_t d = 0; d < n; ++d) row[d] = head[d * L + k];
                } else {
                    std::memcpy(row.data(), &head[(n + k) * L], sizeof(float) * L);
                }
            } else {
                for (int64_t j = 0; j < ne0; ++j) {
                    switch (t.init) {
                        case Init::kNormal:
                            row[j] = static_cast<float>(rng.normal() * t.stddev);
                            break;
                        case Init::kNorm:  // RMSNorm gains near 1
                            row[j] = static_cast<float>(0.9 + 0.2 * rng.uniform());
                            break;
                        case Init::kBias:  // V3 selection bias: small next to sigmoid scores
                            row[j] = static_cast<float>(0.05 * rng.normal());
                            break;
                    }
                }
            }
            quantize_row(t.type, row.data(), qrow.data(), ne0);
            if (Status st = w.write(qrow.data(), qrow.size()); !st) return st.error();
            done += qrow.size();
            if (o.progress && Clock::now() - last_report > std::chrono::seconds(1)) {
                o.progress(done, total, t.name);
                last_report = Clock::now();
            }
        }
    }
    if (Status st = w.finish(); !st) return st.error();
    if (o.progress) o.progress(done, total, "");
    return w.total_bytes();
}

}  // namespace latent::engine
