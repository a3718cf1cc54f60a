// The store: schema and pragmas at open, atomic batches, FTS kept in step with deletes,
// corrupt or foreign databases rebuilt with a warning, readers not blocked by a writer.
#include "index/sqlite_store.h"

#include <gtest/gtest.h>

#include <fstream>

#include "index/retrieval.h"
#include "tests/index/temp_workspace.h"

namespace latent::index {
namespace {

using testing::TempDir;

FileUpdate update(const std::string& path, const std::string& text) {
    FileUpdate u;
    u.file.path = path;
    u.file.language = "python";
    u.file.size = static_cast<int64_t>(text.size());
    u.file.hash = 42;
    u.text = text;
    Extractor ex;
    u.extraction = ex.extract(*language_named("python"), text);
    return u;
}

std::string pragma(Store& s, const char* sql) {
    Statement st = s.prepare(sql);
    return st.step() ? st.text(0) : "";
}

TEST(Store, OpenSetsWalForeignKeysAndSchemaVersion) {
    TempDir dir;
    std::string err;
    auto s = Store::open(dir / "i.sqlite", &err);
    ASSERT_TRUE(s) << err;
    EXPECT_EQ(pragma(*s, "PRAGMA journal_mode"), "wal");
    EXPECT_EQ(pragma(*s, "PRAGMA foreign_keys"), "1");
    EXPECT_EQ(s->meta("schema_version"), std::to_string(kSchemaVersion));
}

TEST(Store, WriteReplaceAndRemoveKeepFtsInStep) {
    TempDir dir;
    std::string err;
    auto s = Store::open(dir / "i.sqlite", &err);
    ASSERT_TRUE(s) << err;
    s->write({update("a.py", "def alpha():\n    return beta()\n"),
              update("b.py", "def gamma():\n    pass\n")});
    auto c = s->counts();
    EXPECT_EQ(c.files, 2);
    EXPECT_EQ(c.symbols, 2);
    Retrieval r(*s);
    ASSERT_EQ(r.search("beta", 5).size(), 1u);
    // Replacing a file replaces its rows.
    s->write({update("a.py", "def delta():\n    pass\n")});
    EXPECT_TRUE(r.search("beta", 5).empty());
    EXPECT_EQ(r.definitions("alpha").size(), 0u);
    EXPECT_EQ(r.definitions("delta").size(), 1u);
    s->remove({"a.py", "b.py"});
    c = s->counts();
    EXPECT_EQ(c.files + c.symbols + c.refs + c.chunks, 0);
    EXPECT_TRUE(r.search("gamma", 5).empty());
    s->exec("INSERT INTO chunks_fts(chunks_fts) VALUES('integrity-check')");
    s->exec("INSERT INTO symbols_fts(symbols_fts) VALUES('integrity-check')");
}

TEST(Store, CorruptDatabaseIsRebuiltWithAWarning) {
    TempDir dir;
    const std::string db = dir / "i.sqlite";
    {
        std::string err;
        auto s = Store::open(db, &err);
        ASSERT_TRUE(s) << err;
        std::vector<FileUpdate> many;
        for (int i = 0; i < 200; ++i) {
            const std::string n = std::to_string(i);
            std::string text = "def f";
            text += n;
            text += "(x):\n    return x * ";
            text += n;
            text += "\n";
            many.push_back(update("f" + n + ".py", text));
        }
        s->write(many);
        s->exec("PRAGMA wal_checkpoint(TRUNCATE)");
    }
    const auto size = std::filesystem::file_size(db);
    ASSERT_GT(size, 64u * 1024);
    {
        std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(size / 2));
        const std::string junk(8192, '\x5a');
        f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    std::vector<std::string> warnings;
    StoreOptions o;
    o.warn = [&](const std::string& w) { warnings.push_back(w); };
    std::string err;
    auto s = Store::open(db, &err, o);
    ASSERT_TRUE(s) << err;
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("damaged"), std::string::npos) << warnings[0];
    EXPECT_EQ(s->counts().files, 0);
    s->write({update("a.py", "def a():\n    pass\n")});
    EXPECT_EQ(s->counts().files, 1);
}

TEST(Store, NotADatabaseIsRebuilt) {
    TempDir dir;
    dir.write("i.sqlite", std::string(10000, 'x'));
    int warned = 0;
    StoreOptions o;
    o.warn = [&](const std::string&) { ++warned; };
    std::string err;
    auto s = Store::open(dir / "i.sqlite", &err, o);
    ASSERT_TRUE(s) << err;
    EXPECT_EQ(warned, 1);
    EXPECT_EQ(s->meta("schema_version"), std::to_string(kSchemaVersion));
}

TEST(Store, OlderSchemaIsRebuilt) {
    TempDir dir;
    const std::string db = dir / "i.sqlite";
    {
        std::string err;
        auto s = Store::open(db, &err);
        ASSERT_TRUE(s) << err;
        s->write({update("a.py", "def a():\n    pass\n")});
        s->set_meta("schema_version", "0");
    }
    std::vector<std::string> warnings;
    StoreOptions o;
    o.warn = [&](const std::string& w) { warnings.push_back(w); };
    std::string err;
    auto s = Store::open(db, &err, o);
    ASSERT_TRUE(s) << err;
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("schema version 0"), std::string::npos) << warnings[0];
    EXPECT_EQ(s->counts().files, 0);
    EXPECT_EQ(s->meta("schema_version"), std::to_string(kSchemaVersion));
}

TEST(Store, ReadersSeeTheLastCommitWhileAWriterIsInATransaction) {
    TempDir dir;
    std::string err;
    auto w = Store::open(dir / "i.sqlite", &err);
    ASSERT_TRUE(w) << err;
    w->write({update("a.py", "def a():\n    pass\n")});
    StoreOptions ro;
    ro.read_only = true;
    auto r = Store::open(dir / "i.sqlite", &err, ro);
    ASSERT_TRUE(r) << err;
    w->exec("BEGIN IMMEDIATE");
    w->exec("DELETE FROM files");
    EXPECT_EQ(r->counts().files, 1);  // no SQLITE_BUSY, the committed state
    w->exec("COMMIT");
    EXPECT_EQ(r->counts().files, 0);
}

}  // namespace
}  // namespace latent::index
