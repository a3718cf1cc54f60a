// Session: prefix reuse must give exactly what recomputing gives, and the paged cache
// must hand pages back when a session shrinks or ends.
#include "engine/session.h"

#include <gtest/gtest.h>

#include <cmath>

#include "engine/prefix_cache.h"
#include "engine/reference.h"
#include "tests/support/test_models.h"

namespace latent::engine {
namespace {

class SessionTest : public ::testing::Test {
protected:
    void SetUp() override {
        MakeModelOptions o;
        o.preset = "tiny";
        o.quant = GgmlType::kQ8_0;
        auto m = Model::load(test::make_test_model(o));
        ASSERT_TRUE(m.ok()) << m.error().message;
        model = std::move(*m);
    }
    LatentCache cache() const {
        const HParams& hp = model->hparams();
        return LatentCache(LatentCache::Config{hp.n_layer, hp.kv_lora_rank, hp.n_rot, 4});
    }
    std::vector<int32_t> ids(int n, uint32_t seed) const {
        std::vector<int32_t> v(static_cast<size_t>(n));
        for (int32_t& id : v)
            id = static_cast<int32_t>((seed = seed * 1664525u + 1013904223u) %
                                      model->hparams().n_vocab);
        return v;
    }
    std::vector<float> fresh_prefill(const std::vector<int32_t>& p) {
        LatentCache c = cache();
        Session s(*model, backend, c);
        auto r = s.prefill(p);
        EXPECT_TRUE(r.ok());
        EXPECT_EQ(r->n_reused, 0);
        EXPECT_EQ(r->n_computed, static_cast<int32_t>(p.size()));
        return r->logits;
    }
    static void expect_close(const std::vector<float>& a, const std::vector<float>& b) {
        ASSERT_EQ(a.size(), b.size());
        double scale = 0, diff = 0;
        for (size_t i = 0; i < a.size(); ++i) {
            scale = std::max(scale, double(std::fabs(a[i])));
            diff = std::max(diff, double(std::fabs(a[i] - b[i])));
        }
        EXPECT_LE(diff, 1e-5 * scale);
        EXPECT_GT(scale, 0.0);
    }
    std::unique_ptr<Model> model;
    ReferenceBackend backend;
};

TEST_F(SessionTest, PrefillOfABEqualsPrefillOfAThenB) {
    const auto a = ids(9, 1), b = ids(6, 2);
    std::vector<int32_t> ab = a;
    ab.insert(ab.end(), b.begin(), b.end());
    const auto whole = fresh_prefill(ab);

    LatentCache c = cache();
    Session s(*model, backend, c);
    ASSERT_TRUE(s.prefill(a).ok());
    auto r = s.prefill(ab);  // holds A: only B is computed
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->n_reused, 9);
    EXPECT_EQ(r->n_computed, 6);
    expect_close(whole, r->logits);
}

TEST_F(SessionTest, ReuseAfterADivergingEditEqualsRecomputing) {
    auto p1 = ids(14, 3);
    auto p2 = p1;
    p2[10] = (p2[10] + 1) % 200;  // an edit at token 10 (inside the third page of 4)
    p2.push_back(5);
    LatentCache c = cache();
    Session s(*model, backend, c);
    ASSERT_TRUE(s.prefill(p1).ok());
    auto r = s.prefill(p2);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->n_reused, 10);
    EXPECT_EQ(r->n_computed, 5);
    expect_close(fresh_prefill(p2), r->logits);
    EXPECT_EQ(s.tokens(), p2);
}

TEST_F(SessionTest, SamePromptTwiceRecomputesOnlyTheLastToken) {
    const auto p = ids(7, 4);
    LatentCache c = cache();
    Session s(*model, backend, c);
    auto first = s.prefill(p);
    ASSERT_TRUE(first.ok());
    auto again = s.prefill(p);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->n_reused, 6);
    EXPECT_EQ(again->n_computed, 1);
    expect_close(first->logits, again->logits);
}

TEST_F(SessionTest, DecodeAfterPrefillEqualsPrefillOfTheLongerPrompt) {
    auto p = ids(5, 5);
    LatentCache c = cache();
    Session s(*model, backend, c);
    ASSERT_TRUE(s.prefill(p).ok());
    auto l = s.decode(42);
    ASSERT_TRUE(l.ok());
    p.push_back(42);
    expect_close(fresh_prefill(p), *l);
}

TEST_F(SessionTest, ChunkedPrefillEqualsOneShot) {
    const auto p = ids(11, 6);
    LatentCache c = cache();
    Session s(*model, backend, c);
    auto r = s.prefill(p, 3);
    ASSERT_TRUE(r.ok());
    expect_close(fresh_prefill(p), r->logits);
}

TEST_F(SessionTest, PagesAreReturnedOnTruncateAndDestruction) {
    LatentCache c = cache();
    {
        Session s(*model, backend, c);
        ASSERT_TRUE(s.prefill(ids(10, 7)).ok());
        EXPECT_EQ(c.pages_in_use(), 3u);  // 10 tokens, pages of 4
        s.truncate(4);
        EXPECT_EQ(c.pages_in_use(), 1u);
        EXPECT_EQ(s.n_tokens(), 4);
    }
    EXPECT_EQ(c.pages_in_use(), 0u);
}

TEST_F(SessionTest, CacheBudgetIsAnErrorNotACrash) {
    const HParams& hp = model->hparams();
    LatentCache::Config cfg{hp.n_layer, hp.kv_lora_rank, hp.n_rot, 4};
    cfg.max_bytes = 2 * uint64_t(hp.n_layer) * 4 * (hp.kv_lora_rank + hp.n_rot) * sizeof(float);
    LatentCache c(cfg);  // room for two pages: 8 tokens
    Session s(*model, backend, c);
    EXPECT_TRUE(s.prefill(ids(8, 8)).ok());
    auto r = s.prefill(ids(9, 8));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("latent cache is full"), std::string::npos);
}

TEST_F(SessionTest, SessionsShareAPrefixCache) {
    const auto p = ids(11, 9);
    const auto whole = fresh_prefill(p);
    LatentCache c = cache();
    PrefixCache pc(c, {.budget_bytes = 1 << 20});
    Session a(*model, backend, c), b(*model, backend, c);
    a.set_prefix_cache(&pc);
    b.set_prefix_cache(&pc);
    ASSERT_TRUE(a.prefill(p).ok());
    auto r = b.prefill(p);  // a's two whole pages; the rest computed
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->n_reused, 8);
    EXPECT_EQ(r->n_computed, 3);
    expect_close(whole, r->logits);
    EXPECT_EQ(b.tokens(), p);
    // b writes into pages it shares with the cache only after copying them.
    auto next = b.decode(5);
    ASSERT_TRUE(next.ok());
    auto again = a.prefill(p);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->n_reused, 10);  // its own tokens: longer than the cache's 8
    expect_close(whole, again->logits);
}

TEST(CommonPrefix, Lengths) {
    const std::vector<int32_t> a = {1, 2, 3}, b = {1, 2, 4, 5}, e;
    EXPECT_EQ(common_prefix(a, b), 2);
    EXPECT_EQ(common_prefix(a, a), 3);
    EXPECT_EQ(common_prefix(a, e), 0);
}

}  // namespace
}  // namespace latent::engine
