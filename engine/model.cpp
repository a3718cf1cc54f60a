// Maps GGUF metadata keys and tensor names of arch "deepseek2" onto HParams and Weights
// (ENGINE_SPEC §2.2-2.4), checking every shape. Key and tensor names are data here so
// that the table reads like llama.cpp's llama-arch.cpp.
#include "engine/model.h"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace latent::engine {
namespace {

constexpr const char* kArch = "deepseek2";

std::string key(const char* suffix) { return std::string(kArch) + "." + suffix; }

std::string blk(uint32_t il, const char* name) { return "blk." + std::to_string(il) + "." + name; }

// Collects the first error so the loader reads as a straight list of lookups.
class Loader {
public:
    Loader(const GgufFile& f) : f_(f) {}
    bool failed() const { return !error_.empty(); }
    const std::string& error() const { return error_; }
    void fail(const std::string& why) {
        if (error_.empty()) error_ = f_.path() + ": " + why;
    }
    void fail_as_is(const std::string& message) {
        if (error_.empty()) error_ = message;
    }

    uint32_t u32(const std::string& k, std::optional<uint32_t> def = std::nullopt) {
        auto v = f_.get_uint(k);
        if (!v) return error_.empty() ? (error_ = v.error().message, 0) : 0;
        if (!*v) {
            if (!def) fail("missing metadata key '" + k + "'");
            return def.value_or(0);
        }
        if (**v > 0xFFFFFFFFull) fail("metadata '" + k + "' is out of range");
        return static_cast<uint32_t>(**v);
    }
    float f32(const std::string& k, float def) {
        auto v = f_.get_float(k);
        if (!v) return error_.empty() ? (error_ = v.error().message, def) : def;
        return *v ? static_cast<float>(**v) : def;
    }
    bool boolean(const std::string& k, bool def) {
        auto v = f_.get_bool(k);
        if (!v) return error_.empty() ? (error_ = v.error().message, def) : def;
        return v->value_or(def);
    }
    std::string str(const std::string& k, const std::string& def) {
        auto v = f_.get_string(k);
        if (!v) return error_.empty() ? (error_ = v.error().message, def) : def;
        return v->value_or(def);
    }

