// Model loading: every preset and flag of make-model loads with the hyper-parameters
// it was written with; determinism of make-model; one clear error for each kind of
// bad file (wrong architecture, missing tensor, wrong shape, unsupported type).
#include "engine/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <iterator>

#include "engine/gguf_writer.h"
#include "engine/make_model.h"
#include "tests/support/test_models.h"

namespace latent::engine {
namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

MakeModelOptions opts(const std::string& preset, GgmlType q = GgmlType::kF16) {
    MakeModelOptions o;
    o.preset = preset;
    o.quant = q;
    return o;
}

// Copies a GGUF, letting `edit` change metadata or drop/alter tensors on the way.
struct Rewrite {
    std::function<bool(const std::string& key, GgufValue& v)> kv;  // false: drop
    std::function<bool(GgufTensorInfo& t)> tensor;                 // false: drop
};
std::string rewrite(const std::string& src, const std::string& name, const Rewrite& r) {
    auto f = GgufFile::open(src);
    EXPECT_TRUE(f.ok());
    GgufWriter w;
    for (auto [key, v] : (*f)->metadata())
        if (!r.kv || r.kv(key, v)) w.set_value(key, v);
    std::vector<GgufTensorInfo> kept;
    for (GgufTensorInfo t : (*f)->tensors()) {
        if (r.tensor && !r.tensor(t)) continue;
        std::vector<int64_t> ne(t.ne, t.ne + std::max<uint32_t>(t.n_dims, 1));
        w.add_tensor(t.name, ne, t.type);
        kept.push_back(t);
    }
    const std::string out = test::temp_dir() + "/" + name + ".gguf";
    EXPECT_TRUE(w.begin(out).ok());
    for (const GgufTensorInfo& t : kept) {
        uint64_t n = row_bytes(t.type, t.ne[0]) * t.ne[1] * t.ne[2] * t.ne[3];
        std::vector<uint8_t> zeros;
        const uint8_t* src_data = t.data;
        if (n > (*f)->find_tensor(t.name)->n_bytes) {  // a tensor made bigger
            zeros.assign(n, 0);
            src_data = zeros.data();
        }
        EXPECT_TRUE(w.write(src_data, n).ok());
    }
    EXPECT_TRUE(w.finish().ok());
    return out;
}

void expect_load_error(const std::string& path, const std::string& needle) {
    auto m = Model::load(path);
    ASSERT_FALSE(m.ok()) << "loaded a model that should fail with: " << needle;
    EXPECT_NE(m.error().message.find(needle), std::string::npos) << m.error().message;
    EXPECT_EQ(m.error().message.rfind(path, 0), 0u) << "the error must name the file";
}

TEST(MakeModel, SameSeedSameBytesOtherSeedOtherBytes) {
    MakeModelOptions o = opts("tiny", GgmlType::kQ8_0);
    o.out = test::temp_dir() + "/det-a.gguf";
    ASSERT_TRUE(make_model(o, test::small_vocab()).ok());
    o.out = test::temp_dir() + "/det-b.gguf";
    ASSERT_TRUE(make_model(o, test::small_vocab()).ok());
    o.seed = 2;
    o.out = test::temp_dir() + "/det-c.gguf";
    ASSERT_TRUE(make_model(o, test::small_vocab()).ok());
    const std::string a = read_file(test::temp_dir() + "/det-a.gguf");
    EXPECT_GT(a.size(), 10000u);
    EXPECT_EQ(a, read_file(test::temp_dir() + "/det-b.gguf"));
    EXPECT_NE(a, read_file(test::temp_dir() + "/det-c.gguf"));
}

TEST(MakeModel, RejectsUnknownPreset) {
    MakeModelOptions o = opts("huge");
    o.out = test::temp_dir() + "/huge.gguf";
    auto r = make_model(o, test::small_vocab());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("unknown preset 'huge'"), std::string::npos);
}

TEST(MakeModel, StorageTypeFallsBackForSmallRows) {
    EXPECT_EQ(storage_type(GgmlType::kQ4_K, "blk.0.ffn_up.weight", 256, 2), GgmlType::kQ4_K);
    EXPECT_EQ(storage_type(GgmlType::kQ4_K, "blk.0.ffn_up.weight", 64, 2), GgmlType::kQ8_0);
    EXPECT_EQ(storage_type(GgmlType::kQ8_0, "blk.0.attn_k_b.weight", 16, 3), GgmlType::kF16);
    EXPECT_EQ(storage_type(GgmlType::kQ8_0, "blk.1.ffn_gate_inp.weight", 32, 2), GgmlType::kF32);
    EXPECT_EQ(storage_type(GgmlType::kQ8_0, "blk.0.attn_norm.weight", 32, 1), GgmlType::kF32);
}

