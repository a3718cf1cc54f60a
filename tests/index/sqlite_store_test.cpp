// The store: schema and pragmas at open, atomic batches, FTS kept in step with deletes,
// corrupt or foreign databases rebuilt with a warning, readers not blocked by a writer.
#include "index/sqlite_store.h"

#include <gtest/gtest.h>

#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "index/retrieval.h"
#include "tests/index/temp_workspace.h"

namespace latent::index {
namespace {

using testing::cat;
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

TEST(Store, ReferencesAreOneRowPerLineInColumnOrder) {
    TempDir dir;
    std::string err;
    auto s = Store::open(dir / "i.sqlite", &err);
    ASSERT_TRUE(s) << err;
    s->write({update("a.py", "def alpha():\n    return beta(gamma, beta)\n")});
    Statement st = s->prepare("SELECT line, uses FROM refs ORDER BY line");
    ASSERT_TRUE(st.step());
    EXPECT_EQ(st.int64(0), 1);
    const std::string uses = st.text(1);
    EXPECT_EQ(uses, "11 beta\n16 gamma\n23 beta");
    const auto parsed = parse_uses(uses);
    ASSERT_EQ(parsed.size(), 3u);
    EXPECT_EQ(parsed[1].col, 16u);
    EXPECT_EQ(parsed[1].name, "gamma");
    // A column window: [12, 20] holds gamma only; [0, 11] stops at beta's first use.
    const auto window = parse_uses(uses, 12, 20);
    ASSERT_EQ(window.size(), 1u);
    EXPECT_EQ(window[0].name, "gamma");
    const auto first = parse_uses(uses, 0, 11);
    ASSERT_EQ(first.size(), 1u);
    EXPECT_EQ(first[0].col, 11u);
    EXPECT_TRUE(parse_uses(uses, 24).empty());
    EXPECT_FALSE(st.step());
    EXPECT_EQ(s->counts().refs, 3);
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

// `--db notes.txt` (or the index.db setting) on a user's file: an error, and the file is
// left exactly as it was. So is another program's SQLite database.
TEST(Store, AFileThatIsNotALatentIndexIsNeverOverwritten) {
    TempDir dir;
    const std::string notes(10000, 'x');
    dir.write("notes.txt", notes);
    std::string err;
    EXPECT_FALSE(Store::open(dir / "notes.txt", &err));
    EXPECT_NE(err.find("not a Latent index"), std::string::npos) << err;
    std::ifstream in(dir / "notes.txt", std::ios::binary);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), notes);
    {
        sqlite3* raw = nullptr;
        ASSERT_EQ(sqlite3_open((dir / "other.db").c_str(), &raw), SQLITE_OK);
        sqlite3_exec(raw, "CREATE TABLE t(x); INSERT INTO t VALUES (42)", nullptr, nullptr,
                     nullptr);
        sqlite3_close(raw);
    }
    EXPECT_FALSE(is_latent_index(dir / "other.db"));
    EXPECT_FALSE(Store::open(dir / "other.db", &err));
    EXPECT_TRUE(std::filesystem::file_size(dir / "other.db") > 0);
    // An index of ours is, new or old; a missing or empty file may become one.
    ASSERT_TRUE(Store::open(dir / "i.sqlite", &err)) << err;
    EXPECT_TRUE(is_latent_index(dir / "i.sqlite"));
    EXPECT_TRUE(is_latent_index(dir / "missing.sqlite"));
    dir.write("empty.sqlite", "");
    EXPECT_TRUE(Store::open(dir / "empty.sqlite", &err)) << err;
    // A database another connection of ours has just created: its header written by the
    // first pragma, no table yet (a folder removed and added again at once raced on this).
    {
        sqlite3* raw = nullptr;
        ASSERT_EQ(sqlite3_open((dir / "fresh.sqlite").c_str(), &raw), SQLITE_OK);
        sqlite3_exec(raw, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
        sqlite3_close(raw);
    }
    ASSERT_GE(std::filesystem::file_size(dir / "fresh.sqlite"), 100u);
    EXPECT_TRUE(is_latent_index(dir / "fresh.sqlite"));
    EXPECT_TRUE(Store::open(dir / "fresh.sqlite", &err)) << err;
}

// The first schema (version 1), as it was released.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE files(
  id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, language TEXT NOT NULL,
  size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, hash INTEGER NOT NULL,
  flags INTEGER NOT NULL DEFAULT 0);
CREATE TABLE symbols(
  id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  name TEXT NOT NULL, kind TEXT NOT NULL, container TEXT NOT NULL,
  start_line INTEGER NOT NULL, start_col INTEGER NOT NULL,
  end_line INTEGER NOT NULL, end_col INTEGER NOT NULL,
  start_byte INTEGER NOT NULL, end_byte INTEGER NOT NULL,
  name_line INTEGER NOT NULL, name_col INTEGER NOT NULL,
  signature TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX symbols_name ON symbols(name);
CREATE INDEX symbols_file ON symbols(file_id);
CREATE TABLE refs(
  file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  name TEXT NOT NULL, line INTEGER NOT NULL, col INTEGER NOT NULL);
CREATE INDEX refs_file_line ON refs(file_id, line);
CREATE INDEX refs_name ON refs(name);
CREATE TABLE imports(
  file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  line INTEGER NOT NULL, text TEXT NOT NULL);
CREATE INDEX imports_file ON imports(file_id);
CREATE TABLE chunks(
  id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  kind TEXT NOT NULL, name TEXT NOT NULL,
  start_line INTEGER NOT NULL, end_line INTEGER NOT NULL,
  start_byte INTEGER NOT NULL, end_byte INTEGER NOT NULL, text TEXT NOT NULL);
CREATE INDEX chunks_file ON chunks(file_id, start_line);
CREATE VIRTUAL TABLE chunks_fts USING fts5(name, text, content='chunks', content_rowid='id');
CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
  INSERT INTO chunks_fts(rowid, name, text) VALUES (new.id, new.name, new.text);
END;
CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
  INSERT INTO chunks_fts(chunks_fts, rowid, name, text) VALUES ('delete', old.id, old.name, old.text);
END;
CREATE VIRTUAL TABLE symbols_fts USING fts5(name, content='symbols', content_rowid='id');
CREATE TRIGGER symbols_ai AFTER INSERT ON symbols BEGIN
  INSERT INTO symbols_fts(rowid, name) VALUES (new.id, new.name);
END;
CREATE TRIGGER symbols_ad AFTER DELETE ON symbols BEGIN
  INSERT INTO symbols_fts(symbols_fts, rowid, name) VALUES ('delete', old.id, old.name);
END;
)sql";

// Every schema object as (type, name, sql): what "the same schema" means.
std::vector<std::string> schema_of(Store& s) {
    std::vector<std::string> out;
    Statement st = s.prepare(
        "SELECT type, name, ifnull(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
        "ORDER BY type, name");
    while (st.step()) out.push_back(st.text(0) + " " + st.text(1) + ": " + st.text(2));
    return out;
}

TEST(Store, Version1IsMigratedStepByStepKeepingItsRows) {
    TempDir dir;
    const std::string db = dir / "i.sqlite";
    {
        sqlite3* raw = nullptr;
        ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
        std::unique_ptr<sqlite3, SqliteCloser> h(raw);
        const std::string sql = cat(
            {"PRAGMA foreign_keys=ON; BEGIN;", kSchemaV1,
             "INSERT INTO meta VALUES('schema_version', '1'), ('root', '/ws');"
             "INSERT INTO files(id, path, language, size, mtime_ns, hash) "
             "  VALUES (1, 'a.py', 'python', 30, 7, 42);"
             "INSERT INTO symbols(file_id, name, kind, container, start_line, start_col, end_line,"
             "  end_col, start_byte, end_byte, name_line, name_col, signature, doc)"
             "  VALUES (1, 'alpha', 'function', '', 0, 0, 1, 17, 0, 30, 0, 4, 'def alpha():', '');"
             "INSERT INTO refs VALUES (1, 'beta', 1, 11), (1, 'beta', 1, 11), (1, 'gamma', 1, 4);"
             "INSERT INTO chunks(file_id, kind, name, start_line, end_line, start_byte, end_byte,"
             "  text) VALUES (1, 'definition', 'alpha', 0, 1, 0, 30,"
             "  'def alpha():\n    return beta()\n');"
             "COMMIT;"});
        ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
            << sqlite3_errmsg(raw);
    }
    std::vector<std::string> warnings;
    StoreOptions o;
    o.warn = [&](const std::string& w) { warnings.push_back(w); };
    std::string err;
    auto s = Store::open(db, &err, o);
    ASSERT_TRUE(s) << err;
    EXPECT_TRUE(warnings.empty()) << warnings[0];
    EXPECT_EQ(s->meta("schema_version"), std::to_string(kSchemaVersion));
    EXPECT_EQ(s->meta("root"), "/ws");
    // Rows kept (the duplicate reference folded by the new key), FTS still in step.
    const auto c = s->counts();
    EXPECT_EQ(c.files, 1);
    EXPECT_EQ(c.symbols, 1);
    EXPECT_EQ(c.refs, 2);
    EXPECT_EQ(c.chunks, 1);
    Retrieval r(*s);
    EXPECT_EQ(r.definitions("alpha").size(), 1u);
    ASSERT_EQ(r.search("beta", 5).size(), 1u);
    // The same schema as a new index, object for object.
    TempDir fresh_dir;
    auto fresh = Store::open(fresh_dir / "i.sqlite", &err);
    ASSERT_TRUE(fresh) << err;
    EXPECT_EQ(schema_of(*s), schema_of(*fresh));
    // And it works as one: replacing the file replaces its FTS rows.
    s->write({update("a.py", "def delta():\n    pass\n")});
    EXPECT_TRUE(r.search("beta", 5).empty());
    EXPECT_EQ(r.search("delta", 5).size(), 1u);
    s->exec("INSERT INTO chunks_fts(chunks_fts) VALUES('integrity-check')");
    s->exec("INSERT INTO symbols_fts(symbols_fts) VALUES('integrity-check')");
}

TEST(Store, UnknownOrNewerSchemaIsRebuilt) {
    for (const char* version : {"0", "99"}) {
        TempDir dir;
        const std::string db = dir / "i.sqlite";
        {
            std::string err;
            auto s = Store::open(db, &err);
            ASSERT_TRUE(s) << err;
            s->write({update("a.py", "def a():\n    pass\n")});
            s->set_meta("schema_version", version);
        }
        std::vector<std::string> warnings;
        StoreOptions o;
        o.warn = [&](const std::string& w) { warnings.push_back(w); };
        std::string err;
        auto s = Store::open(db, &err, o);
        ASSERT_TRUE(s) << err;
        ASSERT_EQ(warnings.size(), 1u);
        EXPECT_NE(warnings[0].find(cat({"schema version ", version})), std::string::npos)
            << warnings[0];
        EXPECT_EQ(s->counts().files, 0);
        EXPECT_EQ(s->meta("schema_version"), std::to_string(kSchemaVersion));
    }
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