    // A tensor with exactly the shape `ne` (trailing 1s implied). Absent: error if
    // required, else an empty view.
    Tensor tensor(const std::string& name, std::vector<int64_t> ne, bool required = true) {
        Tensor t;
        const GgufTensorInfo* ti = f_.find_tensor(name);
        if (!ti) {
            if (required) fail("missing tensor '" + name + "'");
            return t;
        }
        const TypeTraits& tr = traits(ti->type);
        if (!tr.computable) {
            fail("tensor '" + name + "' has type " + tr.name +
                 ", which Latent does not support (supported: f32 f16 bf16 q8_0 q4_0 q4_K "
                 "q5_K q6_K)");
            return t;
        }
        ne.resize(4, 1);
        bool same = true;
        for (int d = 0; d < 4; ++d) same = same && ne[d] == ti->ne[d];
        if (!same) {
            std::string want = "[";
            for (size_t d = 0; d < 4 && (d == 0 || ne[d] != 1 || d < ti->n_dims); ++d)
                want += (d ? ", " : "") + std::to_string(ne[d]);
            fail("tensor '" + name + "' has shape " + ti->shape_string() + ", expected " + want +
                 "]");
            return t;
        }
        t.data = ti->data;
        t.type = ti->type;
        for (int d = 0; d < 4; ++d) t.ne[d] = ti->ne[d];
        t.name = name;
        ++used_;
        return t;
    }
    // Norms and biases: the forward passes read them as plain floats.
    Tensor f32_tensor(const std::string& name, std::vector<int64_t> ne, bool required = true) {
        Tensor t = tensor(name, std::move(ne), required);
        if (t && t.type != GgmlType::kF32) {
            fail("tensor '" + name + "' must be f32, found " + traits(t.type).name);
            return Tensor{};
        }
        return t;
    }
    size_t used() const { return used_; }

private:
    const GgufFile& f_;
    std::string error_;
    size_t used_ = 0;
};

bool load_hparams(Loader& L, const GgufFile& f, HParams& hp) {
    const std::string arch = L.str("general.architecture", "");
    if (L.failed()) return false;
    if (arch.empty()) return L.fail("missing 'general.architecture'"), false;
    if (arch != kArch)
        return L.fail("architecture '" + arch + "' is not supported (Latent runs deepseek2)"),
               false;

    hp.n_ctx_train = L.u32(key("context_length"), 4096);
    hp.n_embd = L.u32(key("embedding_length"));
    const uint32_t n_block = L.u32(key("block_count"));
    hp.n_nextn = L.u32(key("nextn_predict_layers"), 0);
    hp.n_head = L.u32(key("attention.head_count"));
    // feed_forward_length may be per layer (an array); only the dense layers use it.
    const GgufValue* ff = f.find(key("feed_forward_length"));
    const bool ff_array = ff && ff->is_array();
    hp.n_ff = ff_array ? 0 : L.u32(key("feed_forward_length"), 0);
    hp.n_layer_dense_lead = L.u32(key("leading_dense_block_count"), 0);
    hp.kv_lora_rank = L.u32(key("attention.kv_lora_rank"));
    hp.q_lora_rank = L.u32(key("attention.q_lora_rank"), 0);
    hp.n_rot = L.u32(key("rope.dimension_count"));
    hp.rms_eps = L.f32(key("attention.layer_norm_rms_epsilon"), 1e-6f);
    hp.n_expert = L.u32(key("expert_count"), 0);
    hp.n_expert_used = L.u32(key("expert_used_count"), 0);
    hp.n_expert_shared = L.u32(key("expert_shared_count"), 0);
    hp.n_ff_exp = L.u32(key("expert_feed_forward_length"), 0);
    hp.n_expert_groups = L.u32(key("expert_group_count"), 0);
    hp.n_group_used = L.u32(key("expert_group_used_count"), 0);
    const uint32_t gating = L.u32(key("expert_gating_func"), 0);
    hp.expert_weights_norm = L.boolean(key("expert_weights_norm"), false);
    hp.expert_weights_scale = L.f32(key("expert_weights_scale"), 1.0f);
    hp.rope_freq_base = L.f32(key("rope.freq_base"), 10000.0f);
    const std::string scaling = L.str(key("rope.scaling.type"), "linear");
    hp.rope_scaling_factor = L.f32(key("rope.scaling.factor"), 1.0f);
    hp.rope_orig_ctx = L.u32(key("rope.scaling.original_context_length"), hp.n_ctx_train);
    hp.yarn_beta_fast = L.f32(key("rope.scaling.yarn_beta_fast"), 32.0f);
    hp.yarn_beta_slow = L.f32(key("rope.scaling.yarn_beta_slow"), 1.0f);
    hp.rope_attn_factor = L.f32(key("rope.scaling.attn_factor"), 1.0f);
    hp.yarn_log_multiplier = L.f32(key("rope.scaling.yarn_log_multiplier"), 0.0f);
    if (L.failed()) return false;

    if (gating > 2)
        return L.fail("expert_gating_func " + std::to_string(gating) + " unknown"), false;
    hp.gating = gating == 2 ? GatingFunc::kSigmoid : GatingFunc::kSoftmax;
    if (scaling == "yarn") {
        hp.rope_yarn = true;
    } else if (scaling != "linear" && scaling != "none") {
        return L.fail("rope scaling '" + scaling + "' is not supported"), false;
    }
    if (scaling == "none") hp.rope_scaling_factor = 1.0f;
    if (hp.rope_scaling_factor <= 0 || !std::isfinite(hp.rope_scaling_factor))
        hp.rope_scaling_factor = 1.0f;
    if (hp.n_nextn >= n_block) return L.fail("nextn_predict_layers >= block_count"), false;
    hp.n_layer = n_block - hp.n_nextn;

    // Head dims: split-layout files carry *_mla keys; legacy files per-head K/V widths.
    const bool has_mla_keys = f.find(key("attention.key_length_mla")) != nullptr;
    const uint32_t k_len =
        L.u32(has_mla_keys ? key("attention.key_length_mla") : key("attention.key_length"));
    const uint32_t v_len =
        L.u32(has_mla_keys ? key("attention.value_length_mla") : key("attention.value_length"));
    if (L.failed()) return false;
    if (k_len <= hp.n_rot) return L.fail("key length must exceed the rope dimension"), false;
    hp.n_embd_head_qk_nope = k_len - hp.n_rot;
    hp.n_embd_head_v = v_len;
    hp.split_kv_b = f.find_tensor(blk(0, "attn_k_b.weight")) != nullptr;

    // Sizes from outside feed allocations and loops: keep them sane. The caps are far
    // above any DeepSeek model (V3: E 7168, H 128, 256 experts) but stop a hostile file
    // from asking for petabytes of scratch space.
    struct Cap {
        const char* what;
        uint64_t v, lo, hi;
    };
    const Cap caps[] = {
        {"embedding_length", hp.n_embd, 1, 65536},
        {"block_count", n_block, 1, 1024},
        {"attention.head_count", hp.n_head, 1, 1024},
        {"attention.kv_lora_rank", hp.kv_lora_rank, 1, 65536},
        {"attention.q_lora_rank", hp.q_lora_rank, 0, 65536},
        {"rope.dimension_count", hp.n_rot, 2, 1024},
        {"key/value length", std::max(k_len, v_len), 1, 65536},
        {"feed_forward_length", hp.n_ff, 0, 1u << 20},
        {"expert_count", hp.n_expert, 0, 4096},
        {"expert_feed_forward_length", hp.n_ff_exp, 0, 1u << 20},
    };
    for (const Cap& c : caps) {
        if (c.v < c.lo || c.v > c.hi)
            return L.fail(std::string("metadata ") + c.what + " = " + std::to_string(c.v) +
                          " is outside [" + std::to_string(c.lo) + ", " + std::to_string(c.hi) +
                          "]"),
                   false;
    }
    if (hp.n_rot % 2) return L.fail("rope.dimension_count must be even"), false;
    if (hp.n_expert > 0) {
        if (hp.n_expert_used == 0 || hp.n_expert_used > hp.n_expert)
            return L.fail("expert_used_count must be in [1, expert_count]"), false;
        if (hp.n_expert_groups > 1 &&
            (hp.n_expert % hp.n_expert_groups || hp.n_group_used == 0 ||
             hp.n_group_used > hp.n_expert_groups ||
             hp.n_expert_used > hp.n_group_used * (hp.n_expert / hp.n_expert_groups)))
            return L.fail("expert groups are inconsistent with the expert counts"), false;
    }
    if (hp.n_layer_dense_lead > hp.n_layer)
        return L.fail("leading_dense_block_count exceeds the layer count"), false;
    if (ff_array) {
        if (ff->arr_int.size() < hp.n_layer_dense_lead || ff->arr_int.empty())
            return L.fail("feed_forward_length array is shorter than the dense layers"), false;
        for (uint32_t il = 0; il < hp.n_layer_dense_lead; ++il)
            if (ff->arr_int[il] != ff->arr_int[0])
                return L.fail("dense layers of different feed_forward_length are not supported"),
                       false;
        if (ff->arr_int[0] < 0 || ff->arr_int[0] > (1 << 20))
            return L.fail("feed_forward_length is out of range"), false;
        hp.n_ff = static_cast<uint32_t>(ff->arr_int[0]);
    }
    return true;
}

// The vocabulary is read the same way for a model and a vocabulary-only file (vocab.h).
bool load_vocab(Loader& L, const GgufFile& f, Vocab& v) {
    auto read = read_gguf_vocab(f);
    if (!read) return L.fail_as_is(read.error().message), false;
    v = std::move(*read);
    return true;
}

}  // namespace

