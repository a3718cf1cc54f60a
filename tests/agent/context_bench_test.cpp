// The pieces of `latent bench context` on a tiny hand-made repository: ctags' output read
// into definitions, the needed names of a span, seeded spans, each other assistant's
// context within its budget, and the scoring of a prompt's context.
#include "agent/context_bench.h"

#include <gtest/gtest.h>

#include "index/indexer.h"
#include "tests/index/temp_workspace.h"

namespace latent::agent::context_bench {
namespace {

using index::testing::cat;
using index::testing::TempDir;

// util.c defines helper (lines 1-3) and MAX_ITEMS; main.c uses them, and its own local_fn.
const char* kUtilH = "#define MAX_ITEMS 8\nint helper(int x);\n";
const char* kUtilC =
    "#include \"util.h\"\n"
    "int helper(int x) {\n"
    "    return x + 1;\n"
    "}\n";
const char* kMainC =
    "#include \"util.h\"\n"
    "static int local_fn(int y) { return y; }\n"
    "int main(void) {\n"
    "    int total = helper(MAX_ITEMS);\n"
    "    /* helper_doc is only in a comment */\n"
    "    total += local_fn(total) + common;\n"
    "    return total;\n"
    "}\n";

std::string tag(const std::string& root, const std::string& file, const std::string& name,
                const std::string& kind, int line, int end = 0,
                const std::string& scope_kind = "") {
    std::string j = cat({R"({"_type": "tag", "name": ")", name, R"(", "path": ")", root, "/", file,
                         R"(", "kind": ")", kind, R"(", "line": )", std::to_string(line)});
    if (end) j += cat({R"(, "end": )", std::to_string(end)});
    if (!scope_kind.empty()) j += cat({R"(, "scopeKind": ")", scope_kind, "\""});
    return j + "}\n";
}

Repo tiny() {
    Repo r;
    r.root = "/repo";
    r.texts = {{"util.h", kUtilH}, {"util.c", kUtilC}, {"main.c", kMainC}};
    std::string lines = R"({"_type": "ptag", "name": "JSON_OUTPUT_VERSION"})"
                        "\n";
    lines += tag("/repo", "util.h", "MAX_ITEMS", "macro", 1);
    lines += tag("/repo", "util.h", "helper", "prototype", 2);
    lines += tag("/repo", "util.c", "helper", "function", 2, 4);
    lines += tag("/repo", "main.c", "local_fn", "function", 2, 2);
    lines += tag("/repo", "main.c", "main", "function", 3, 8);
    lines += tag("/repo", "main.c", "total", "variable", 4, 0, "function");  // a local
    lines += tag("/repo", "util.c", "x", "parameter", 2);                    // not a definition
    lines += tag("/elsewhere", "b.c", "outside_fn", "function", 1);          // outside the root
    lines += tag("/repo", "util.c", "helper_doc", "function", 1);
    for (int i = 0; i < 6; ++i)  // too common to say which
        lines += tag("/repo", "util.c", "common", "variable", 1);
    r.tags = parse_ctags(lines, r.root);
    r.index_tags();
    return r;
}

Span span_of(const Repo& r, const std::string& file, const std::string& text, SpanKind k) {
    const size_t at = r.texts.at(file).find(text);
    EXPECT_NE(at, std::string::npos) << text;
    return {file, k, at, at + text.size()};
}

std::vector<std::string> names(const std::vector<Needed>& n) {
    std::vector<std::string> out;
    for (const auto& x : n) out.push_back(x.name);
    return out;
}

TEST(ContextBench, CtagsDefinitionsOnlyUnderTheRootAndOfDefiningKinds) {
    const Repo r = tiny();
    ASSERT_EQ(r.tags.size(), 12u);  // MAX_ITEMS, helper x2, local_fn, main, helper_doc, common x6
    const Tag& h = r.tags[r.by_name.at("helper")[1]];
    EXPECT_EQ(h.file, "util.c");
    EXPECT_EQ(h.line, 1u);  // 0-based
    EXPECT_EQ(h.end, 3u);
    EXPECT_FALSE(r.by_name.count("total"));  // a local variable
    EXPECT_FALSE(r.by_name.count("x"));
    EXPECT_FALSE(r.by_name.count("outside_fn"));
}

TEST(ContextBench, NeededNamesAreDefinedOnlyInOtherFilesAndUsedInCode) {
    const Repo r = tiny();
    const Span body = span_of(r, "main.c",
                              "int total = helper(MAX_ITEMS);\n"
                              "    /* helper_doc is only in a comment */\n"
                              "    total += local_fn(total) + common;",
                              SpanKind::kBlock);
    const auto n = needed_definitions(r, body);
    // local_fn: its own file; common: 6 places; helper_doc: a comment; int: no definition.
    EXPECT_EQ(names(n), (std::vector<std::string>{"helper", "MAX_ITEMS"}));
    ASSERT_EQ(n.size(), 2u);
    EXPECT_EQ(n[0].definitions.size(), 2u);  // the prototype and the function
    EXPECT_TRUE(
        needed_definitions(r, span_of(r, "main.c", "return total;", SpanKind::kLine)).empty());
}

TEST(ContextBench, RealCtagsOutputOnATempRepository) {
    if (!index::run_program({"ctags", "--version"})) GTEST_SKIP() << "universal-ctags missing";
    TempDir d;
    d.write("util.c", kUtilC);
    d.write("util.h", kUtilH);
    d.write("main.c", kMainC);
    const auto out =
        index::run_program({"ctags", "-R", "--output-format=json", "--fields=+nKeZ",
                            "--fields=+{scopeKind}", "--kinds-C=+p", "-f", "-", d.path()});
    ASSERT_TRUE(out);
    Repo r;
    r.root = d.path();
    r.texts = {{"util.h", kUtilH}, {"util.c", kUtilC}, {"main.c", kMainC}};
    r.tags = parse_ctags(*out, r.root);
    r.index_tags();
    ASSERT_TRUE(r.by_name.count("helper"));
    const auto n =
        needed_definitions(r, span_of(r, "main.c", "helper(MAX_ITEMS)", SpanKind::kLine));
    EXPECT_EQ(names(n), (std::vector<std::string>{"helper", "MAX_ITEMS"}));
}

TEST(ContextBench, SpansAreTheSameForTheSameSeed) {
    Repo r = tiny();
    // More code to choose from: ten files calling helper.
    for (int i = 0; i < 10; ++i) {
        const std::string n = std::to_string(i);
        std::string t = cat({"#include \"util.h\"\nint f", n, "(void) {\n"});
        for (int k = 0; k < 8; ++k)
            t += cat({"    int v", std::to_string(k), " = helper(", std::to_string(k), ");\n"});
        t += "    return MAX_ITEMS;\n}\n";
        r.texts[cat({"f", n, ".c"})] = t;
        r.tags.push_back({cat({"f", n}), "function", cat({"f", n, ".c"}), 1, 11});
    }
    r.index_tags();
    auto key = [](const Picked& p) {
        std::vector<std::tuple<std::string, int, size_t, size_t>> k;
        for (const Span& s : p.spans) k.emplace_back(s.file, int(s.kind), s.begin, s.end);
        return k;
    };
    const Picked a = pick_spans(r, 9, 7), b = pick_spans(r, 9, 7);
    ASSERT_EQ(a.spans.size(), 9u);
    EXPECT_EQ(key(a), key(b));
    size_t kinds[3] = {0, 0, 0};
    for (const Span& s : a.spans) {
        ++kinds[int(s.kind)];
        EXPECT_FALSE(needed_definitions(r, s).empty());
    }
    EXPECT_EQ(kinds[0], 3u);
    EXPECT_EQ(kinds[1], 3u);
    EXPECT_EQ(kinds[2], 3u);
    bool differs = false;
    for (uint64_t seed = 8; seed < 12 && !differs; ++seed)
        differs = key(pick_spans(r, 9, seed)) != key(a);
    EXPECT_TRUE(differs);
    // Every candidate tried: of the 13 lines of code (main.c's comment is not one), only
    // main.c's `int total = helper(MAX_ITEMS);` needs a definition from another file.
    const Picked all = pick_spans(tiny(), 300, 1);
    EXPECT_EQ(all.skipped.at("line"), 12u);
    size_t lines = 0;
    for (const Span& s : all.spans) lines += s.kind == SpanKind::kLine;
    EXPECT_EQ(lines, 1u);
}

// TypeScript functions have no end line from ctags: the body is found by its braces,
// braces in strings and comments left out, nested ones matched.
TEST(ContextBench, ATypeScriptBodyEndsAtItsMatchingBrace) {
    Repo r;
    r.root = "/repo";
    r.texts = {{"lib.ts", "export function helper(n: number): number {\n  return n + 1;\n}\n"},
               {"app.ts",
                "export function run(a: string): number {\n"
                "  const s = \"}{\";\n"
                "  if (a) {\n"
                "    return helper(a.length);\n"
                "  }\n"
                "  // } a brace in a comment\n"
                "  return helper(0);\n"
                "}\n"
                "const after = helper(2);\n"}};
    r.tags = {{"helper", "function", "lib.ts", 0, 0}, {"run", "function", "app.ts", 0, 0}};
    r.index_tags();
    const Picked all = pick_spans(r, 300, 1);
    std::vector<std::string> bodies;
    for (const Span& sp : all.spans)
        if (sp.kind == SpanKind::kFunction)
            bodies.push_back(r.texts.at(sp.file).substr(sp.begin, sp.end - sp.begin));
    ASSERT_EQ(bodies.size(), 1u);
    EXPECT_EQ(bodies[0],
              "const s = \"}{\";\n  if (a) {\n    return helper(a.length);\n  }\n"
              "  // } a brace in a comment\n  return helper(0);");
}

TEST(ContextBench, ImportsResolveInEachLanguage) {
    Repo r;
    r.root = "/repo";
    r.texts = {{"src/a.c", "#include \"b.h\"\n#include <lib/c.h>\n#include <stdio.h>\n"},
               {"src/b.h", "int b;\n"},
               {"include/lib/c.h", "int c;\n"},
               {"pkg/mod.py", "from . import sib\nfrom .sub.deep import x\nimport pkg.other\n"},
               {"pkg/sib.py", "s = 1\n"},
               {"pkg/sub/deep.py", "x = 1\n"},
               {"pkg/other.py", "o = 1\n"},
               {"web/app.ts",
                "import { f } from './util.js';\nconst g = require('../lib/g');\n"
                "import x from 'react';\n"},
               {"web/util.ts", "export function f() {}\n"},
               {"lib/g/index.js", "module.exports = 1;\n"}};
    EXPECT_EQ(imports_of(r, "src/a.c"), (std::vector<std::string>{"src/b.h", "include/lib/c.h"}));
    EXPECT_EQ(imports_of(r, "pkg/mod.py"),
              (std::vector<std::string>{"pkg/sib.py", "pkg/sub/deep.py", "pkg/other.py"}));
    EXPECT_EQ(imports_of(r, "web/app.ts"),
              (std::vector<std::string>{"web/util.ts", "lib/g/index.js"}));
    // Go: an import names a package folder (by its ending): its files, not its tests.
    r.texts = {
        {"http/server.go", "package http\n\nimport (\n\t\"fmt\"\n\tht \"net/http/httptrace\"\n)\n"},
        {"http/client.go", "package http\n\nimport \"net/http/internal\"\n"},
        {"http/httptrace/trace.go", "package httptrace\n"},
        {"http/httptrace/trace_test.go", "package httptrace\n"},
        {"http/internal/chunked.go", "package internal\n"}};
    EXPECT_EQ(imports_of(r, "http/server.go"),
              (std::vector<std::string>{"http/httptrace/trace.go"}));
    EXPECT_EQ(imports_of(r, "http/client.go"),
              (std::vector<std::string>{"http/internal/chunked.go"}));
    // Rust: `mod x;` beside the module's file, `use crate::`, `super::`, `self::` paths to
    // the longest module that is a file; other crates are not the repository's.
    r.texts = {
        {"src/lib.rs", "mod vec;\npub mod collections;\nuse std::fmt;\n"},
        {"src/vec.rs", "mod into_iter;\nuse crate::collections::btree::Map;\nuse super::raw;\n"},
        {"src/vec/into_iter.rs", "use super::Vec;\nuse self::inner::X;\n"},
        {"src/collections/mod.rs", "pub mod btree;\n"},
        {"src/collections/btree.rs", "pub struct Map;\n"},
        {"src/raw.rs", "pub struct Raw;\n"}};
    EXPECT_EQ(imports_of(r, "src/lib.rs"),
              (std::vector<std::string>{"src/vec.rs", "src/collections/mod.rs"}));
    EXPECT_EQ(imports_of(r, "src/vec.rs"),
              (std::vector<std::string>{"src/vec/into_iter.rs", "src/collections/btree.rs",
                                        "src/raw.rs"}));
    EXPECT_EQ(imports_of(r, "src/vec/into_iter.rs"), (std::vector<std::string>{"src/vec.rs"}));
    // A folder of a crate (no lib.rs): crate paths drop their leading modules to match.
    r.texts = {{"adapters/map.rs", "use crate::iter::traits::Iterator;\n"},
               {"traits/mod.rs", "pub trait Iterator {}\n"}};
    EXPECT_EQ(imports_of(r, "adapters/map.rs"), (std::vector<std::string>{"traits/mod.rs"}));
}

size_t bytes_of(const std::vector<ContextBlock>& blocks, const std::string& current) {
    const std::string marker = comment_marker(current);
    size_t n = 0;
    for (const auto& b : blocks) {
        n += marker.size() + 1 + b.path.size() + 1 + std::to_string(b.start_line + 1).size() + 1 +
             b.text.size();
        if (b.text.back() != '\n') ++n;
    }
    return n;
}

TEST(ContextBench, EachOthersContextStaysWithinItsBudget) {
    Repo r;
    r.root = "/repo";
    std::string big;
    for (int i = 0; i < 300; ++i)
        big += cat({"int value_", std::to_string(i), " = ", std::to_string(i), ";\n"});
    r.texts = {{"a.c", "#include \"b.h\"\n#include \"c.h\"\nint main(void) { return 0; }\n"},
               {"b.h", big},
               {"c.h", big},
               {"d.c", big}};
    for (size_t budget : {40u, 300u, 1000u, 5000u}) {
        const auto imp = imports_context(r, "a.c", budget);
        EXPECT_LE(bytes_of(imp, "a.c"), budget) << budget;
        const auto ring = ring_context(r, "a.c", 1, budget);
        EXPECT_LE(bytes_of(ring, "a.c"), budget) << budget;
        for (const auto& b : ring) EXPECT_LE(b.end_line - b.start_line + 1, 64u);
        std::vector<ContextBlock> hits = {{"b.h", 0, 0, "int value_0 = 0;\n"},
                                          {"a.c", 2, 2, "int main(void) { return 0; }\n"},
                                          {"d.c", 10, 40, big.substr(0, 900)},
                                          {"c.h", 5, 5, "int value_5 = 5;\n"}};
        const auto bm = fit(hits, budget, "a.c", false);
        EXPECT_LE(bytes_of(bm, "a.c"), budget) << budget;
        for (const auto& b : bm) EXPECT_NE(b.path, "a.c");  // the current file is in the prompt
    }
    // Imports: b.h from its top, cut at a line; c.h does not follow a cut file.
    const auto imp = imports_context(r, "a.c", 300);
    ASSERT_EQ(imp.size(), 1u);
    EXPECT_EQ(imp[0].path, "b.h");
    EXPECT_EQ(imp[0].start_line, 0u);
    EXPECT_EQ(big.compare(0, imp[0].text.size(), imp[0].text), 0);
    EXPECT_GT(imp[0].text.size(), 200u);
    // BM25: a block too big is skipped, the next that fits is still taken.
    std::vector<ContextBlock> hits = {{"d.c", 10, 40, big.substr(0, 900)},
                                      {"c.h", 5, 5, "int value_5 = 5;\n"}};
    const auto bm = fit(hits, 300, "a.c", false);
    ASSERT_EQ(bm.size(), 1u);
    EXPECT_EQ(bm[0].path, "c.h");
}

TEST(ContextBench, BmQueryIsTheLastDistinctWordsBeforeTheCursor) {
    std::string text = "int first;\n";
    for (int i = 0; i < 40; ++i) text += cat({"w", std::to_string(i), " "});
    text += "w39 last(";
    const std::string q = bm25_query(text);
    EXPECT_EQ(q.substr(q.size() - 8), "w39 last");
    EXPECT_EQ(q.find("first"), std::string::npos);
    EXPECT_EQ(q.rfind("w9 ", 0), 0u);  // 32 words: w9 .. w39, last
}

TEST(ContextBench, RecallCountsBlocksCoveringADefinitionLine) {
    const Repo r = tiny();
    const Span s = span_of(r, "main.c", "int total = helper(MAX_ITEMS);", SpanKind::kLine);
    const auto needed = needed_definitions(r, s);
    ASSERT_EQ(needed.size(), 2u);
    const auto bytes = [](std::string_view t) { return t.size(); };
    // The prompt's context as layout_fim_prompt writes it, read back.
    PromptBudget pb;
    const FimLayout l =
        layout_fim_prompt(kMainC, s.begin, "main.c",
                          {{"util.c", 1, 3, "int helper(int x) {\n    return x + 1;\n}\n"},
                           {"util.h", 1, 1, "int helper(int x);\n"}},
                          pb);
    const auto blocks = parse_context(l.prompt.context, r);
    ASSERT_EQ(blocks.size(), 2u);
    EXPECT_EQ(blocks[0].path, "util.c");
    EXPECT_EQ(blocks[0].start_line, 1u);
    EXPECT_EQ(blocks[0].end_line, 3u);
    Score sc = score(blocks, needed, "//", bytes);
    EXPECT_EQ(sc.needed, 2u);
    EXPECT_EQ(sc.found, 1u);  // helper; MAX_ITEMS (util.h:1) is not shown
    EXPECT_EQ(sc.tokens, l.prompt.context.size() - std::string("// main.c\n").size());
    // helper's lines in util.c (3 lines) and its prototype's line in util.h.
    EXPECT_EQ(sc.needed_tokens, std::string("int helper(int x) {\n    return x + 1;\n}\n").size() +
                                    std::string("int helper(int x);\n").size());
    // A block that starts after the definition's line does not count.
    sc = score({{"util.h", 1, 1, "int helper(int x);\n"}}, needed, "//", bytes);
    EXPECT_EQ(sc.found, 1u);
    sc = score({{"util.c", 2, 3, "    return x + 1;\n}\n"}}, needed, "//", bytes);
    EXPECT_EQ(sc.found, 0u);
    EXPECT_EQ(score({}, needed, "//", bytes).found, 0u);
}

}  // namespace
}  // namespace latent::agent::context_bench