TEST(Model, TinyLoadsWithItsShapes) {
    auto m = Model::load(test::make_test_model(opts("tiny")));
    ASSERT_TRUE(m.ok()) << m.error().message;
    const HParams& hp = (*m)->hparams();
    EXPECT_EQ(hp.n_layer, 3u);
    EXPECT_EQ(hp.n_embd, 32u);
    EXPECT_EQ(hp.n_head, 4u);
    EXPECT_EQ(hp.q_lora_rank, 32u);
    EXPECT_EQ(hp.kv_lora_rank, 32u);
    EXPECT_EQ(hp.n_embd_head_qk_nope, 16u);
    EXPECT_EQ(hp.n_rot, 8u);
    EXPECT_EQ(hp.n_embd_head_v, 16u);
    EXPECT_EQ(hp.n_expert, 8u);
    EXPECT_EQ(hp.n_expert_used, 2u);
    EXPECT_EQ(hp.n_expert_groups, 4u);
    EXPECT_EQ(hp.gating, GatingFunc::kSigmoid);
    EXPECT_TRUE(hp.expert_weights_norm);
    EXPECT_FLOAT_EQ(hp.expert_weights_scale, 2.5f);
    EXPECT_TRUE(hp.split_kv_b);
    EXPECT_TRUE(hp.rope_yarn);
    const auto& w = (*m)->weights();
    EXPECT_TRUE(w.layers[0].ffn_gate && !w.layers[0].is_moe());
    EXPECT_TRUE(w.layers[1].is_moe() && w.layers[1].exp_probs_b && w.layers[1].ffn_gate_shexp);
    EXPECT_TRUE(w.layers[2].attn_q_a && !w.layers[2].attn_q);
}

TEST(Model, KqScaleMatchesDeepSeekFigures) {
    // ENGINE_SPEC §3.3: mscale 1.3688879454 (V3, log multiplier 0.1) and
    // 1.2608037774 (Coder-V2-Lite, 0.0707); kq_scale = mscale^2 / sqrt(n + r).
    auto v3 = Model::load(test::make_test_model(opts("tiny")));
    auto lite = Model::load(test::make_test_model(opts("tiny-v2")));
    ASSERT_TRUE(v3.ok() && lite.ok());
    EXPECT_NEAR((*v3)->hparams().kq_scale() * std::sqrt(24.0), 1.3688879454 * 1.3688879454, 1e-5);
    EXPECT_NEAR((*lite)->hparams().kq_scale() * std::sqrt(24.0), 1.2608037774 * 1.2608037774, 1e-5);
    // Lite's full head (n + r = 192): the spec's 0.1147213868.
    EXPECT_NEAR(1.2608037774 * 1.2608037774 / std::sqrt(192.0), 0.1147213868, 1e-9);
}

TEST(Model, FlagsChangeTheArchitectureAsAsked) {
    MakeModelOptions o = opts("tiny");
    o.v3_gating = false;
    o.q_lora = false;
    o.split_kv = false;
    o.mtp = true;
    auto m = Model::load(test::make_test_model(o));
    ASSERT_TRUE(m.ok()) << m.error().message;
    const HParams& hp = (*m)->hparams();
    EXPECT_EQ(hp.gating, GatingFunc::kSoftmax);
    EXPECT_EQ(hp.n_expert_groups, 0u);
    EXPECT_FALSE(hp.expert_weights_norm);
    EXPECT_EQ(hp.q_lora_rank, 0u);
    EXPECT_FALSE(hp.split_kv_b);
    EXPECT_EQ(hp.n_layer, 3u);
    EXPECT_EQ(hp.n_nextn, 1u);
    const auto& w = (*m)->weights();
    EXPECT_TRUE(w.layers[0].attn_q && w.layers[0].attn_kv_b);
    EXPECT_FALSE(w.layers[1].exp_probs_b);
    EXPECT_TRUE(w.layers[3].nextn_eh_proj && w.layers[3].nextn_shared_head_head);
}