float HParams::kq_scale() const {
    float mscale = rope_attn_factor;
    if (rope_yarn && rope_scaling_factor > 1.0f) {
        const float m = yarn_log_multiplier / 0.1f;  // mscale_all_dim
        mscale *= 1.0f + 0.1f * m * std::log(rope_scaling_factor);
    }
    return mscale * mscale / std::sqrt(static_cast<float>(n_embd_head_qk()));
}

std::string HParams::describe() const {
    std::ostringstream o;
    o << "n_layer " << n_layer << (n_nextn ? " (+" + std::to_string(n_nextn) + " MTP)" : "")
      << ", n_embd " << n_embd << ", n_head " << n_head << ", q_lora "
      << (q_lora_rank ? std::to_string(q_lora_rank) : "none") << ", kv_lora " << kv_lora_rank
      << ", nope/rope/v " << n_embd_head_qk_nope << "/" << n_rot << "/" << n_embd_head_v
      << ", experts " << n_expert << " (used " << n_expert_used << ", shared " << n_expert_shared
      << "), gating " << (gating == GatingFunc::kSigmoid ? "sigmoid" : "softmax") << ", kv_b "
      << (split_kv_b ? "split" : "single") << ", vocab " << n_vocab;
    return o.str();
}

Expected<std::unique_ptr<Model>> Model::load(const std::string& path) {
    auto file = GgufFile::open(path);
    if (!file) return file.error();
    return from_gguf(std::move(*file));
}

