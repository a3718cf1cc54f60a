// The indexer: which files it lists (git rules, .latentignore, defaults, binaries, size,
// symlink loops), re-indexing only on content change, vanished files, single-file
// updates, progress, threads giving the same index, and kill -9 in the middle.
#include "index/indexer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <thread>

#include "index/retrieval.h"
#include "tests/index/temp_workspace.h"

namespace latent::index {
namespace {

using ::testing::ElementsAre;
using testing::TempDir;

void make_tree(const TempDir& ws) {
    ws.write("a.py", "def alpha():\n    return 1\n");
    ws.write("src/b.go", "package b\n\nfunc Beta() int { return 2 }\n");
    ws.write("notes.txt", "not source\n");
    ws.write("node_modules/dep/index.js", "function dep() {}\n");
    ws.write("build/gen.c", "int gen(void) { return 0; }\n");
    ws.write("ignored/z.py", "def z():\n    pass\n");
    ws.write(".latentignore", "ignored/\n");
    ws.write("bin.c", std::string("int x;\0\0\0", 9));
    ws.write("big.c", "int big;\n" + std::string(3000, ' ') + "\n");
    std::filesystem::create_directory_symlink(ws.path(), ws / "src/loop");
    std::filesystem::create_symlink(ws / "a.py", ws / "link.py");
}

IndexerOptions opts(unsigned threads = 0) {
    IndexerOptions o;
    o.threads = threads;
    o.max_file_bytes = 2048;
    return o;
}

std::vector<std::string> paths(Store& s) {
    std::vector<std::string> out;
    for (const auto& f : s.files()) out.push_back(f.path);
    return out;
}

std::unique_ptr<Store> open_store(const std::string& path) {
    std::string err;
    auto s = Store::open(path, &err);
    EXPECT_TRUE(s) << err;
    return s;
}

TEST(Indexer, ListsSourceOutsideGitWithDefaultsAndLatentignore) {
    TempDir ws;
    make_tree(ws);
    std::string how;
    auto files = list_workspace_files(ws.path(), true, &how);
    EXPECT_THAT(files, ElementsAre("a.py", "big.c", "bin.c", "link.py", "src/b.go"));
    EXPECT_EQ(how, "git ls-files (no repository)");
}

TEST(Indexer, ListsSourceInAGitWorkTreeHonouringGitignore) {
    TempDir ws;
    make_tree(ws);
    ws.write(".gitignore", "gen_*.py\n");
    ws.write("gen_x.py", "X = 1\n");
    ws.write("third_party/lib.c", "int lib;\n");
    ASSERT_EQ(
        testing::sh(ws.path(), "git init -q . && git add a.py third_party/lib.c ignored/z.py"), 0);
    std::string how;
    auto files = list_workspace_files(ws.path(), true, &how);
    EXPECT_EQ(how, "git ls-files");
    // Tracked third_party/ and ignored/ files are still excluded (defaults, .latentignore).
    EXPECT_THAT(files, ElementsAre("a.py", "big.c", "bin.c", "link.py", "src/b.go"));
}

// A folder the user opened may not be trusted: its .git/config can name an fsmonitor hook
// that git runs for ls-files. Listing it must run nothing the repository names.
TEST(Indexer, ListingAnUntrustedRepositoryRunsNoProgramItNames) {
    TempDir ws;
    ws.write("a.py", "x = 1\n");
    ws.write("hook.sh", "#!/bin/sh\ntouch \"$(dirname \"$0\")/RAN\"\nexit 1\n");
    ASSERT_EQ(testing::sh(ws.path(),
                          "chmod +x hook.sh && git init -q && git add a.py && "
                          "git -c user.email=t@t -c user.name=t commit -qm i && "
                          "git config core.fsmonitor \"$PWD/hook.sh\""),
              0);
    // The control: plain git does run it here.
    testing::sh(ws.path(), "git ls-files -co --exclude-standard");
    ASSERT_TRUE(std::filesystem::exists(ws / "RAN")) << "this git does not run fsmonitor";
    std::filesystem::remove(ws / "RAN");
    std::string how;
    const auto files = list_workspace_files(ws.path(), true, &how);
    EXPECT_EQ(how, "git ls-files");
    EXPECT_FALSE(std::filesystem::exists(ws / "RAN")) << "the repository's hook ran";
    EXPECT_NE(std::find(files.begin(), files.end(), "a.py"), files.end());
}

TEST(Indexer, IndexesSkipsBinariesLargeFilesAndSymlinks) {
    TempDir ws, db;
    make_tree(ws);
    auto s = open_store(db / "i.sqlite");
    Indexer ix(ws.path(), *s, opts());
    const IndexStats st = ix.index_all();
    EXPECT_THAT(paths(*s), ElementsAre("a.py", "src/b.go"));
    EXPECT_EQ(st.parsed, 2u);
    EXPECT_EQ(st.skipped, 3u);  // bin.c (NUL), big.c (size), link.py (symlink)
    Retrieval r(*s);
    ASSERT_EQ(r.definitions("Beta").size(), 1u);
    EXPECT_EQ(r.definitions("Beta")[0].path, "src/b.go");
    EXPECT_EQ(s->meta("root"), ws.path());
}

TEST(Indexer, SkipsMinifiedCodeButNotLongLinesOfOrdinaryFiles) {
    TempDir ws, db;
    // A bundle: 20 KB on 40 lines (500 bytes a line).
    std::string bundle;
    for (int i = 0; bundle.size() < 20000; ++i)
        bundle += "var a" + std::to_string(i) + "=function(b){return b+" + std::to_string(i) +
                  "};" + (i % 16 == 15 ? "\n" : "");
    ws.write("bundle.js", bundle);
    // Ordinary code of the same size, with one very long line in it.
    std::string code = "const table = [" + std::string(5000, '1') + "];\n";
    for (int i = 0; code.size() < 20000; ++i)
        code += "function f" + std::to_string(i) + "(x) {\n    return x + 1;\n}\n";
    ws.write("code.js", code);
    // A short file that is one long line.
    ws.write("one.js", "var cfg = {" + std::string(600, ' ') + "};\n");
    ASSERT_TRUE(looks_minified(bundle));
    ASSERT_FALSE(looks_minified(code));
    auto s = open_store(db / "i.sqlite");
    IndexerOptions o = opts();
    o.max_file_bytes = 1 << 20;
    Indexer ix(ws.path(), *s, o);
    IndexStats st = ix.index_all();
    EXPECT_THAT(paths(*s), ElementsAre("code.js", "one.js"));
    EXPECT_EQ(st.skipped, 1u);
    // A file edited into a bundle leaves the index; the option off keeps bundles.
    ws.write("code.js", bundle + "\n");
    st = ix.index_all();
    EXPECT_THAT(paths(*s), ElementsAre("one.js"));
    o.skip_minified = false;
    Indexer all(ws.path(), *s, o);
    all.index_all();
    EXPECT_THAT(paths(*s), ElementsAre("bundle.js", "code.js", "one.js"));
    EXPECT_EQ(Retrieval(*s).definitions("a7").size(), 2u);
}

TEST(Indexer, ReindexesOnlyWhenContentChangesAndRemovesVanishedFiles) {
    TempDir ws, db;
    make_tree(ws);
    auto s = open_store(db / "i.sqlite");
    Indexer ix(ws.path(), *s, opts());
    ix.index_all();
    IndexStats st = ix.index_all();
    EXPECT_EQ(st.parsed, 0u);
    EXPECT_EQ(st.unchanged, 2u);
    // Same content, new mtime: hashed, not parsed.
    std::filesystem::last_write_time(
        ws / "a.py", std::filesystem::file_time_type::clock::now() + std::chrono::seconds(5));
    st = ix.index_all();
    EXPECT_EQ(st.parsed, 0u);
    EXPECT_EQ(st.unchanged, 2u);
    st = ix.index_all();
    EXPECT_EQ(st.unchanged, 2u);  // the new mtime was stored
    // New content.
    ws.write("a.py", "def alpha2():\n    return 1\n");
    st = ix.index_all();
    EXPECT_EQ(st.parsed, 1u);
    Retrieval r(*s);
    EXPECT_TRUE(r.definitions("alpha").empty());
    EXPECT_EQ(r.definitions("alpha2").size(), 1u);
    // Vanished.
    std::filesystem::remove(ws / "src/b.go");
    st = ix.index_all();
    EXPECT_EQ(st.removed, 1u);
    EXPECT_THAT(paths(*s), ElementsAre("a.py"));
}

TEST(Indexer, SkipPathLeavesFilesOutBeforeReadingThemAndDropsIndexedOnes) {
    TempDir ws, db;
    make_tree(ws);
    auto s = open_store(db / "i.sqlite");
    {
        Indexer ix(ws.path(), *s, opts());
        ix.index_all();
        EXPECT_THAT(paths(*s), ElementsAre("a.py", "src/b.go"));
    }
    IndexerOptions o = opts();
    std::vector<std::string> asked;
    o.skip_path = [&](const std::string& path) {
        asked.push_back(path);
        return path.rfind("src/", 0) == 0;
    };
    Indexer ix(ws.path(), *s, o);
    const IndexStats st = ix.index_all();
    EXPECT_THAT(paths(*s), ElementsAre("a.py"));  // excluded now: removed
    EXPECT_EQ(st.removed, 1u);
    EXPECT_NE(std::find(asked.begin(), asked.end(), "src/b.go"), asked.end());
    // Single-file updates honour it too, from disk and from an editor's buffer.
    ws.write("src/c.py", "def gamma():\n    pass\n");
    EXPECT_FALSE(ix.update_file("src/c.py"));
    EXPECT_FALSE(ix.update_file(ws.path() + "/src/b.go", std::string_view("func X() {}\n")));
    EXPECT_TRUE(ix.update_file("a.py", std::string_view("def delta():\n    pass\n")));
    EXPECT_THAT(paths(*s), ElementsAre("a.py"));
    EXPECT_EQ(Retrieval(*s).definitions("delta").size(), 1u);
}

TEST(Indexer, SingleFileUpdatesFromDiskAndFromAnUnsavedDocument) {
    TempDir ws, db;
    make_tree(ws);
    auto s = open_store(db / "i.sqlite");
    Indexer ix(ws.path(), *s, opts());
    ix.index_all();
    Retrieval r(*s);
    EXPECT_TRUE(ix.update_file(ws / "a.py", std::string_view("def unsaved():\n    pass\n")));
    EXPECT_EQ(r.definitions("unsaved").size(), 1u);
    EXPECT_TRUE(r.definitions("alpha").empty());
    EXPECT_TRUE(ix.update_file("a.py"));  // back to the disk's version
    EXPECT_EQ(r.definitions("alpha").size(), 1u);
    ws.write("new.py", "def fresh():\n    pass\n");
    EXPECT_TRUE(ix.update_file("new.py"));
    EXPECT_EQ(r.definitions("fresh").size(), 1u);
    std::filesystem::remove(ws / "new.py");
    EXPECT_FALSE(ix.update_file("new.py"));
    EXPECT_TRUE(r.definitions("fresh").empty());
    EXPECT_FALSE(ix.update_file("notes.txt"));
}

TEST(Indexer, ThreadsGiveTheSameIndexAndProgressReachesTotal) {
    TempDir ws, db;
    for (int i = 0; i < 50; ++i)
        ws.write(testing::cat({"m", std::to_string(i), ".py"}),
                 testing::cat({"def f", std::to_string(i), "(x):\n    return g(x)\n"}));
    auto dump = [](Store& s) {
        std::vector<std::string> out;
        Statement st = s.prepare(
            "SELECT f.path, s.name, s.start_line FROM symbols s JOIN files f ON f.id=s.file_id "
            "ORDER BY 1, 2");
        while (st.step()) out.push_back(st.text(0) + ":" + st.text(1) + ":" + st.text(2));
        return out;
    };
    auto s0 = open_store(db / "0.sqlite");
    auto s2 = open_store(db / "2.sqlite");
    Indexer(ws.path(), *s0, opts(0)).index_all();
    size_t last_done = 0, last_total = 0, calls = 0;
    IndexerOptions o = opts(2);
    o.batch_files = 7;
    o.progress = [&](size_t d, size_t t) {
        EXPECT_GE(d, last_done);
        last_done = d;
        last_total = t;
        ++calls;
    };
    Indexer(ws.path(), *s2, o).index_all();
    EXPECT_EQ(dump(*s0), dump(*s2));
    EXPECT_EQ(dump(*s0).size(), 50u);
    EXPECT_EQ(last_done, 50u);
    EXPECT_EQ(last_total, 50u);
    EXPECT_GE(calls, 8u);
}

TEST(Indexer, ParseTimeoutAndInvalidUtf8DoNotStopTheRun) {
    TempDir ws, db;
    std::string big;
    for (int i = 0; i < 3000; ++i)
        big += testing::cat({"int f", std::to_string(i), "(int a) { return a; }\n"});
    ws.write("slow.c", big);
    ws.write("bad.py", "def ok():\n    return '\xff\xfe'\n");
    ws.write("good.py", "def good():\n    pass\n");
    auto s = open_store(db / "i.sqlite");
    IndexerOptions o = opts();
    o.max_file_bytes = 1 << 20;
    o.extract.timeout_micros = 1;
    std::vector<std::string> warnings;
    o.warn = [&](const std::string& w) { warnings.push_back(w); };
    auto st = Indexer(ws.path(), *s, o).index_all();
    EXPECT_EQ(st.parsed, 3u);
    EXPECT_GE(st.timed_out, 1u);
    EXPECT_THAT(paths(*s), ElementsAre("bad.py", "good.py", "slow.c"));
    Retrieval r(*s);
    EXPECT_FALSE(r.search("f2999", 1).empty());  // line chunks of the timed-out file
    EXPECT_FALSE(warnings.empty());
}

// A damaged database (bytes overwritten in its middle) is found at open, rebuilt with a
// warning, and the next run indexes the workspace again in full; the workspace itself is
// never touched.
TEST(Indexer, CorruptDatabaseIsRebuiltAndTheWorkspaceIndexedAgain) {
    TempDir ws, db;
    const int n = 60;
    std::string m7;
    for (int i = 0; i < n; ++i) {
        std::string text;
        for (int j = 0; j < 20; ++j)
            text += testing::cat({"def g", std::to_string(i), "_", std::to_string(j),
                                  "(x):\n    return x + ", std::to_string(j), "\n"});
        ws.write(testing::cat({"m", std::to_string(i), ".py"}), text);
        if (i == 7) m7 = text;
    }
    const std::string path = db / "i.sqlite";
    Store::Counts before;
    {
        auto s = open_store(path);
        Indexer(ws.path(), *s, opts()).index_all();
        before = s->counts();
        s->exec("PRAGMA wal_checkpoint(TRUNCATE)");
    }
    const auto size = std::filesystem::file_size(path);
    ASSERT_GT(size, 64u * 1024);
    {
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(size / 2));
        const std::string junk(8192, '\x5a');
        f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    std::vector<std::string> warnings;
    StoreOptions o;
    o.warn = [&](const std::string& w) { warnings.push_back(w); };
    std::string err;
    auto s = Store::open(path, &err, o);
    ASSERT_TRUE(s) << err;
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("rebuilding"), std::string::npos) << warnings[0];
    const IndexStats st = Indexer(ws.path(), *s, opts()).index_all();
    EXPECT_EQ(st.parsed, static_cast<size_t>(n));
    const auto after = s->counts();
    EXPECT_EQ(after.files, before.files);
    EXPECT_EQ(after.symbols, before.symbols);
    EXPECT_EQ(after.refs, before.refs);
    EXPECT_EQ(after.chunks, before.chunks);
    EXPECT_EQ(Retrieval(*s).definitions("g7_3").size(), 1u);
    std::ifstream in(ws / "m7.py", std::ios::binary);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), m7);  // workspace untouched
    s->exec("INSERT INTO chunks_fts(chunks_fts) VALUES('integrity-check')");
}

