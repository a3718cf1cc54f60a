// `latent index`, `latent symbols`, `latent search` end to end through the binary.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "tests/index/temp_workspace.h"

namespace latent::index {
namespace {

using testing::TempDir;

// Runs a command line, returning stdout and the exit status.
std::pair<std::string, int> run(const std::string& cmd) {
    std::string out;
    std::FILE* p = ::popen((cmd + " 2>/dev/null").c_str(), "r");
    if (!p) return {"", -1};
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int st = ::pclose(p);
    return {out, WIFEXITED(st) ? WEXITSTATUS(st) : -1};
}

TEST(CliIndex, IndexThenSymbolsAndSearch) {
    TempDir ws, db;
    ws.write("src/shapes.rs",
             "/// Area of a circle.\npub fn circle_area(r: f64) -> f64 {\n"
             "    3.14159 * r * r\n}\n");
    ws.write("main.go", "package main\n\nfunc main() { println(\"hi\") }\n");
    const std::string bin = LATENT_BINARY;
    const std::string dbpath = db / "x.sqlite";
    auto [out, rc] = run(bin + " index " + ws.path() + " --db " + dbpath);
    EXPECT_EQ(rc, 0);
    EXPECT_NE(out.find("2 files (2 parsed"), std::string::npos) << out;
    std::tie(out, rc) = run(bin + " symbols circle_area --db " + dbpath);
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(out,
              "src/shapes.rs:2:8: function circle_area  pub fn circle_area(r: f64) -> f64 {\n");
    std::tie(out, rc) = run(bin + " search circle --db " + dbpath);
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(out.rfind("src/shapes.rs:1-4: definition circle_area", 0), 0u) << out;
    std::tie(out, rc) = run(bin + " search circle --db " + db.path() + "/missing.sqlite");
    EXPECT_EQ(rc, 2);
}

// `--db` naming a user's file: a clear error (exit 2), and the file as it was.
TEST(CliIndex, DbOnAFileThatIsNotAnIndexIsAnErrorAndLeavesItAlone) {
    TempDir ws, db;
    ws.write("a.py", "def a():\n    pass\n");
    db.write("notes.txt", "my notes\n");
    auto [out, rc] =
        run(std::string(LATENT_BINARY) + " index " + ws.path() + " --db " + (db / "notes.txt"));
    EXPECT_EQ(rc, 2);
    std::FILE* f = std::fopen((db / "notes.txt").c_str(), "rb");
    ASSERT_TRUE(f);
    char buf[64] = {};
    const size_t n = std::fread(buf, 1, sizeof buf, f);
    std::fclose(f);
    EXPECT_EQ(std::string(buf, n), "my notes\n");
}

TEST(CliIndex, DefaultDatabaseLivesInTheCacheFolderNotTheWorkspace) {
    TempDir ws, cache;
    ws.write("a.py", "def a():\n    pass\n");
    const std::string env = "XDG_CACHE_HOME=" + cache.path() + " ";
    auto [out, rc] = run(env + LATENT_BINARY + " index " + ws.path());
    EXPECT_EQ(rc, 0);
    EXPECT_NE(out.find(cache.path() + "/latent/index/"), std::string::npos) << out;
    std::tie(out, rc) = run("cd " + ws.path() + " && " + env + LATENT_BINARY + " symbols a");
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(out.rfind("a.py:1:5: function a", 0), 0u) << out;
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(ws.path()), {}), 1);  // a.py only
}

}  // namespace
}  // namespace latent::index