Expected<std::unique_ptr<Model>> Model::from_gguf(std::unique_ptr<GgufFile> file) {
    std::unique_ptr<Model> m(new Model());
    m->file_ = std::move(file);
    const GgufFile& f = *m->file_;
    Loader L(f);
    HParams& hp = m->hp_;
    if (!load_hparams(L, f, hp) || !load_vocab(L, f, m->vocab_)) return make_error(L.error());
    hp.n_vocab = static_cast<uint32_t>(m->vocab_.tokens.size());

    const int64_t E = hp.n_embd, V = hp.n_vocab, H = hp.n_head, n = hp.n_embd_head_qk_nope,
                  r = hp.n_rot, v = hp.n_embd_head_v, Lr = hp.kv_lora_rank, X = hp.n_expert,
                  fe = hp.n_ff_exp, S = hp.n_expert_shared, qr = hp.q_lora_rank;
    Weights& w = m->w_;
    w.token_embd = L.tensor("token_embd.weight", {E, V});
    w.output_norm = L.f32_tensor("output_norm.weight", {E});
    w.output = L.tensor("output.weight", {E, V});
    const bool q_lora = f.find_tensor(blk(0, "attn_q_a.weight")) != nullptr;
    if (q_lora && qr == 0) L.fail("attn_q_a present but attention.q_lora_rank is missing");
    if (!q_lora) hp.q_lora_rank = 0;

    const uint32_t n_total = hp.n_layer + hp.n_nextn;
    w.layers.resize(n_total);
    for (uint32_t il = 0; il < n_total && !L.failed(); ++il) {
        LayerWeights& l = w.layers[il];
        auto t = [&](const char* name, std::vector<int64_t> ne, bool req = true) {
            return L.tensor(blk(il, name), std::move(ne), req);
        };
        auto t32 = [&](const char* name, std::vector<int64_t> ne, bool req = true) {
            return L.f32_tensor(blk(il, name), std::move(ne), req);
        };
        l.attn_norm = t32("attn_norm.weight", {E});
        if (q_lora) {
            l.attn_q_a = t("attn_q_a.weight", {E, qr});
            l.attn_q_a_norm = t32("attn_q_a_norm.weight", {qr});
            l.attn_q_b = t("attn_q_b.weight", {qr, H * (n + r)});
        } else {
            l.attn_q = t("attn_q.weight", {E, H * (n + r)});
        }
        l.attn_kv_a_mqa = t("attn_kv_a_mqa.weight", {E, Lr + r});
        l.attn_kv_a_norm = t32("attn_kv_a_norm.weight", {Lr});
        if (hp.split_kv_b) {
            l.attn_k_b = t("attn_k_b.weight", {n, Lr, H});
            l.attn_v_b = t("attn_v_b.weight", {Lr, v, H});
        } else {
            l.attn_kv_b = t("attn_kv_b.weight", {Lr, H * (n + v)});
        }
        l.attn_output = t("attn_output.weight", {H * v, E});
        l.ffn_norm = t32("ffn_norm.weight", {E});
        if (il < hp.n_layer_dense_lead) {
            if (hp.n_ff == 0) L.fail("dense layers need feed_forward_length");
            l.ffn_gate = t("ffn_gate.weight", {E, hp.n_ff});
            l.ffn_up = t("ffn_up.weight", {E, hp.n_ff});
            l.ffn_down = t("ffn_down.weight", {hp.n_ff, E});
        } else {
            if (X == 0 || fe == 0)
                L.fail("MoE layers need expert_count and expert_feed_forward_length");
            l.ffn_gate_inp = t("ffn_gate_inp.weight", {E, X});
            l.exp_probs_b = t32("exp_probs_b.bias", {X}, false);
            l.ffn_gate_exps = t("ffn_gate_exps.weight", {E, fe, X});
            l.ffn_up_exps = t("ffn_up_exps.weight", {E, fe, X});
            l.ffn_down_exps = t("ffn_down_exps.weight", {fe, E, X});
            if (S > 0) {
                l.ffn_gate_shexp = t("ffn_gate_shexp.weight", {E, fe * S});
                l.ffn_up_shexp = t("ffn_up_shexp.weight", {E, fe * S});
                l.ffn_down_shexp = t("ffn_down_shexp.weight", {fe * S, E});
            }
        }
        if (il >= hp.n_layer) {
            l.nextn_eh_proj = t("nextn.eh_proj.weight", {2 * E, E});
            l.nextn_enorm = t32("nextn.enorm.weight", {E});
            l.nextn_hnorm = t32("nextn.hnorm.weight", {E});
            l.nextn_shared_head_norm = t32("nextn.shared_head_norm.weight", {E}, false);
            l.nextn_shared_head_head = t("nextn.shared_head_head.weight", {E, V}, false);
            l.nextn_embed_tokens = t("nextn.embed_tokens.weight", {E, V}, false);
        }
    }
    if (L.failed()) return make_error(L.error());
    return m;
}

