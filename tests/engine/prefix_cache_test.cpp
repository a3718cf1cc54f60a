// PrefixCache: sharing pages between sequences, copy-on-write of a shared partial page,
// LRU eviction under a budget with pins last, and results equal to recomputing.
#include "engine/prefix_cache.h"

#include <gtest/gtest.h>

#include "engine/reference.h"
#include "engine/session.h"
#include "tests/support/test_models.h"

namespace latent::engine {
namespace {

// Pages of 4 tokens; rows filled by hand (no model) for the tree's own tests.
class PrefixTreeTest : public ::testing::Test {
protected:
    static constexpr uint32_t kLayers = 2, kRank = 3, kRot = 1, kPage = 4;
    LatentCache::Config config(uint64_t max_pages = 64) const {
        LatentCache::Config c{kLayers, kRank, kRot, kPage};
        c.max_bytes = max_pages * kLayers * kPage * (kRank + kRot) * sizeof(float);
        return c;
    }
    // A sequence holding `tokens`, each row filled with the token id.
    static void fill(SeqCache& seq, const std::vector<int32_t>& tokens) {
        ASSERT_TRUE(seq.reserve(static_cast<int32_t>(tokens.size()) - seq.n_tokens()).ok());
        for (int32_t pos = seq.n_tokens(); pos < static_cast<int32_t>(tokens.size()); ++pos)
            for (uint32_t l = 0; l < kLayers; ++l)
                for (uint32_t i = 0; i < kRank + kRot; ++i)
                    seq.row(pos, l)[i] = static_cast<float>(tokens[pos] * 10 + l);
        seq.commit(static_cast<int32_t>(tokens.size()) - seq.n_tokens());
    }
    static std::vector<int32_t> seq_of(int n, int32_t first) {
        std::vector<int32_t> v;
        for (int i = 0; i < n; ++i) v.push_back(first + i);
        return v;
    }
    uint64_t page_bytes() const { return kLayers * kPage * (kRank + kRot) * sizeof(float); }
};

// Page generations name the contents copies elsewhere hold (the CUDA backend's device
// pages): they change when a page is allocated, copied into, or cut into by a sequence,
// and not when rows fill its empty slots or a cut falls on its boundary.
TEST_F(PrefixTreeTest, PageGenerationsChangeWhenRowsMayBeOverwritten) {
    LatentCache cache(config()), other(config());
    EXPECT_NE(cache.id(), other.id());
    SeqCache s(cache);
    fill(s, seq_of(6, 1));  // pages 0 (full) and 1 (2 rows)
    const int32_t p0 = s.pages()[0], p1 = s.pages()[1];
    const uint64_t g0 = cache.generation(p0), g1 = cache.generation(p1);
    EXPECT_NE(g0, g1);
    fill(s, seq_of(8, 1));  // rows into page 1's empty slots
    EXPECT_EQ(cache.generation(p1), g1);
    s.truncate(4);  // on page 1's start: page 1 is dropped, page 0 untouched
    EXPECT_EQ(cache.generation(p0), g0);
    s.truncate(2);  // inside page 0: its rows 2 and 3 will be written over
    EXPECT_NE(cache.generation(p0), g0);
    const uint64_t g0b = cache.generation(p0);
    SeqCache t(cache);
    t.adopt(s.pages(), 2);
    fill(t, seq_of(3, 1));  // writing into the shared page copies it: a new page
    EXPECT_NE(t.pages()[0], p0);
    EXPECT_NE(cache.generation(t.pages()[0]), g0b);
    EXPECT_EQ(cache.generation(p0), g0b);
    // A freed page allocated again is a new generation.
    s.truncate(0);
    t.truncate(0);
    SeqCache u(cache);
    fill(u, seq_of(4, 9));
    for (int32_t p : u.pages()) EXPECT_NE(cache.generation(p), g0b);
}

TEST_F(PrefixTreeTest, SecondSequenceSharesTheFirstOnesPages) {
    LatentCache cache(config());
    PrefixCache pc(cache, {.budget_bytes = 1 << 20});
    const auto a = seq_of(10, 100);  // two full pages and 2 tokens
    {
        SeqCache s(cache);
        fill(s, a);
        pc.insert(a, s);
    }
    EXPECT_EQ(pc.stats().nodes, 3u);
    EXPECT_EQ(cache.pages_in_use(), 3u);

    auto b = a;
    b.resize(8);
    b.push_back(7);  // shares two full pages, then differs
    SeqCache s(cache);
    auto m = pc.attach(b, s);
    EXPECT_EQ(m.n_tokens, 8);
    EXPECT_EQ(s.n_tokens(), 8);
    EXPECT_EQ(s.pages()[0], 0);
    EXPECT_EQ(cache.ref_count(s.pages()[0]), 2u);  // the tree's and the sequence's
    EXPECT_EQ(cache.pages_in_use(), 3u);           // nothing copied
    EXPECT_EQ(s.row(5, 1)[0], 105 * 10 + 1);
    EXPECT_EQ(pc.peek(a), 10);
    EXPECT_EQ(pc.peek(b), 8);
}

TEST_F(PrefixTreeTest, WritingIntoASharedPartialPageCopiesIt) {
    LatentCache cache(config());
    PrefixCache pc(cache, {.budget_bytes = 1 << 20});
    const auto a = seq_of(6, 100);  // one full page, then 100+4, 100+5
    {
        SeqCache s(cache);
        fill(s, a);
        pc.insert(a, s);
    }
    auto b = seq_of(5, 100);
    b.push_back(999);  // shares 5 tokens: one token into a's partial page
    SeqCache s(cache);
    ASSERT_EQ(pc.attach(b, s).n_tokens, 5);
    const int32_t shared = s.pages()[1];
    EXPECT_EQ(cache.ref_count(shared), 2u);
    fill(s, b);  // writes position 5 of the shared page
    EXPECT_NE(s.pages()[1], shared);
    EXPECT_EQ(cache.ref_count(shared), 1u);
    EXPECT_EQ(s.row(4, 0)[0], 104 * 10);  // copied
    EXPECT_EQ(s.row(5, 0)[0], 999 * 10);
    // The cached page still has a's token 5.
    SeqCache again(cache);
    ASSERT_EQ(pc.attach(a, again).n_tokens, 6);
    EXPECT_EQ(again.row(5, 0)[0], 105 * 10);
}

TEST_F(PrefixTreeTest, APartialLeafGrowsIntoTheLongerPage) {
    LatentCache cache(config());
    PrefixCache pc(cache, {.budget_bytes = 1 << 20});
    const auto a = seq_of(6, 100);
    const auto longer = seq_of(9, 100);
    for (const auto* t : {&a, &longer}) {
        SeqCache s(cache);
        fill(s, *t);
        pc.insert(*t, s);
    }
    EXPECT_EQ(pc.stats().nodes, 3u);  // page 0, page 1 (grown to full), page 2 (1 token)
    EXPECT_EQ(pc.peek(longer), 9);
    EXPECT_EQ(cache.pages_in_use(), 3u);
}

TEST_F(PrefixTreeTest, EvictsTheLeastRecentlyUsedLeafFirst) {
    LatentCache cache(config());
    PrefixCache pc(cache, {.budget_bytes = 3 * page_bytes()});
    const auto a = seq_of(4, 100), b = seq_of(4, 200), c = seq_of(4, 300), d = seq_of(4, 400);
    for (const auto* t : {&a, &b, &c}) {
        SeqCache s(cache);
        fill(s, *t);
        pc.insert(*t, s);
    }
    {
        SeqCache s(cache);
        pc.attach(a, s);  // a is now the most recently used
    }
    SeqCache s(cache);
    fill(s, d);
    pc.insert(d, s);  // over budget: b goes
    EXPECT_EQ(pc.peek(a), 4);
    EXPECT_EQ(pc.peek(b), 0);
    EXPECT_EQ(pc.peek(c), 4);
    EXPECT_EQ(pc.peek(d), 4);
    EXPECT_EQ(pc.stats().evictions, 1u);
    EXPECT_LE(pc.stats().bytes, pc.budget_bytes());
}

TEST_F(PrefixTreeTest, LeavesGoBeforeTheirParentsAndPagesInUseStay) {
    LatentCache cache(config());
    PrefixCache pc(cache, {.budget_bytes = 1 << 20});
    const auto a = seq_of(12, 100);
    SeqCache held(cache);
    fill(held, a);
    pc.insert(a, held);
    EXPECT_FALSE(pc.evict_one(true));  // every page is also the sequence's
    held.truncate(4);                  // keeps page 0 only
    EXPECT_TRUE(pc.evict_one(false));
    EXPECT_EQ(pc.peek(a), 8);  // the deepest page went first
    EXPECT_TRUE(pc.evict_one(false));
    EXPECT_EQ(pc.peek(a), 4);
    EXPECT_FALSE(pc.evict_one(false));  // page 0 is held
}

TEST_F(PrefixTreeTest, PinnedPagesGoOnlyWhenNothingElseCan) {
    LatentCache cache(config());
    PrefixCache pc(cache, {.budget_bytes = 2 * page_bytes()});
    const auto a = seq_of(4, 100), b = seq_of(4, 200), c = seq_of(4, 300);
    {
        SeqCache s(cache);
        fill(s, a);
        pc.insert(a, s);
    }
    EXPECT_EQ(pc.pin("file:///a.cpp", a), 4);
    EXPECT_EQ(pc.stats().pinned_nodes, 1u);
    for (const auto* t : {&b, &c}) {  // a is the oldest, but pinned
        SeqCache s(cache);
        fill(s, *t);
        pc.insert(*t, s);
    }
    EXPECT_EQ(pc.peek(a), 4);
    EXPECT_EQ(pc.peek(b), 0);
    EXPECT_EQ(pc.peek(c), 4);

    // Only pinned pages left to evict: they go, least recently used first.
    EXPECT_EQ(pc.pin("file:///c.cpp", c), 4);
    EXPECT_FALSE(pc.evict_one(false));
    EXPECT_TRUE(pc.evict_one(true));
    EXPECT_EQ(pc.peek(a), 0);
    EXPECT_EQ(pc.stats().pinned_nodes, 1u);

    pc.release("file:///c.cpp");
    EXPECT_EQ(pc.stats().pinned_nodes, 0u);
    EXPECT_TRUE(pc.evict_one(false));
    EXPECT_EQ(pc.stats().nodes, 0u);
    pc.release("file:///never-pinned");
}

TEST_F(PrefixTreeTest, AFullLatentCacheReclaimsCachedPagesInsteadOfFailing) {
    LatentCache cache(config(3));  // room for three pages in all
    PrefixCache pc(cache, {.budget_bytes = 1 << 20});
    for (int32_t first : {100, 200, 300}) {
        SeqCache s(cache);
        fill(s, seq_of(4, first));
        pc.insert(seq_of(4, first), s);
    }
    EXPECT_EQ(cache.pages_in_use(), 3u);
    SeqCache s(cache);
    fill(s, seq_of(8, 500));  // needs two pages: the two oldest cached ones go
    EXPECT_EQ(s.n_tokens(), 8);
    EXPECT_EQ(pc.peek(seq_of(4, 100)), 0);
    EXPECT_EQ(pc.peek(seq_of(4, 200)), 0);
    EXPECT_EQ(pc.peek(seq_of(4, 300)), 4);
}

TEST_F(PrefixTreeTest, DestroyingTheTreeGivesEveryPageBack) {
    LatentCache cache(config());
    {
        PrefixCache pc(cache, {.budget_bytes = 1 << 20});
        for (int32_t first : {100, 200}) {
            SeqCache s(cache);
            fill(s, seq_of(11, first));
            pc.insert(seq_of(11, first), s);
        }
        EXPECT_EQ(cache.pages_in_use(), 6u);
    }
    EXPECT_EQ(cache.pages_in_use(), 0u);
    EXPECT_FALSE(cache.reclaim);
}

// With the model: a prompt continued from cached pages gives exactly the logits of
// computing it from scratch.
class PrefixCacheModelTest : public ::testing::Test {
protected:
    void SetUp() override {
        MakeModelOptions o;
        o.preset = "tiny";
        o.quant = GgmlType::kQ8_0;
        auto m = Model::load(test::make_test_model(o));
        ASSERT_TRUE(m.ok()) << m.error().message;
        model = std::move(*m);
    }
    LatentCache::Config config() const {
        const HParams& hp = model->hparams();
        return LatentCache::Config{hp.n_layer, hp.kv_lora_rank, hp.n_rot, 4};
    }
    std::vector<int32_t> ids(int n, uint32_t seed) const {
        std::vector<int32_t> v(static_cast<size_t>(n));
        for (int32_t& id : v)
            id = static_cast<int32_t>((seed = seed * 1664525u + 1013904223u) %
                                      model->hparams().n_vocab);
        return v;
    }
    std::vector<float> compute(SeqCache& seq, const std::vector<int32_t>& prompt) {
        std::vector<float> logits;
        auto rest = std::span<const int32_t>(prompt).subspan(static_cast<size_t>(seq.n_tokens()));
        EXPECT_TRUE(backend.forward(*model, seq, rest, LogitsMode::kLast, logits).ok());
        return logits;
    }
    std::unique_ptr<Model> model;
    ReferenceBackend backend;
};

TEST_F(PrefixCacheModelTest, ContinuingFromCachedPagesEqualsRecomputing) {
    const auto p1 = ids(10, 1);
    auto p2 = p1;
    p2.resize(9);  // shares 9 tokens: two full pages and one token of a partial one
    for (int32_t id : ids(5, 2)) p2.push_back(id);

    LatentCache fresh_cache(config());
    SeqCache fresh(fresh_cache);
    const auto want = compute(fresh, p2);

    LatentCache cache(config());
    PrefixCache pc(cache, {.budget_bytes = 1 << 20});
    {
        SeqCache s(cache);
        compute(s, p1);
        pc.insert(p1, s);
    }
    SeqCache s(cache);
    const auto m = pc.attach(p2, s, static_cast<int32_t>(p2.size()) - 1);
    EXPECT_EQ(m.n_tokens, 9);
    const auto got = compute(s, p2);
    EXPECT_EQ(got, want);  // bit for bit: rows are the same floats

    // The first prompt's cached rows were not disturbed by the second's writes.
    SeqCache fresh1(fresh_cache);
    auto p1_next = p1;
    p1_next.push_back(3);
    const auto want1 = compute(fresh1, p1_next);
    SeqCache again(cache);
    EXPECT_EQ(pc.attach(p1_next, again).n_tokens, 10);
    EXPECT_EQ(compute(again, p1_next), want1);
}

}  // namespace
}  // namespace latent::engine
