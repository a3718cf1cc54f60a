// Retrieval over a small indexed workspace: definitions, symbols of a file, BM25 search,
// and context_for's ranking, budget and determinism.
#include "index/retrieval.h"

#include <algorithm>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "index/indexer.h"
#include "tests/index/temp_workspace.h"

namespace latent::index {
namespace {

using ::testing::ElementsAre;
using testing::TempDir;

class RetrievalTest : public ::testing::Test {
protected:
    void SetUp() override {
        ws_.write("lib/math.py",
                  "# Adds two numbers.\ndef add(a, b):\n    return a + b\n\n\n"
                  "def scale(v, k):\n    return [x * k for x in v]\n");
        ws_.write("lib/store.py",
                  "class Store:\n    def put(self, key, value):\n        self.data[key] = value\n");
        ws_.write("app/main.py",
                  "from lib.math import add\nfrom lib.store import Store\n\n\n"
                  "def add(x):\n    return x\n\n\n"
                  "def run():\n    s = Store()\n    total = add(1, 2)\n    s.put('total', total)\n"
                  "    return total\n");
        std::string err;
        store_ = Store::open(db_ / "i.sqlite", &err);
        ASSERT_TRUE(store_) << err;
        IndexerOptions o;
        o.threads = 0;
        Indexer(ws_.path(), *store_, o).index_all();
    }
    TempDir ws_, db_;
    std::unique_ptr<Store> store_;
};

TEST_F(RetrievalTest, DefinitionsByNameOrderedByPath) {
    Retrieval r(*store_);
    auto defs = r.definitions("add");
    ASSERT_EQ(defs.size(), 2u);
    EXPECT_EQ(defs[0].path, "app/main.py");
    EXPECT_EQ(defs[1].path, "lib/math.py");
    EXPECT_EQ(defs[1].definition.doc, "Adds two numbers.");
    EXPECT_EQ(defs[1].definition.signature, "def add(a, b):");
    EXPECT_EQ(defs[1].definition.name_range.start, (Point{1, 4}));
    EXPECT_TRUE(r.definitions("nothing").empty());
}

TEST_F(RetrievalTest, SymbolsInAFileInSourceOrder) {
    Retrieval r(*store_);
    std::vector<std::string> names;
    for (const auto& h : r.symbols_in("lib/store.py"))
        names.push_back(h.definition.kind + " " + h.definition.name + " @" +
                        h.definition.container);
    EXPECT_THAT(names, ElementsAre("class Store @", "function put @Store"));
}

TEST_F(RetrievalTest, SearchRanksByBm25AndIgnoresFtsSyntax) {
    Retrieval r(*store_);
    auto hits = r.search("scale", 5);
    ASSERT_FALSE(hits.empty());
    EXPECT_EQ(hits[0].path, "lib/math.py");
    EXPECT_EQ(hits[0].name, "scale");
    EXPECT_NO_THROW(r.search("\"unbalanced ( NEAR AND OR *", 5));
    EXPECT_TRUE(r.search("!!!", 5).empty());
    EXPECT_EQ(fts_query("a\"b OR (c"), "\"a\" OR \"b\" OR \"OR\" OR \"c\"");
}

TEST_F(RetrievalTest, ContextPutsOtherFilesDefinitionsFirstAndIsDeterministic) {
    Retrieval r(*store_);
    // Cursor on "add(1, 2)" in run() (line 11, 0-based 10).
    const Point cursor{10, 12};
    auto ctx = r.context_for("app/main.py", cursor, 2000);
    ASSERT_GE(ctx.size(), 3u);
    // Nearest identifier uses: add (same line), Store (line above), put (line below).
    EXPECT_EQ(ctx[0].path, "lib/math.py");
    EXPECT_EQ(ctx[0].text, "def add(a, b):\n    return a + b");
    EXPECT_EQ(ctx[0].why, "definition of add (used at line 11)");
    std::vector<std::string> whys;
    for (const auto& s : ctx) whys.push_back(s.path + " " + s.why);
    // Other files before the current one; the current file's add comes after them.
    size_t first_same = whys.size(), last_other = 0;
    for (size_t i = 0; i < ctx.size(); ++i) {
        if (ctx[i].why.rfind("definition", 0) != 0) continue;
        if (ctx[i].path == "app/main.py")
            first_same = std::min(first_same, i);
        else
            last_other = i;
    }
    EXPECT_LT(last_other, first_same);
    EXPECT_EQ(r.context_for("app/main.py", cursor, 2000).size(), ctx.size());
    auto again = r.context_for("app/main.py", cursor, 2000);
    for (size_t i = 0; i < ctx.size(); ++i) {
        EXPECT_EQ(again[i].path, ctx[i].path);
        EXPECT_EQ(again[i].text, ctx[i].text);
        EXPECT_EQ(again[i].why, ctx[i].why);
    }
}

// On a generated file's very long line only uses within window_bytes of the cursor's
// column are "near": `add` at column 0 is, `scale` 6000 bytes away is not.
TEST_F(RetrievalTest, ContextTakesNamesNearTheCursorColumnOnALongLine) {
    std::string line = "x = add(1, 2)";
    line.append(6000, ' ');
    line += "+ scale([1], 2)\n";
    Indexer ix(ws_.path(), *store_, IndexerOptions{});
    ASSERT_TRUE(ix.update_file("app/long.py", std::string_view(line)));
    Retrieval r(*store_);
    ContextOptions o;
    o.similar = 0;
    std::vector<std::string> whys;
    for (const auto& s : r.context_for("app/long.py", {0, 4}, 2000, o)) whys.push_back(s.why);
    EXPECT_THAT(whys, ElementsAre("definition of add (used at line 1)",
                                  "definition of add (used at line 1)"));
    whys.clear();
    for (const auto& s : r.context_for("app/long.py", {0, 6020}, 2000, o)) whys.push_back(s.why);
    EXPECT_THAT(whys, ElementsAre("definition of scale (used at line 1)"));
}

// Weighing a word reads its postings, so the words weighed are bounded too (four times
// similar_postings): behind five common words, each in more chunks than the budget, a
// rare word is never reached; at the cursor it is asked and finds its chunk.
TEST_F(RetrievalTest, ContextWeighsWordsWithinABudget) {
    for (int k = 0; k < 6; ++k)
        ws_.write("common/f" + std::to_string(k) + ".py",
                  "def f" + std::to_string(k) +
                      "():\n    return alpha + beta + gamma + delta + epsilon\n");
    ws_.write("lib/zeta.py", "def zebra_user():\n    return zebra\n");
    ws_.write("app/cur.py", "v = alpha + beta + gamma + delta + epsilon\n\n\nw = zebra\n");
    IndexerOptions io;
    io.threads = 0;
    Indexer(ws_.path(), *store_, io).index_all();
    Retrieval r(*store_);
    ContextOptions o;
    o.similar_postings = 5;
    auto paths = [&](Point at) {
        std::vector<std::string> out;
        for (const auto& s : r.context_for("app/cur.py", at, 4000, o))
            if (s.why.rfind("similar code", 0) == 0) out.push_back(s.path);
        return out;
    };
    EXPECT_THAT(paths({3, 4}), ElementsAre("lib/zeta.py"));
    EXPECT_THAT(paths({0, 0}), ::testing::Not(::testing::Contains("lib/zeta.py")));
}

// What a completion prompt asks (the agent's options): nothing from the cursor's own file,
// which the prompt shows anyway, and names beyond the window around the cursor — here
// `scale`, named only by an import 40 lines above — once the near ones run out.
TEST_F(RetrievalTest, ContextForAPromptSkipsTheCurrentFileAndReachesFarNames) {
    std::string text = "from lib.math import scale\n";
    for (int i = 0; i < 40; ++i) text += "\n";
    text += "def helper():\n    return 1\n\n\ndef run():\n    return helper() + add(1, 2)\n";
    Indexer ix(ws_.path(), *store_, IndexerOptions{});
    ASSERT_TRUE(ix.update_file("app/far.py", std::string_view(text)));
    Retrieval r(*store_);
    const Point cursor{46, 11};  // in run()
    auto whys = [&](const ContextOptions& o) {
        std::vector<std::string> out;
        for (const auto& s : r.context_for("app/far.py", cursor, 4000, o))
            out.push_back(s.path + " " + s.why);
        return out;
    };
    ContextOptions near;
    near.similar = 0;
    EXPECT_THAT(whys(near),
                ::testing::Contains("app/far.py definition of helper (used at line 47)"));
    EXPECT_THAT(
        whys(near),
        ::testing::Not(::testing::Contains("lib/math.py definition of scale (used at line 1)")));
    ContextOptions prompt = near;
    prompt.current_file = false;
    prompt.far_lines = 100;
    prompt.similar = 8;
    const auto got = whys(prompt);
    EXPECT_THAT(got, ::testing::Contains("lib/math.py definition of add (used at line 47)"));
    EXPECT_THAT(got, ::testing::Contains("lib/math.py definition of scale (used at line 1)"));
    for (const auto& w : got) EXPECT_NE(w.rfind("app/far.py", 0), 0u) << w;
}

TEST_F(RetrievalTest, ContextRespectsTheTokenBudget) {
    Retrieval r(*store_);
    auto ctx = r.context_for("app/main.py", {10, 12}, 16);
    size_t tokens = 0;
    for (const auto& s : ctx) tokens += (s.text.size() + s.path.size() + 16 + 3) / 4;
    EXPECT_LE(tokens, 16u);
    EXPECT_TRUE(r.context_for("app/main.py", {10, 12}, 0).empty());
    EXPECT_TRUE(r.context_for("unknown.py", {0, 0}, 1000).empty());
}

std::vector<std::string> refs_of(Retrieval& r, std::string_view name, size_t limit = 100) {
    std::vector<std::string> out;
    for (const auto& x : r.references(name, limit))
        out.push_back(x.path + ":" + std::to_string(x.line) + ":" + std::to_string(x.col));
    return out;
}

TEST_F(RetrievalTest, ReferencesListEveryUseInOrder) {
    Retrieval r(*store_);
    // run() uses add at line 10 ("    total = add(1, 2)") and Store at line 9; both files'
    // definitions are not uses.
    const auto adds = refs_of(r, "add");
    EXPECT_THAT(adds, ::testing::Contains("app/main.py:10:12"));
    for (const auto& a : adds) EXPECT_EQ(a.rfind("app/main.py:", 0), 0u) << a;
    EXPECT_THAT(refs_of(r, "Store"), ::testing::Contains("app/main.py:9:8"));
    EXPECT_TRUE(std::is_sorted(adds.begin(), adds.end()));
    // Exact names only: "total" is used, "tota" is not a name anywhere.
    EXPECT_THAT(refs_of(r, "total"),
                ::testing::IsSupersetOf({"app/main.py:11:19", "app/main.py:12:11"}));
    EXPECT_TRUE(refs_of(r, "tota").empty());
    EXPECT_TRUE(refs_of(r, "\"(").empty());  // no words: nothing, never FTS syntax
    EXPECT_EQ(refs_of(r, "total", 1).size(), 1u);
}

TEST_F(RetrievalTest, ReferencesAcrossFilesAreOrderedByPath) {
    ws_.write("b/use.py", "from lib.math import scale\n\ndef f(v):\n    return scale(v, 2)\n");
    ws_.write("a/use.py", "def g(v):\n    x = 1\n    return scale(v, 3) + scale(v, 4)\n");
    IndexerOptions o;
    o.threads = 0;
    Indexer(ws_.path(), *store_, o).index_all();
    Retrieval r(*store_);
    EXPECT_THAT(refs_of(r, "scale"),
                ::testing::IsSupersetOf({"a/use.py:2:11", "a/use.py:2:25", "b/use.py:3:11"}));
    const auto all = refs_of(r, "scale");
    ASSERT_GE(all.size(), 3u);
    EXPECT_EQ(all[0], "a/use.py:2:11");
    EXPECT_EQ(all[1], "a/use.py:2:25");
    EXPECT_EQ(refs_of(r, "scale", 2), (std::vector<std::string>{"a/use.py:2:11", "a/use.py:2:25"}));
}

TEST_F(RetrievalTest, FilesAllSortedOrFuzzyRanked) {
    ws_.write("docs/matrix_helpers.py", "x = 1\n");
    IndexerOptions o;
    o.threads = 0;
    Indexer(ws_.path(), *store_, o).index_all();
    Retrieval r(*store_);
    EXPECT_THAT(r.files("", 100), ElementsAre("app/main.py", "docs/matrix_helpers.py",
                                              "lib/math.py", "lib/store.py"));
    EXPECT_THAT(r.files("", 2), ElementsAre("app/main.py", "docs/matrix_helpers.py"));
    // "mat": a basename substring in math.py and matrix_helpers.py (shorter first), then
    // the subsequence m..a..t in app/main.py ("mai" + "n.py"? no t: not a match).
    EXPECT_THAT(r.files("MAT", 100), ElementsAre("lib/math.py", "docs/matrix_helpers.py"));
    // "lib" is a path substring only; "lsp" a subsequence (l-ib/s-tore.p-y... l,s,p).
    EXPECT_THAT(r.files("lib", 100), ElementsAre("lib/math.py", "lib/store.py"));
    EXPECT_THAT(r.files("apy", 100), ::testing::Contains("app/main.py"));
    EXPECT_THAT(r.files("mxh", 100), ElementsAre("docs/matrix_helpers.py"));
    EXPECT_TRUE(r.files("zzz", 100).empty());
    EXPECT_EQ(r.files("py", 1).size(), 1u);
}

TEST_F(RetrievalTest, SymbolsByPrefixExactFirst) {
    ws_.write("lib/more.py", "def add_all(xs):\n    return sum(xs)\n\ndef Adder():\n    pass\n");
    IndexerOptions o;
    o.threads = 0;
    Indexer(ws_.path(), *store_, o).index_all();
    Retrieval r(*store_);
    std::vector<std::string> got;
    for (const auto& h : r.symbols("add", 10)) got.push_back(h.definition.name + "@" + h.path);
    EXPECT_THAT(got, ElementsAre("add@app/main.py", "add@lib/math.py", "Adder@lib/more.py",
                                 "add_all@lib/more.py"));
    got.clear();
    for (const auto& h : r.symbols("St", 10)) got.push_back(h.definition.name);
    EXPECT_THAT(got, ElementsAre("Store"));
    EXPECT_EQ(r.symbols("add", 1).size(), 1u);
    EXPECT_TRUE(r.symbols("", 10).empty());
    EXPECT_NO_THROW(r.symbols("\"a* OR (", 10));
    EXPECT_TRUE(r.symbols("nothing_here", 10).empty());
}

}  // namespace
}  // namespace latent::index
