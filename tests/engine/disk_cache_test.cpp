// DiskCache: page files round-trip, corrupt or truncated files are misses, the size
// budget deletes the least recently used; with PrefixCache, evicted pages come back from
// disk and a "restarted" cache finds its prefix again with the same results.
#include "engine/disk_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "engine/prefix_cache.h"
#include "engine/reference.h"
#include "tests/support/test_models.h"

namespace latent::engine {
namespace {

namespace fs = std::filesystem;

class DiskCacheTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir = test::temp_dir() + "/kv-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name();
        fs::remove_all(dir);
    }
    DiskCache::Options options(uint64_t budget_files = 100) const {
        DiskCache::Options o;
        o.dir = dir;
        o.n_layer = 2, o.page_tokens = 4, o.row_width = 3;
        o.budget_bytes = budget_files * (40 + 16 + 2 * 4 * 3 * 4 + 8);
        return o;
    }
    static std::vector<float> rows(float base) {
        std::vector<float> r(2 * 4 * 3);
        for (size_t i = 0; i < r.size(); ++i) r[i] = base + static_cast<float>(i);
        return r;
    }
    std::string file_of(uint64_t key) const {
        char name[32];
        std::snprintf(name, sizeof(name), "/%016llx.kvp", static_cast<unsigned long long>(key));
        return dir + name;
    }
    std::string dir;
    const std::vector<int32_t> toks = {1, 2, 3, 4};
};

TEST_F(DiskCacheTest, RoundTripAcrossReopen) {
    {
        auto d = DiskCache::open(options());
        ASSERT_TRUE(d.ok()) << d.error().message;
        ASSERT_TRUE((*d)->store(42, 7, toks, rows(1).data()).ok());
        EXPECT_TRUE(fs::exists(file_of(42)));
        EXPECT_EQ(fs::file_size(file_of(42)), (*d)->file_bytes());
    }
    auto d = DiskCache::open(options());
    ASSERT_TRUE(d.ok());
    EXPECT_TRUE((*d)->contains(42));
    std::vector<float> got(24);
    ASSERT_TRUE((*d)->load(42, 7, toks, got.data()));
    EXPECT_EQ(got, rows(1));
    // Another parent or other tokens under the same key: a miss, the file stays.
    EXPECT_FALSE((*d)->load(42, 8, toks, got.data()));
    EXPECT_FALSE((*d)->load(42, 7, std::vector<int32_t>{1, 2, 3, 5}, got.data()));
    EXPECT_TRUE((*d)->contains(42));
}