TEST(Model, LoadsEveryComputableQuantType) {
    for (const char* q : {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k"}) {
        auto m = Model::load(test::make_test_model(opts("tiny", *parse_type_name(q))));
        EXPECT_TRUE(m.ok()) << q << ": " << (m.ok() ? "" : m.error().message);
    }
}

TEST(Model, ActiveWeightBytesCountOnlyTheRoutedExpertsUsed) {
    auto m = Model::load(test::make_test_model(opts("tiny", GgmlType::kF32)));
    ASSERT_TRUE(m.ok());
    const uint64_t active = (*m)->active_weight_bytes(), total = (*m)->total_weight_bytes();
    EXPECT_LT(active, total);
    // Two MoE layers hold 8 experts each, 2 used: 6 x 3 matrices x 32 x 32 floats unread.
    const uint64_t unread_experts = 2ull * 6 * 3 * 32 * 32 * 4;
    const uint64_t embd_rows_unread =
        (*m)->weights().token_embd.row_size() * ((*m)->hparams().n_vocab - 1);
    EXPECT_EQ(total - active, unread_experts + embd_rows_unread);
}

class ModelErrors : public ::testing::Test {
protected:
    std::string base = test::make_test_model(opts("tiny"));
};

TEST_F(ModelErrors, WrongArchitecture) {
    const std::string p = rewrite(base, "llama",
                                  {[](const std::string& k, GgufValue& v) {
                                       if (k == "general.architecture") v.s = "llama";
                                       return true;
                                   },
                                   nullptr});
    expect_load_error(p, "architecture 'llama' is not supported");
}

TEST_F(ModelErrors, MissingTensor) {
    const std::string p =
        rewrite(base, "missing",
                {nullptr, [](GgufTensorInfo& t) { return t.name != "blk.1.ffn_up_exps.weight"; }});
    expect_load_error(p, "missing tensor 'blk.1.ffn_up_exps.weight'");
}

TEST_F(ModelErrors, WrongShape) {
    const std::string p = rewrite(base, "shape", {nullptr, [](GgufTensorInfo& t) {
                                                      if (t.name == "blk.0.attn_kv_a_mqa.weight")
                                                          t.ne[1] = 48;
                                                      return true;
                                                  }});
    expect_load_error(p,
                      "tensor 'blk.0.attn_kv_a_mqa.weight' has shape [32, 48], expected [32, 40]");
}

TEST_F(ModelErrors, UnsupportedQuantType) {
    const std::string p = rewrite(base, "q4_1", {nullptr, [](GgufTensorInfo& t) {
                                                     if (t.name == "output.weight")
                                                         t.type = GgmlType::kQ4_1;
                                                     return true;
                                                 }});
    expect_load_error(p, "tensor 'output.weight' has type q4_1, which Latent does not support");
}

TEST_F(ModelErrors, MissingHyperParameterAndHostileSizes) {
    const std::string p = rewrite(
        base, "nokv",
        {[](const std::string& k, GgufValue&) { return k != "deepseek2.attention.kv_lora_rank"; },
         nullptr});
    expect_load_error(p, "missing metadata key 'deepseek2.attention.kv_lora_rank'");
    const std::string q = rewrite(base, "huge",
                                  {[](const std::string& k, GgufValue& v) {
                                       if (k == "deepseek2.expert_count") v.u = 1u << 30;
                                       return true;
                                   },
                                   nullptr});
    expect_load_error(q, "expert_count");
    const std::string r = rewrite(base, "used",
                                  {[](const std::string& k, GgufValue& v) {
                                       if (k == "deepseek2.expert_used_count") v.u = 9;
                                       return true;
                                   },
                                   nullptr});
    expect_load_error(r, "expert_used_count");
}

}  // namespace
}  // namespace latent::engine

namespace latent::engine {
namespace {

TEST_F(ModelErrors, PerLayerFeedForwardLengthArrayIsAccepted) {
    // Some converters write feed_forward_length per layer; the dense layers' value counts.
    const std::string p = rewrite(base, "ffarray",
                                  {[](const std::string& k, GgufValue& v) {
                                       if (k == "deepseek2.feed_forward_length") {
                                           const int64_t n_ff = static_cast<int64_t>(v.u);
                                           v.type = GgufType::kArray;
                                           v.arr_type = GgufType::kUint32;
                                           v.arr_int = {n_ff, 0, 0};
                                       }
                                       return true;
                                   },
                                   nullptr});
    auto m = Model::load(p);
    ASSERT_TRUE(m.ok()) << m.error().message;
    EXPECT_EQ((*m)->hparams().n_ff, 96u);
    const std::string q = rewrite(base, "ffbad",
                                  {[](const std::string& k, GgufValue& v) {
                                       if (k == "deepseek2.feed_forward_length") {
                                           v.type = GgufType::kArray;
                                           v.arr_type = GgufType::kUint32;
                                           v.arr_int = {};
                                       }
                                       return true;
                                   },
                                   nullptr});
    expect_load_error(q, "feed_forward_length array");
}

}  // namespace
}  // namespace latent::engine
