// Mentions: @file (whole, a range, an open document's text), @symbol, @codebase and open
// editors gathered within a budget, deterministically; containment (a symlink out, "..",
// a path outside: skipped, never read); '@' completion; and @codebase on a real package
// no one here wrote (semver from node_modules): the file a question needs is a source.
#include "agent/mentions.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>

#include "tests/index/temp_workspace.h"

namespace latent::agent {
namespace {

using index::testing::TempDir;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

size_t tokens_of(size_t bytes) { return (bytes + 3) / 4; }

// A one-folder workspace, indexed before the test body runs.
class MentionsTest : public ::testing::Test {
protected:
    void SetUp() override {
        ws_.write("lib/math.py",
                  "# Adds two numbers.\ndef add(a, b):\n    return a + b\n\n\n"
                  "def scale(v, k):\n    return [x * k for x in v]\n");
        ws_.write("lib/store.py",
                  "class Store:\n    def put(self, key, value):\n        self.data[key] = value\n");
        std::string ten;
        for (int i = 1; i <= 10; ++i)
            ten += "line_" + std::to_string(i) + " = " + std::to_string(i) + "\n";
        ws_.write("src/ten.py", ten);
        ws_.write("src/wide.py", "x = 1\ny = 'é😀'\n");
        outside_.write("secret.py", "def secret_value():\n    return 'TOP SECRET'\n");
        fs::create_directory_symlink(outside_.path(), ws_ / "link");
        fs::create_symlink(outside_ / "secret.py", ws_ / "leak.py");
    }
    void index() {
        w_ = std::make_unique<Workspaces>(WorkspacesOptions{});
        Settings s;
        s.index_db = db_ / "i.sqlite";
        w_->set_settings(s);
        w_->set_folders({path_to_uri(ws_.path())});
        w_->start_indexing();
        root_ = real_path(ws_.path());
        auto idx = w_->index_for(root_ + "/lib/math.py");
        ASSERT_TRUE(idx);
        idx->block_until_idle_for_test();
    }
    std::string uri(const std::string& rel) const { return path_to_uri(root_ + "/" + rel); }
    GatheredContext gather(std::string_view q, std::vector<Mention> ms, size_t budget = 4096) {
        GatherOptions o;
        o.token_budget = budget;
        return gather_context(q, ms, *w_, docs_, o);
    }
    static Mention file(std::string u, std::optional<lsp::Range> r = {}) {
        Mention m;
        m.kind = Mention::Kind::kFile;
        m.uri = std::move(u);
        m.range = r;
        return m;
    }
    static Mention symbol(std::string name) {
        Mention m;
        m.kind = Mention::Kind::kSymbol;
        m.name = std::move(name);
        return m;
    }
    static Mention of(Mention::Kind k) {
        Mention m;
        m.kind = k;
        return m;
    }
    static std::vector<std::string> paths(const GatheredContext& c) {
        std::vector<std::string> out;
        for (const auto& s : c.sources) out.push_back(s.path);
        return out;
    }