// kill -9 during a cold index (in a forked child), then reopen: the database is sound,
// every stored file has all its rows, and a second run completes the index.
TEST(Indexer, KillDashNineMidIndexThenRestartCompletes) {
    TempDir ws, db;
    const int n = 400;
    for (int i = 0; i < n; ++i) {
        std::string text;
        for (int j = 0; j < 40; ++j)
            text += testing::cat(
                {"def f", std::to_string(i), "_", std::to_string(j), "(x):\n    return x\n"});
        ws.write(testing::cat({"d", std::to_string(i % 10), "/m", std::to_string(i), ".py"}), text);
    }
    const std::string path = db / "i.sqlite";
    { open_store(path); }  // create it before the child writes
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        std::string err;
        auto s = Store::open(path, &err);
        if (!s) ::_exit(3);
        IndexerOptions o;
        o.threads = 1;
        o.batch_files = 3;
        // Past 30 files the child stops in the middle of its pass and waits for the kill:
        // it can never finish first.
        o.progress = [](size_t done, size_t) {
            if (done >= 30)
                for (;;) ::pause();
        };
        Indexer(ws.path(), *s, o).index_all();
        ::_exit(0);
    }
    // Wait until some but not all files are in, then kill.
    StoreOptions ro;
    ro.read_only = true;
    ro.check = false;
    std::string err;
    auto reader = Store::open(path, &err, ro);
    ASSERT_TRUE(reader) << err;
    int64_t seen = 0;
    for (int spin = 0; spin < 200000 && seen < 30; ++spin) {
        seen = reader->counts().files;
        std::this_thread::sleep_for(std::chrono::microseconds(200));  // a poll interval
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    reader.reset();
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child finished before it was killed";

    std::vector<std::string> warnings;
    StoreOptions o2;
    o2.warn = [&](const std::string& w) { warnings.push_back(w); };
    auto s = Store::open(path, &err, o2);
    ASSERT_TRUE(s) << err;
    EXPECT_TRUE(warnings.empty());
    const int64_t files = s->counts().files;
    EXPECT_GT(files, 0);
    EXPECT_LT(files, n);
    // No half-written file: every stored file has its 40 symbols and its chunks.
    Statement st = s->prepare(
        "SELECT count(*) FROM files f WHERE (SELECT count(*) FROM symbols WHERE file_id=f.id) "
        "!= 40 OR NOT EXISTS (SELECT 1 FROM chunks WHERE file_id=f.id)");
    ASSERT_TRUE(st.step());
    EXPECT_EQ(st.int64(0), 0);
    IndexerOptions o;
    o.threads = 1;
    auto stats = Indexer(ws.path(), *s, o).index_all();
    EXPECT_EQ(stats.parsed + stats.unchanged, static_cast<size_t>(n));
    EXPECT_EQ(s->counts().files, n);
    EXPECT_EQ(s->counts().symbols, n * 40);
}

}  // namespace
}  // namespace latent::index
