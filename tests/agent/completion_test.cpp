// The completion pipeline's pure parts: prompt layout, post-processing, suggestion cache,
// chat templates.
#include "agent/completion.h"

#include <gtest/gtest.h>

namespace latent::agent {
namespace {

CursorText at(std::string text, std::string marker = "|") {
    const size_t c = text.find(marker);
    text.erase(c, marker.size());
    return cursor_text(text, c);
}

TEST(GenerationTimeLimitTest, StopsAtTheFirstLineBreakAfterTheLimit) {
    using std::chrono::milliseconds;
    const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
    GenerationTimeLimit limit{milliseconds(300)};
    EXPECT_FALSE(limit("", t0 + milliseconds(5000)));  // no text yet: the clock has not started
    EXPECT_FALSE(limit("int x", t0));                  // the first text starts it
    EXPECT_FALSE(limit("int x = 1;\n", t0 + milliseconds(299)));  // a line, but in time
    EXPECT_FALSE(limit("int x = 1;\n", t0 + milliseconds(100)));
    EXPECT_TRUE(limit("int x = 1;\n  y", t0 + milliseconds(300)));
    GenerationTimeLimit no_line{milliseconds(300)};
    no_line("a", t0);
    EXPECT_FALSE(no_line("abcdefgh", t0 + milliseconds(9000)));  // never without a whole line
    EXPECT_TRUE(no_line("abcdefgh\n", t0 + milliseconds(9001)));
    GenerationTimeLimit off{milliseconds(0)};
    off("a\n", t0);
    EXPECT_FALSE(off("a\nb\n", t0 + std::chrono::hours(1)));
}

// The latency target's deadline stops it at once, mid-line too, and says so; before it,
// the line rule applies as without one.
TEST(GenerationTimeLimitTest, ADeadlineStopsItWhateverTheTextHolds) {
    using std::chrono::milliseconds;
    const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
    GenerationTimeLimit limit{milliseconds(300), t0 + milliseconds(2000)};
    EXPECT_FALSE(limit("int x", t0 + milliseconds(1000)));
    EXPECT_FALSE(limit.past_deadline());
    EXPECT_TRUE(limit("int x = 1;\n", t0 + milliseconds(1300)));  // the line rule
    EXPECT_FALSE(limit.past_deadline());
    GenerationTimeLimit late{milliseconds(0), t0 + milliseconds(2000)};
    EXPECT_FALSE(late("int x = f(", t0 + milliseconds(1999)));
    EXPECT_TRUE(late("int x = f(a", t0 + milliseconds(2000)));
    EXPECT_TRUE(late.past_deadline());
}

TEST(GenerationTimeLimitTest, WholeLinesDropsThePartialLastLine) {
    EXPECT_EQ(whole_lines("a();\nb();\n    c("), "a();\nb();");
    EXPECT_EQ(whole_lines("a();\n"), "a();");
    EXPECT_EQ(whole_lines("no break"), "no break");
    EXPECT_EQ(whole_lines(""), "");
}

TEST(PostprocessTest, MidLineKeepsOneLine) {
    EXPECT_EQ(postprocess("a, b\nfoo();", at("f(|)")), "a, b");
}

TEST(PostprocessTest, DropsTheRestOfTheLineRetyped) {
    EXPECT_EQ(postprocess("x + 1;", at("int y = |;")), "x + 1");
}

TEST(PostprocessTest, StopsWhereItRepeatsTheNextLine) {
    const auto c = at("int f() {\n    |\n    return 0;\n}\n");
    EXPECT_EQ(postprocess("int x = 1;\n    return 0;\n}", c), "int x = 1;");
}

TEST(PostprocessTest, CutsAtDedentBelowTheBlock) {
    const auto c = at("def f():\n    x = 1\n    |\n");
    EXPECT_EQ(postprocess("y = 2\n    return x + y\n\ndef g():\n    pass", c),
              "y = 2\n    return x + y");
}

TEST(PostprocessTest, BlockOpenerKeepsItsBodyAndClosingBrace) {
    const auto c = at("void f() {|");
    EXPECT_EQ(postprocess("\n    g();\n}\n\nvoid h() {}", c), "\n    g();\n}");
    const auto py = at("def f():|");
    EXPECT_EQ(postprocess("\n    return 1\nprint(f())", py), "\n    return 1");
}

TEST(PostprocessTest, ClosingBracketTheLineAlreadyHasEndsIt) {
    EXPECT_EQ(postprocess("a, b))", at("call(|)")), "a, b");
    EXPECT_EQ(postprocess("x[0])", at("f(|")), "x[0])");  // the line has no ")": kept
    EXPECT_EQ(postprocess("(a]", at("|")), "(a");         // mismatched
}

TEST(PostprocessTest, UnclosedBracketsCutBackToTheLastBalancedLine) {
    const auto c = at("|");
    EXPECT_EQ(postprocess("a = 1\nb = f(\n  2,", c), "a = 1");
    EXPECT_EQ(postprocess("s = \")(\"\nt", c), "s = \")(\"\nt");  // quoted brackets ignored
}

TEST(PostprocessTest, WhitespaceOnlyIsDropped) {
    EXPECT_EQ(postprocess("  \n\t\n", at("x|")), "");
    EXPECT_EQ(postprocess("", at("|")), "");
    EXPECT_EQ(postprocess("ok  \n\n", at("|")), "ok");
}

TEST(LayoutTest, PrefixStartsAtAStableLineAndContextComesFirst) {
    std::string text;
    for (int i = 0; i < 100; ++i) text += "line " + std::to_string(i) + "\n";
    PromptBudget b;
    b.prefix_tokens = 100;  // 400 bytes: ~50 lines of "line NN\n"
    b.stride_lines = 32;
    const size_t cursor = text.find("line 70") + 4;
    std::vector<ContextBlock> ctx = {
        {"z.h", 3, 4, "int z;\n"}, {"a.h", 1, 1, "int a;"}, {"src/x.cpp", 0, 0, "own file"}};
    const FimLayout l = layout_fim_prompt(text, cursor, "src/x.cpp", ctx, b);
    EXPECT_EQ(l.first_line, 32u);
    EXPECT_EQ(l.prompt.prefix.substr(0, 8), "line 32\n");
    // The prefix ends at line 64 (a multiple of middle_lines = 8); lines 64-69 and line 70
    // up to the cursor begin the middle.
    EXPECT_EQ(l.prompt.prefix.substr(l.prompt.prefix.size() - 8), "line 63\n");
    EXPECT_EQ(l.prompt.context, "// a.h:2\nint a;\n// z.h:4\nint z;\n// src/x.cpp\n");
    EXPECT_EQ(l.prompt.middle.substr(0, 8), "line 64\n");
    EXPECT_EQ(l.prompt.middle.substr(l.prompt.middle.size() - 12), "line 69\nline");
    EXPECT_EQ(l.prompt.suffix.substr(0, 4), " 70\n");
    EXPECT_EQ(l.prompt.prefix + l.prompt.middle,
              text.substr(text.find("line 32"), cursor - text.find("line 32")));
    // Typing changes only the middle: context, prefix and suffix stay.
    std::string typed = text;
    typed.insert(cursor, "xyz");
    const FimLayout l2 = layout_fim_prompt(typed, cursor + 3, "src/x.cpp", ctx, b);
    EXPECT_EQ(l2.prompt.context, l.prompt.context);
    EXPECT_EQ(l2.first_line, l.first_line);
    EXPECT_EQ(l2.prompt.prefix, l.prompt.prefix);
    EXPECT_EQ(l2.prompt.suffix, l.prompt.suffix);
    EXPECT_EQ(l2.prompt.middle, l.prompt.middle + "xyz");
    // On the next line the prefix stays too; at line 72 it takes lines 64-71.
    const size_t next = text.find("line 71");
    const FimLayout l3 = layout_fim_prompt(text, next, "src/x.cpp", ctx, b);
    EXPECT_EQ(l3.prompt.prefix, l.prompt.prefix);
    EXPECT_EQ(l3.prompt.middle.substr(l3.prompt.middle.size() - 8), "line 70\n");
    EXPECT_EQ(l3.prompt.suffix.substr(0, 8), "line 71\n");
    const size_t block = text.find("line 72");
    const FimLayout l4 = layout_fim_prompt(text, block, "src/x.cpp", ctx, b);
    EXPECT_EQ(l4.prompt.prefix,
              l.prompt.prefix + text.substr(text.find("line 64"), block - text.find("line 64")));
    EXPECT_EQ(l4.prompt.middle, "");
    // middle_lines = 1: the middle is the cursor's line only.
    b.middle_lines = 1;
    const FimLayout l5 = layout_fim_prompt(text, cursor, "src/x.cpp", ctx, b);
    EXPECT_EQ(l5.prompt.middle, "line");
    EXPECT_EQ(l5.prompt.prefix + l5.prompt.middle, l.prompt.prefix + l.prompt.middle);
}

TEST(LayoutTest, AVeryLongLineKeepsTheMiddleWithinTheBudgetOnACharacterStart) {
    PromptBudget b;
    b.prefix_tokens = 10;  // 40 bytes
    std::string line;
    for (int i = 0; i < 30; ++i) line += "\xC3\xA9x";  // "éx", 3 bytes, 90 in all
    const std::string text = "first\n" + line + "\nlast\n";
    const size_t cursor = text.find("\nlast");
    const FimLayout l = layout_fim_prompt(text, cursor, "a.cpp", {}, b);
    EXPECT_EQ(l.prompt.prefix, "");
    ASSERT_LE(l.prompt.middle.size(), 40u);
    EXPECT_GE(l.prompt.middle.size(), 38u);
    EXPECT_NE(static_cast<unsigned char>(l.prompt.middle[0]) & 0xC0, 0x80);
    EXPECT_EQ(line.substr(line.size() - l.prompt.middle.size()), l.prompt.middle);
}

TEST(LayoutTest, ContextRespectsItsBudgetAndPythonUsesHash) {
    PromptBudget b;
    b.context_tokens = 5;  // 20 bytes
    const FimLayout l = layout_fim_prompt(
        "x = 1\n", 6, "m.py", {{"a.py", 0, 0, std::string(100, 'a')}, {"b.py", 0, 0, "b"}}, b);
    EXPECT_EQ(l.prompt.context, "# b.py:1\nb\n# m.py\n");
}

TEST(SuggestionCacheTest, TypingThroughASuggestionReturnsTheRest) {
    SuggestionCache c;
    c.put("u", "int x = ", ";\n", "foo(1)");
    EXPECT_EQ(c.get("u", "int x = ", ";\n"), "foo(1)");
    EXPECT_EQ(c.get("u", "int x = fo", ";\n"), "o(1)");
    EXPECT_FALSE(c.get("u", "int x = fa", ";\n"));
    EXPECT_FALSE(c.get("u", "int x = foo(1)", ";\n"));  // typed it all
    EXPECT_FALSE(c.get("u", "int y = fo", ";\n"));      // the text before changed
    EXPECT_FALSE(c.get("v", "int x = fo", ";\n"));
    EXPECT_EQ(c.hits(), 2u);
    c.forget("u");
    EXPECT_FALSE(c.get("u", "int x = fo", ";\n"));
}

// The rungs below the settings' budget: each smaller in every part until the floor (no
// context, 16 prefix and 8 suffix tokens), context gone below 128 tokens, prefixes
// starting at a block of middle_lines.
TEST(SmallerBudgetsTest, HalveEachPartDownToTheCursorsLines) {
    PromptBudget full;  // 1024 / 1536 / 128
    const auto rungs = smaller_budgets(full);
    ASSERT_GE(rungs.size(), 5u);
    EXPECT_EQ(rungs[0].context_tokens, 512u);
    EXPECT_EQ(rungs[0].prefix_tokens, 768u);
    EXPECT_EQ(rungs[0].suffix_tokens, 64u);
    PromptBudget prev = full;
    for (const auto& r : rungs) {
        EXPECT_LE(r.context_tokens, prev.context_tokens);
        EXPECT_LE(r.prefix_tokens, prev.prefix_tokens);
        EXPECT_LE(r.suffix_tokens, prev.suffix_tokens);
        EXPECT_LT(r.context_tokens + r.prefix_tokens + r.suffix_tokens,
                  prev.context_tokens + prev.prefix_tokens + prev.suffix_tokens);
        EXPECT_TRUE(r.context_tokens == 0 || r.context_tokens >= 128) << r.context_tokens;
        EXPECT_EQ(r.stride_lines, full.middle_lines);
        prev = r;
    }
    EXPECT_EQ(rungs.back().context_tokens, 0u);
    EXPECT_EQ(rungs.back().prefix_tokens, 16u);
    EXPECT_EQ(rungs.back().suffix_tokens, 8u);
    // Already at the floor: nothing smaller.
    EXPECT_TRUE(smaller_budgets(rungs.back()).empty());
}

}  // namespace
}  // namespace latent::agent