    TempDir ws_, db_, outside_;
    std::unique_ptr<Workspaces> w_;
    DocumentStore docs_;
    std::string root_;
};

TEST_F(MentionsTest, FileWholeOrARangeWithItsSource) {
    index();
    auto c = gather("what is this", {file(uri("src/ten.py"))});
    ASSERT_EQ(c.sources.size(), 1u);
    EXPECT_EQ(c.sources[0].path, "src/ten.py");
    EXPECT_EQ(c.sources[0].uri, uri("src/ten.py"));
    EXPECT_EQ(c.sources[0].why, "@file");
    EXPECT_EQ(c.sources[0].range, (lsp::Range{{0, 0}, {9, 12}}));  // "line_10 = 10"
    EXPECT_THAT(c.text, HasSubstr("src/ten.py:1-10 (@file)\n```py\nline_1 = 1\n"));
    EXPECT_THAT(c.text, HasSubstr("line_10 = 10\n```\n"));

    // Lines 3..5: a range ending at the start of line 6 does not take line 6.
    c = gather("", {file(uri("src/ten.py"), lsp::Range{{2, 4}, {5, 0}})});
    ASSERT_EQ(c.sources.size(), 1u);
    EXPECT_EQ(c.sources[0].range, (lsp::Range{{2, 0}, {4, 10}}));
    EXPECT_THAT(c.text, HasSubstr("src/ten.py:3-5 (@file)"));
    EXPECT_THAT(c.text, HasSubstr("line_3 = 3\nline_4 = 4\nline_5 = 5\n```"));
    EXPECT_THAT(c.text, Not(HasSubstr("line_6")));
}

TEST_F(MentionsTest, RangesAreUtf16AndOpenDocumentsWinOverTheDisk) {
    index();
    auto c = gather("", {file(uri("src/wide.py"))});
    ASSERT_EQ(c.sources.size(), 1u);
    EXPECT_EQ(c.sources[0].range.end, (lsp::Position{1, 9}));  // y = 'é😀': 9 UTF-16 units
    docs_.open({uri("src/wide.py"), "python", 1, "edited = True\n"});
    c = gather("", {file(uri("src/wide.py"))});
    EXPECT_THAT(c.text, HasSubstr("edited = True"));
    EXPECT_THAT(c.text, Not(HasSubstr("😀")));
}

TEST_F(MentionsTest, NothingOutsideTheFoldersIsRead) {
    index();
    const std::string name = fs::path(outside_.path()).filename().string();
    auto c = gather("what does secret_value return",
                    {file(uri("link/secret.py")), file(uri("leak.py")),
                     file(path_to_uri(outside_ / "secret.py")),
                     file("file://" + root_ + "/../" + name + "/secret.py"),
                     file("file://" + root_ + "/src/%2e%2e/../" + name + "/secret.py"),
                     symbol("secret_value"), of(Mention::Kind::kCodebase)});
    EXPECT_THAT(c.text, Not(HasSubstr("TOP SECRET")));
    for (const auto& s : c.sources) EXPECT_EQ(s.path.find("secret"), std::string::npos) << s.path;
    // An open document outside every folder is not an open editor of the workspace.
    docs_.open({path_to_uri(outside_ / "secret.py"), "python", 1, "TOP SECRET\n"});
    docs_.open({uri("lib/store.py"), "python", 1, "class Store: pass\n"});
    c = gather("", {of(Mention::Kind::kOpenEditors)});
    EXPECT_THAT(c.text, Not(HasSubstr("TOP SECRET")));
    EXPECT_THAT(paths(c), ::testing::ElementsAre("lib/store.py"));
}

TEST_F(MentionsTest, SymbolGivesItsDefinitionsWithBodies) {
    index();
    auto c = gather("", {symbol("scale")});
    ASSERT_EQ(c.sources.size(), 1u);
    EXPECT_EQ(c.sources[0].path, "lib/math.py");
    EXPECT_EQ(c.sources[0].why, "definition of scale");
    EXPECT_EQ(c.sources[0].range.start.line, 5u);
    EXPECT_EQ(c.sources[0].range.end.line, 6u);
    EXPECT_THAT(c.text, HasSubstr("def scale(v, k):\n    return [x * k for x in v]\n"));
    EXPECT_TRUE(gather("", {symbol("no_such_name")}).sources.empty());
}

TEST_F(MentionsTest, CodebaseFindsDefinitionsOfNamedThingsAndSimilarChunks) {
    index();
    auto c = gather("How does Store put a value?", {of(Mention::Kind::kCodebase)});
    ASSERT_FALSE(c.sources.empty());
    EXPECT_EQ(c.sources[0].path, "lib/store.py");
    EXPECT_THAT(c.sources[0].why, ::testing::StartsWith("definition of "));
    EXPECT_THAT(c.text, HasSubstr("self.data[key] = value"));
    // No two sources overlap.
    for (size_t i = 0; i < c.sources.size(); ++i)
        for (size_t j = i + 1; j < c.sources.size(); ++j)
            if (c.sources[i].path == c.sources[j].path) {
                EXPECT_TRUE(c.sources[i].range.end.line < c.sources[j].range.start.line ||
                            c.sources[j].range.end.line < c.sources[i].range.start.line);
            }
    // A case-folded name: "scale" asked as "Scale".
    c = gather("what does Scale do", {of(Mention::Kind::kCodebase)});
    EXPECT_THAT(paths(c), Contains("lib/math.py"));
    EXPECT_TRUE(gather("how does the", {of(Mention::Kind::kCodebase)}).sources.empty());
}

TEST_F(MentionsTest, OpenEditorsInUriOrder) {
    index();
    docs_.open({uri("src/ten.py"), "python", 1, "a = 1\n"});
    docs_.open({uri("lib/math.py"), "python", 1, "b = 2\n"});
    auto c = gather("", {of(Mention::Kind::kOpenEditors)});
    EXPECT_THAT(paths(c), ::testing::ElementsAre("lib/math.py", "src/ten.py"));
    EXPECT_EQ(c.sources[0].why, "open editor");
    EXPECT_THAT(c.text, HasSubstr("b = 2"));
}

TEST_F(MentionsTest, BudgetIsRespectedSharedAndDeterministic) {
    std::string big;
    for (int i = 0; i < 400; ++i)
        big += "def scale_" + std::to_string(i) + "(v): return v * " + std::to_string(i) + "\n";
    ws_.write("lib/big.py", big);
    index();
    docs_.open({uri("lib/big.py"), "python", 1, big});
    const std::vector<Mention> ms = {file(uri("lib/big.py")), symbol("scale"),
                                     of(Mention::Kind::kCodebase), of(Mention::Kind::kOpenEditors)};
    for (size_t budget : {0, 50, 300, 1000}) {
        auto c = gather("how does scale work", ms, budget);
        EXPECT_LE(tokens_of(c.text.size()), budget) << budget;
        EXPECT_EQ(c.text, gather("how does scale work", ms, budget).text) << budget;
    }
    // A share for each: the big file does not eat the symbol's part.
    auto c = gather("how does scale work", ms, 1000);
    std::vector<std::string> whys;
    for (const auto& s : c.sources) whys.push_back(s.why);
    EXPECT_THAT(whys, Contains("@file"));
    EXPECT_THAT(whys, Contains("definition of scale"));
    EXPECT_THAT(c.text, HasSubstr("lib/big.py:1-"));
}

TEST_F(MentionsTest, CompletionOfFilesAndSymbols) {
    index();
    auto files = complete_mentions(*w_, MentionKind::kFile, "math", 0);
    ASSERT_FALSE(files.empty());
    EXPECT_EQ(files[0].label, "lib/math.py");
    EXPECT_EQ(files[0].uri, uri("lib/math.py"));
    EXPECT_EQ(complete_mentions(*w_, MentionKind::kFile, "", 2).size(), 2u);
    auto syms = complete_mentions(*w_, MentionKind::kSymbol, "sca", 10);
    ASSERT_EQ(syms.size(), 1u);
    EXPECT_EQ(syms[0].label, "scale");
    EXPECT_EQ(syms[0].detail, "function lib/math.py:6");
    EXPECT_EQ(syms[0].range, (lsp::Range{{5, 0}, {5, 0}}));
    EXPECT_TRUE(complete_mentions(*w_, MentionKind::kSymbol, "zzz", 10).empty());
    // Nothing from the file behind the symlinks (the indexer does not follow them out).
    for (const auto& f : complete_mentions(*w_, MentionKind::kFile, "", 100))
        EXPECT_EQ(f.label.find("secret"), std::string::npos) << f.label;
}

// The check on a repository no one here wrote: semver (npm), indexed whole.
TEST(MentionsRealPackage, CodebaseSourcesHoldTheFileEachQuestionNeeds) {
    const fs::path pkg = fs::path(LATENT_SOURCE_DIR) / "node_modules" / "semver";
    if (!fs::is_directory(pkg / "classes")) GTEST_SKIP() << "no " << pkg << " (npm ci not run)";
    const auto t0 = std::chrono::steady_clock::now();
    TempDir ws, db;
    for (const auto& e : fs::recursive_directory_iterator(pkg)) {
        const auto rel = fs::relative(e.path(), pkg);
        if (*rel.begin() == "node_modules" || !e.is_regular_file() || e.path().extension() != ".js")
            continue;
        ws.write(rel.string(), [&] {
            std::ifstream in(e.path(), std::ios::binary);
            return std::string(std::istreambuf_iterator<char>(in), {});
        }());
    }
    Workspaces w({});
    Settings s;
    s.index_db = db / "i.sqlite";
    w.set_settings(s);
    w.set_folders({path_to_uri(ws.path())});
    w.start_indexing();
    auto idx = w.index_for(real_path(ws.path()) + "/index.js");
    ASSERT_TRUE(idx);
    idx->block_until_idle_for_test();
    DocumentStore docs;
    Mention codebase;
    codebase.kind = Mention::Kind::kCodebase;
    const struct {
        const char* question;
        const char* file;
    } table[] = {
        {"How does coerce turn a loose string into a version?", "functions/coerce.js"},
        {"How does a Range decide whether a version satisfies it?", "classes/range.js"},
        {"How does subset check that one range is a subset of another?", "ranges/subset.js"},
        {"How does inc bump the prerelease identifier of a SemVer?", "classes/semver.js"},
        {"How is a Comparator parsed from its string?", "classes/comparator.js"},
        {"How does diff tell which part of two versions changed?", "functions/diff.js"},
        {"Which regular expressions does createToken build for loose versions?", "internal/re.js"},
        {"How does compareBuild order versions that differ only in build metadata?",
         "functions/compare-build.js"},
    };
    int found = 0;
    for (const auto& row : table) {
        const auto c = gather_context(row.question, {codebase}, w, docs);
        std::vector<std::string> got;
        for (const auto& src : c.sources) got.push_back(src.path);
        EXPECT_THAT(got, Contains(row.file)) << row.question;
        // Not the whole package: the budget keeps a handful of sources.
        EXPECT_LE(got.size(), 16u) << row.question;
        if (std::getenv("LATENT_TEST_VERBOSE")) {
            std::printf("%s\n", row.question);
            for (const auto& src : c.sources)
                std::printf("  %s:%u-%u %s\n", src.path.c_str(), src.range.start.line + 1,
                            src.range.end.line + 1, src.why.c_str());
        }
        found += std::find(got.begin(), got.end(), row.file) != got.end();
    }
    std::printf("semver: %d of %zu questions found their file (%lld ms with indexing)\n", found,
                std::size(table),
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::steady_clock::now() - t0)
                                           .count()));
}

}  // namespace
}  // namespace latent::agent
