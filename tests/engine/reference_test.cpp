// The reference forward pass: its building blocks against hand-computed values, and
// whole-model properties that only hold if the math is right — split and single kv_b
// layouts agree, a batch equals token-by-token, quantized files track the f32 file of
// the same seed, RoPE keeps norms and places YaRN's ramp where the spec says.
#include "engine/reference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <numeric>

#include "engine/rope.h"
#include "engine/session.h"
#include "tests/support/test_models.h"

namespace latent::engine {
namespace {

MakeModelOptions opts(const std::string& preset, GgmlType q = GgmlType::kF32) {
    MakeModelOptions o;
    o.preset = preset;
    o.quant = q;
    return o;
}

std::unique_ptr<Model> load(const MakeModelOptions& o, bool real_vocab = false) {
    auto m = Model::load(test::make_test_model(o, real_vocab));
    EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
    return m.ok() ? std::move(*m) : nullptr;
}

LatentCache make_cache(const Model& m, uint32_t page_tokens = 16) {
    const HParams& hp = m.hparams();
    return LatentCache(LatentCache::Config{hp.n_layer, hp.kv_lora_rank, hp.n_rot, page_tokens});
}

std::vector<int32_t> prompt_ids(const Model& m, int n, uint32_t seed = 1) {
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (int32_t& id : ids)
        id = static_cast<int32_t>((seed = seed * 1103515245u + 12345u) % m.hparams().n_vocab);
    return ids;
}

// Logits of every token of `ids` run as one batch.
std::vector<float> all_logits(const Model& m, const std::vector<int32_t>& ids) {
    ReferenceBackend b;
    LatentCache c = make_cache(m);
    Session s(m, b, c);
    auto r = s.append_all(ids);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : std::vector<float>();
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    EXPECT_EQ(a.size(), b.size());
    double d = 0;
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
        d = std::max(d, double(std::fabs(a[i] - b[i])));
    return d;
}

double rms(const std::vector<float>& a) {
    double s = 0;
    for (float x : a) s += double(x) * x;
    return std::sqrt(s / a.size());
}

TEST(ReferenceMath, RmsNormAndSilu) {
    float x[4] = {1, -2, 3, -4};
    const float w[4] = {1, 1, 2, 0.5f};
    ref::rms_norm(x, w, 4, 0.0f);
    const float s = 1.0f / std::sqrt((1 + 4 + 9 + 16) / 4.0f);
    EXPECT_NEAR(x[0], 1 * s, 1e-6);
    EXPECT_NEAR(x[1], -2 * s, 1e-6);
    EXPECT_NEAR(x[2], 6 * s, 1e-6);
    EXPECT_NEAR(x[3], -2 * s, 1e-6);
    EXPECT_NEAR(ref::silu(1.0f), 1.0f / (1.0f + std::exp(-1.0f)), 1e-7);
    EXPECT_NEAR(ref::silu(-20.0f), -20.0f / (1.0f + std::exp(20.0f)), 1e-9);
}

TEST(ReferenceMath, YarnRampMatchesTheSpec) {
    // ENGINE_SPEC §3.2: r = 64, L_orig 4096, base 1e4, beta 32/1 -> lo = 10, hi = 23.
    const RopeParams p = make_rope_params(64, 10000.0f, 40.0f, true, 4096, 32.0f, 1.0f, 1.0f);
    EXPECT_EQ(p.corr_lo, 10.0f);
    EXPECT_EQ(p.corr_hi, 23.0f);
    // Below lo: pure extrapolation (base^(-2i/r)); above hi: interpolation (/ 40).
    EXPECT_NEAR(rope_theta(p, 1, 0), 1.0, 1e-12);
    EXPECT_NEAR(rope_theta(p, 1, 5), std::pow(10000.0, -10.0 / 64), 1e-12);
    EXPECT_NEAR(rope_theta(p, 1, 30), std::pow(10000.0, -60.0 / 64) / 40, 1e-12);
    const double g = 1.0 - (16.0 - 10.0) / 13.0;  // pair 16, inside the ramp
    const double ext = std::pow(10000.0, -32.0 / 64);
    EXPECT_NEAR(rope_theta(p, 1, 16), ext / 40 * (1 - g) + ext * g, 1e-9);
}

TEST(ReferenceMath, RopeRotatesAdjacentPairsAndKeepsNorms) {
    const RopeParams p = make_rope_params(8, 10000.0f, 1.0f, false, 4096, 32, 1, 1);
    float x[8] = {1, 0, 0, 1, 3, 4, -1, 2};
    rope_apply(p, 5, x);
    EXPECT_NEAR(x[0], std::cos(5.0), 1e-6);  // pair 0: theta = pos
    EXPECT_NEAR(x[1], std::sin(5.0), 1e-6);
    const double th1 = 5 * std::pow(10000.0, -2.0 / 8);
    EXPECT_NEAR(x[2], -std::sin(th1), 1e-6);
    EXPECT_NEAR(x[3], std::cos(th1), 1e-6);
    EXPECT_NEAR(x[4] * x[4] + x[5] * x[5], 25.0, 1e-4);
    EXPECT_NEAR(x[6] * x[6] + x[7] * x[7], 5.0, 1e-4);
    float y[8] = {1, 2, 3, 4, 5, 6, 7, 8}, z[8];
    std::copy_n(y, 8, z);
    rope_apply(p, 0, y);  // position 0 is the identity
    for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(y[i], z[i]);
}

TEST(ReferenceMath, RoutingSoftmaxTopK) {
    HParams hp;
    hp.n_expert = 4, hp.n_expert_used = 2, hp.gating = GatingFunc::kSoftmax;
    const float logits[4] = {0.0f, 2.0f, 1.0f, -1.0f};
    const ref::Routing r = ref::route(hp, logits, nullptr);
    const double z = 1 + std::exp(2.0) + std::exp(1.0) + std::exp(-1.0);
    ASSERT_EQ(r.experts, (std::vector<int32_t>{1, 2}));
    EXPECT_NEAR(r.weights[0], std::exp(2.0) / z, 1e-6);  // unnormalised softmax weights
    EXPECT_NEAR(r.weights[1], std::exp(1.0) / z, 1e-6);
}

TEST(ReferenceMath, RoutingSigmoidBiasGroupsNormScale) {
    HParams hp;
    hp.n_expert = 8, hp.n_expert_used = 2, hp.gating = GatingFunc::kSigmoid;
    hp.n_expert_groups = 4, hp.n_group_used = 2, hp.expert_weights_norm = true;
    hp.expert_weights_scale = 2.5f;
    // Groups {0,1} {2,3} {4,5} {6,7}. Expert 6 has the best single score but its group
    // (sum of the top two) loses; the bias moves selection but not the weights.
    const float logits[8] = {1.0f, 1.0f, 0.5f, 0.6f, 2.0f, -3.0f, 3.0f, -4.0f};
    const float bias[8] = {0, 0, 0, 0, 0, 0, 0, 0.0f};
    auto sig = [](float v) { return 1.0 / (1.0 + std::exp(-v)); };
    // Group sums: g0 = 2 sig(1) = 1.462, g1 = sig(.5)+sig(.6) = 1.268, g2 = sig(2)+sig(-3) = 0.928,
    // g3 = sig(3)+sig(-4) = 0.971 -> keep g0, g1; top-2 of {0,1,2,3}: experts 0 and 1.
    ref::Routing r = ref::route(hp, logits, bias);
    ASSERT_EQ(r.experts.size(), 2u);
    EXPECT_EQ(std::min(r.experts[0], r.experts[1]), 0);
    EXPECT_EQ(std::max(r.experts[0], r.experts[1]), 1);
    EXPECT_NEAR(r.weights[0], 2.5 * 0.5, 1e-6);  // normalised over the two, then scaled
    // A bias that lifts expert 3 above expert 1 changes the choice, not the weight formula.
    const float bias2[8] = {0, 0, 0, 0.5f, 0, 0, 0, 0};
    r = ref::route(hp, logits, bias2);
    EXPECT_EQ(r.experts[0], 3);
    EXPECT_EQ(r.experts[1], 0);
    EXPECT_NEAR(r.weights[0], 2.5 * sig(0.6) / (sig(0.6) + sig(1.0)), 1e-6);
}

TEST(Reference, SplitAndSingleKvLayoutsAreTheSameModel) {
    // make-model draws k_b/v_b as the halves of one kv_b, so in f32 the two files hold
    // identical weights: their logits must agree to float rounding.
    for (bool q_lora : {true, false}) {
        MakeModelOptions a = opts("tiny"), b = opts("tiny");
        a.q_lora = b.q_lora = q_lora;
        b.split_kv = false;
        auto ma = load(a), mb = load(b);
        ASSERT_TRUE(ma && mb);
        const auto ids = prompt_ids(*ma, 12);
        const auto la = all_logits(*ma, ids), lb = all_logits(*mb, ids);
        EXPECT_LT(max_abs_diff(la, lb), 1e-4 * rms(la)) << "q_lora " << q_lora;
        EXPECT_GT(rms(la), 0.1) << "logits should not vanish";
    }
}

TEST(Reference, BatchEqualsTokenByToken) {
    for (bool v3 : {true, false}) {
        MakeModelOptions o = opts("tiny");
        o.v3_gating = v3;
        auto m = load(o);
        ASSERT_TRUE(m);
        const auto ids = prompt_ids(*m, 20, 7);
        const auto batch = all_logits(*m, ids);
        ReferenceBackend b;
        LatentCache c = make_cache(*m, 8);  // pages of 8: the sequence spans three
        Session s(*m, b, c);
        std::vector<float> one_by_one;
        for (int32_t id : ids) {
            auto l = s.decode(id);
            ASSERT_TRUE(l.ok());
            one_by_one.insert(one_by_one.end(), l->begin(), l->end());
        }
        EXPECT_LT(max_abs_diff(batch, one_by_one), 1e-5 * rms(batch));
    }
}

TEST(Reference, QuantizedFilesTrackTheF32FileOfTheSameSeed) {
    auto f32 = load(opts("tiny", GgmlType::kF32));
    ASSERT_TRUE(f32);
    const auto ids = prompt_ids(*f32, 8, 3);
    const auto ref = all_logits(*f32, ids);
    // Bounds: relative RMS error of the logits after three layers, which amplify the
    // weights' own error (0.5 % for q8_0, 8.6 % for q4_0) by about four; measured
    // 0.0002 (f16) .. 0.46 (q4_0). Unrelated logits give sqrt(2) = 1.41, so a wrong
    // dequantization of any tensor fails.
    const std::pair<const char*, double> cases[] = {{"f16", 0.002}, {"bf16", 0.03}, {"q8_0", 0.04},
                                                    {"q6_k", 0.12}, {"q5_k", 0.25}, {"q4_k", 0.5},
                                                    {"q4_0", 0.7}};
    for (const auto& [name, bound] : cases) {
        auto m = load(opts("tiny", *parse_type_name(name)));
        ASSERT_TRUE(m);
        const auto l = all_logits(*m, ids);
        std::vector<float> diff(l.size());
        for (size_t i = 0; i < l.size(); ++i) diff[i] = l[i] - ref[i];
        const double rel = rms(diff) / rms(ref);
        EXPECT_LT(rel, bound) << name;
        std::printf("%s: relative logit error %.4f\n", name, rel);
    }
}

TEST(Reference, RejectsTokensOutsideTheVocabulary) {
    auto m = load(opts("tiny"));
    ASSERT_TRUE(m);
    ReferenceBackend b;
    LatentCache c = make_cache(*m);
    Session s(*m, b, c);
    const int32_t bad[2] = {1, static_cast<int32_t>(m->hparams().n_vocab)};
    auto r = s.prefill(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("outside the vocabulary"), std::string::npos);
    EXPECT_EQ(s.n_tokens(), 0);
}

TEST(Reference, TinyV2PathRuns) {
    // 27 layers, no q-LoRA, softmax gating, two shared experts: the Coder-V2-Lite path.
    auto m = load(opts("tiny-v2"));
    ASSERT_TRUE(m);
    const auto l = all_logits(*m, prompt_ids(*m, 4));
    EXPECT_GT(rms(l), 0.1);
    for (float x : l) ASSERT_TRUE(std::isfinite(x));
}

}  // namespace
}  // namespace latent::engine