uint64_t Model::total_weight_bytes() const {
    uint64_t total = 0;
    for (const GgufTensorInfo& t : file_->tensors()) total += t.n_bytes;
    return total;
}

uint64_t Model::active_weight_bytes() const {
    auto bytes = [](const Tensor& t) -> uint64_t {
        return t ? t.row_size() * static_cast<uint64_t>(t.rows()) : 0;
    };
    const HParams& hp = hp_;
    uint64_t total = w_.token_embd.row_size() + bytes(w_.output_norm) + bytes(w_.output);
    for (uint32_t il = 0; il < hp.n_layer; ++il) {
        const LayerWeights& l = w_.layers[il];
        for (const Tensor* t :
             {&l.attn_norm,   &l.attn_q,         &l.attn_q_a,       &l.attn_q_a_norm,
              &l.attn_q_b,    &l.attn_kv_a_mqa,  &l.attn_kv_a_norm, &l.attn_kv_b,
              &l.attn_k_b,    &l.attn_v_b,       &l.attn_output,    &l.ffn_norm,
              &l.ffn_gate,    &l.ffn_up,         &l.ffn_down,       &l.ffn_gate_inp,
              &l.exp_probs_b, &l.ffn_gate_shexp, &l.ffn_up_shexp,   &l.ffn_down_shexp})
            total += bytes(*t);
        if (l.is_moe() && hp.n_expert > 0) {
            const uint64_t per_expert =
                (bytes(l.ffn_gate_exps) + bytes(l.ffn_up_exps) + bytes(l.ffn_down_exps)) /
                hp.n_expert;
            total += per_expert * hp.n_expert_used;
        }
    }
    return total;
}

}  // namespace latent::engine