TEST_F(DiskCacheTest, CorruptAndTruncatedFilesAreIgnoredAndDeleted) {
    auto d = DiskCache::open(options());
    ASSERT_TRUE(d.ok());
    ASSERT_TRUE((*d)->store(1, 0, toks, rows(1).data()).ok());
    ASSERT_TRUE((*d)->store(2, 0, toks, rows(2).data()).ok());
    {
        std::fstream f(file_of(1), std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(70);
        f.put('\x5a');  // one byte of the rows
    }
    fs::resize_file(file_of(2), fs::file_size(file_of(2)) - 3);
    std::vector<float> got(24);
    EXPECT_FALSE((*d)->load(1, 0, toks, got.data()));
    EXPECT_FALSE((*d)->load(2, 0, toks, got.data()));
    EXPECT_FALSE(fs::exists(file_of(1)));
    EXPECT_FALSE(fs::exists(file_of(2)));
    EXPECT_EQ((*d)->stats().corrupt, 2u);
    EXPECT_EQ((*d)->stats().files, 0u);
}

TEST_F(DiskCacheTest, BudgetDeletesTheLeastRecentlyUsedFile) {
    auto d = DiskCache::open(options(2));
    ASSERT_TRUE(d.ok());
    std::vector<float> got(24);
    ASSERT_TRUE((*d)->store(1, 0, toks, rows(1).data()).ok());
    ASSERT_TRUE((*d)->store(2, 0, toks, rows(2).data()).ok());
    ASSERT_TRUE((*d)->load(1, 0, toks, got.data()));  // 1 is now more recent than 2
    ASSERT_TRUE((*d)->store(3, 0, toks, rows(3).data()).ok());
    EXPECT_TRUE((*d)->contains(1));
    EXPECT_FALSE((*d)->contains(2));
    EXPECT_FALSE(fs::exists(file_of(2)));
    EXPECT_TRUE((*d)->contains(3));
}

// Only store()'s own temporary names, and only old ones, are deleted at open: a young one
// may be another process's page being written, and a user's file is never ours to delete.
TEST_F(DiskCacheTest, OnlyOldTempFilesOfOurOwnAreRemovedAtOpen) {
    fs::create_directories(dir);
    const auto old = fs::file_time_type::clock::now() - kStaleTempAge - std::chrono::minutes(1);
    const std::vector<std::string> keep = {"0000000000000002.kvp.tmp.77",  // young: in use
                                           "x.tmp.1", "notes.tmp.txt", "0000000000000003.kvp.tmp.",
                                           "000000000000000g.kvp.tmp.5"};
    for (const auto& n : keep) std::ofstream(dir + "/" + n) << "someone's";
    for (const auto& n :
         {"x.tmp.1", "notes.tmp.txt", "0000000000000003.kvp.tmp.", "000000000000000g.kvp.tmp.5"})
        fs::last_write_time(dir + "/" + n, old);
    std::ofstream(dir + "/0000000000000001.kvp.tmp.123") << "partial";
    fs::last_write_time(dir + "/0000000000000001.kvp.tmp.123", old);
    auto d = DiskCache::open(options());
    ASSERT_TRUE(d.ok());
    EXPECT_FALSE(fs::exists(dir + "/0000000000000001.kvp.tmp.123"));
    for (const auto& n : keep) EXPECT_TRUE(fs::exists(dir + "/" + n)) << n;
    EXPECT_EQ((*d)->stats().files, 0u);
}

TEST(ModelIdentity, SameFileSameIdAnotherSeedAnotherId) {
    MakeModelOptions o;
    o.preset = "tiny";
    o.quant = GgmlType::kQ8_0;
    const std::string a = test::make_test_model(o);
    o.seed = 2;
    const std::string b = test::make_test_model(o);
    auto ma = Model::load(a), mb = Model::load(b);
    ASSERT_TRUE(ma.ok() && mb.ok());
    auto ia = model_identity(a, (*ma)->file().data_offset());
    auto ia2 = model_identity(a, (*ma)->file().data_offset());
    auto ib = model_identity(b, (*mb)->file().data_offset());
    ASSERT_TRUE(ia.ok() && ib.ok() && ia2.ok());
    EXPECT_EQ(ia->size(), 16u);
    EXPECT_EQ(*ia, *ia2);
    EXPECT_NE(*ia, *ib);
    EXPECT_FALSE(model_identity("/nonexistent/model.gguf", 0).ok());
}

TEST(DefaultKvDir, FollowsXdgCacheHome) {
    const char* old = std::getenv("XDG_CACHE_HOME");
    const std::string saved = old ? old : "";
    ::setenv("XDG_CACHE_HOME", "/x/cache", 1);
    EXPECT_EQ(default_kv_dir("abc"), "/x/cache/latent/kv/abc");
    if (old)
        ::setenv("XDG_CACHE_HOME", saved.c_str(), 1);
    else
        ::unsetenv("XDG_CACHE_HOME");
}

// The two tiers together, with the model.
class DiskTierModelTest : public DiskCacheTest {
protected:
    void SetUp() override {
        DiskCacheTest::SetUp();
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
    DiskCache::Options disk_options() const {
        const HParams& hp = model->hparams();
        DiskCache::Options o;
        o.dir = dir;
        o.n_layer = hp.n_layer, o.page_tokens = 4, o.row_width = hp.kv_lora_rank + hp.n_rot;
        return o;
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

TEST_F(DiskTierModelTest, EvictedPagesComeBackFromDiskWithTheSameResults) {
    const auto p = ids(13, 5);  // three full pages and one token
    LatentCache fresh_cache(config());
    SeqCache fresh(fresh_cache);
    const auto want = compute(fresh, p);

    auto disk = DiskCache::open(disk_options());
    ASSERT_TRUE(disk.ok());
    LatentCache cache(config());
    const uint64_t page = cache.page_bytes();
    PrefixCache pc(cache, {.budget_bytes = 8 * page, .disk = disk->get()});
    {
        SeqCache s(cache);
        compute(s, p);
        pc.insert(p, s);
    }
    while (pc.evict_one(true)) {
    }
    EXPECT_EQ(pc.stats().spills, 3u);  // the partial page is not spilled
    EXPECT_EQ(pc.peek(p), 0);
    SeqCache s(cache);
    const auto m = pc.attach(p, s, 12);
    EXPECT_EQ(m.n_tokens, 12);
    EXPECT_EQ(m.from_disk, 12);
    EXPECT_EQ(compute(s, p), want);
}

TEST_F(DiskTierModelTest, PinnedPagesAreWrittenToDiskAtOnce) {
    const auto p = ids(10, 7);
    auto disk = DiskCache::open(disk_options());
    ASSERT_TRUE(disk.ok());
    LatentCache cache(config());
    PrefixCache pc(cache, {.budget_bytes = 1 << 20, .disk = disk->get()});
    SeqCache s(cache);
    compute(s, p);
    pc.insert(p, s);
    EXPECT_EQ((*disk)->stats().files, 0u);
    EXPECT_EQ(pc.pin("file:///a.cpp", p), 10);
    EXPECT_EQ((*disk)->stats().files, 2u);  // the whole pages; the partial one stays in RAM
}

TEST_F(DiskTierModelTest, ARestartedProcessGetsItsPrefixBack) {
    const auto p = ids(9, 6);
    LatentCache fresh_cache(config());
    SeqCache fresh(fresh_cache);
    const auto want = compute(fresh, p);
    {
        auto disk = DiskCache::open(disk_options());
        ASSERT_TRUE(disk.ok());
        LatentCache cache(config());
        PrefixCache pc(cache, {.budget_bytes = 1 << 20, .disk = disk->get()});
        SeqCache s(cache);
        compute(s, p);
        pc.insert(p, s);
    }  // the cache writes its pages out as it goes
    auto disk = DiskCache::open(disk_options());
    ASSERT_TRUE(disk.ok());
    EXPECT_EQ((*disk)->stats().files, 2u);
    LatentCache cache(config());
    PrefixCache pc(cache, {.budget_bytes = 1 << 20, .disk = disk->get()});
    SeqCache s(cache);
    EXPECT_EQ(pc.attach(p, s, 8).from_disk, 8);
    EXPECT_EQ(compute(s, p), want);

    // A corrupted page file is a miss: computed again, same result.
    for (const auto& e : fs::directory_iterator(dir)) {
        std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(100);
        f.put('\x11');
    }
    auto disk2 = DiskCache::open(disk_options());
    ASSERT_TRUE(disk2.ok());
    LatentCache cache2(config());
    PrefixCache pc2(cache2, {.budget_bytes = 1 << 20, .disk = disk2->get()});
    SeqCache s2(cache2);
    EXPECT_EQ(pc2.attach(p, s2, 8).n_tokens, 0);
    EXPECT_EQ(compute(s2, p), want);
    EXPECT_EQ((*disk2)->stats().corrupt, 1u);  // the first page; the second is never asked
}

}  // namespace
}  // namespace latent::engine
