// Model-driven next edits: the prompt's shape (markers, cursor, history in order, context
// choice, a prefix that stays put while the cursor moves), the region around the cursor
// clamped to the document, and the model's rewrite turned into edits or dropped by the
// filters (no change, whitespace, imports, undo of the last edit, runaway, cut off).
#include "agent/next_edit_model.h"

#include <gtest/gtest.h>

#include <cstdio>

namespace latent::agent {
namespace {

// "l000\nl001\n..." : `lines` lines, each 5 bytes.
std::string numbered(int lines) {
    std::string s;
    char buf[16];
    for (int i = 0; i < lines; ++i) {
        std::snprintf(buf, sizeof buf, "l%03d\n", i);
        s += buf;
    }
    return s;
}

const std::string& user_of(const NextEditPrompt& p) { return p.messages.at(1).content; }

std::string apply(std::string text, const std::vector<RegionEdit>& edits) {
    for (auto it = edits.rbegin(); it != edits.rend(); ++it)
        text.replace(it->start, it->end - it->start, it->new_text);
    return text;
}

std::string marked(std::string_view region) {
    return std::string(kRegionStartMarker) + "\n" + std::string(region) +
           std::string(kRegionEndMarker) + "\n";
}

EditHunk hunk(uint32_t first, std::string before, std::string after) {
    EditHunk h;
    h.uri = "file:///w/a.cpp";
    h.old_first = h.new_first = first;
    h.old_count = before.empty() ? 0 : 1;
    h.new_count = after.empty() ? 0 : 1;
    h.before = std::move(before);
    h.after = std::move(after);
    return h;
}

TEST(NextEditPrompt, RegionAroundTheCursorWithMarkersAndTheCursorAtItsByte) {
    const std::string text = numbered(100);
    NextEditModelInput in;
    in.path = "src/a.txt";
    in.text = text;
    in.cursor = 50 * 5 + 2;  // "l0|50"
    const NextEditPrompt p = build_next_edit_prompt(in);

    ASSERT_EQ(p.messages.size(), 2u);
    EXPECT_EQ(p.messages[0].role, "system");
    EXPECT_EQ(p.messages[1].role, "user");
    // 16 lines, a third (5) above the cursor's.
    EXPECT_EQ(p.region_start, 45u * 5);
    EXPECT_EQ(p.region_end, 61u * 5);
    EXPECT_EQ(p.region, text.substr(45 * 5, 16 * 5));
    const std::string expected = std::string(kRegionStartMarker) + "\n" +
                                 text.substr(45 * 5, 5 * 5 + 2) + std::string(kCursorMarker) +
                                 text.substr(50 * 5 + 2, 11 * 5 - 2) +
                                 std::string(kRegionEndMarker) + "\n";
    EXPECT_NE(user_of(p).find(expected), std::string::npos) << user_of(p);
    // Up to 30 lines above (from a multiple of 8) and 30 below, no file boundary markers.
    EXPECT_NE(user_of(p).find("l008\n"), std::string::npos);
    EXPECT_EQ(user_of(p).find("l007\n"), std::string::npos);
    EXPECT_NE(user_of(p).find("l090\n"), std::string::npos);
    EXPECT_EQ(user_of(p).find("l091\n"), std::string::npos);
    EXPECT_EQ(user_of(p).find("<|start_of_file|>"), std::string::npos);
    EXPECT_EQ(user_of(p).find("<|end_of_file|>"), std::string::npos);
    EXPECT_NE(user_of(p).find("src/a.txt"), std::string::npos);
    // The region rewritten, half again, 3 bytes a token, + 64.
    EXPECT_EQ(p.max_tokens, static_cast<int32_t>(80 / 2 + 64));
}

TEST(NextEditPrompt, RegionClampedAtTheDocumentsStart) {
    const std::string text = numbered(100);
    NextEditModelInput in;
    in.text = text;
    in.cursor = 1 * 5;
    in.region_lines = 12;
    const NextEditPrompt p = build_next_edit_prompt(in);
    EXPECT_EQ(p.region_start, 0u);
    EXPECT_EQ(p.region_end, 12u * 5);
    EXPECT_NE(user_of(p).find("<|start_of_file|>\n" + std::string(kRegionStartMarker) + "\nl000\n" +
                              std::string(kCursorMarker) + "l001\n"),
              std::string::npos)
        << user_of(p);
}

TEST(NextEditPrompt, RegionClampedAtTheDocumentsEnd) {
    std::string text = numbered(100);
    text.pop_back();  // the last line without its newline
    NextEditModelInput in;
    in.text = text;
    in.cursor = text.size();
    const NextEditPrompt p = build_next_edit_prompt(in);
    EXPECT_EQ(p.region_start, 84u * 5);
    EXPECT_EQ(p.region_end, text.size());
    EXPECT_NE(user_of(p).find("l099" + std::string(kCursorMarker) + "\n" +
                              std::string(kRegionEndMarker) + "\n<|end_of_file|>\n"),
              std::string::npos)
        << user_of(p);

    // A document shorter than the region: all of it.
    const std::string small = numbered(5);
    in.text = small;
    in.cursor = 7;
    const NextEditPrompt q = build_next_edit_prompt(in);
    EXPECT_EQ(q.region_start, 0u);
    EXPECT_EQ(q.region_end, small.size());
    EXPECT_NE(user_of(q).find("<|start_of_file|>"), std::string::npos);
    EXPECT_NE(user_of(q).find("<|end_of_file|>"), std::string::npos);
}

TEST(NextEditPrompt, HistoryAsDiffsOldestFirstTheNewestKept) {
    const std::string text = numbered(40);
    NextEditModelInput in;
    in.path = "a.txt";
    in.text = text;
    in.cursor = 20 * 5;
    for (int i = 0; i < 12; ++i) {
        char before[32], after[32];
        std::snprintf(before, sizeof before, "old%02d\n", i);
        std::snprintf(after, sizeof after, "new%02d\n", i);
        in.history.push_back({"a.txt", hunk(static_cast<uint32_t>(i), before, after)});
    }
    const std::string u = user_of(build_next_edit_prompt(in));
    // The newest 8 (4..11), in order, as unified diffs; the older ones left out.
    EXPECT_EQ(u.find("+new03\n"), std::string::npos);
    size_t at = 0;
    for (int i = 4; i < 12; ++i) {
        char line[32];
        std::snprintf(line, sizeof line, "+new%02d\n", i);
        const size_t found = u.find(line);
        ASSERT_NE(found, std::string::npos) << line;
        EXPECT_GT(found, at) << line;
        at = found;
    }
    EXPECT_NE(u.find(unified_diff(in.history.back().second, "a.txt")), std::string::npos);

    // Over the byte cap, the older ones go first; the newest stays.
    in.history_bytes = 100;
    const std::string v = user_of(build_next_edit_prompt(in));
    EXPECT_NE(v.find("+new11\n"), std::string::npos);
    EXPECT_EQ(v.find("+new08\n"), std::string::npos);
}

TEST(NextEditPrompt, StablePartsFirstSoMovingTheCursorKeepsThePrefix) {
    const std::string text = numbered(200);
    NextEditModelInput in;
    in.path = "a.txt";
    in.text = text;
    in.history.push_back({"a.txt", hunk(3, "x\n", "y\n")});
    in.recent.push_back({"b.txt", 10, 12, "recent snippet\n"});
    in.definitions.push_back({"c.h", 4, 4, "int definition();\n"});
    in.cursor = 100 * 5;
    const NextEditPrompt p = build_next_edit_prompt(in);
    in.cursor = 103 * 5 + 1;
    const NextEditPrompt q = build_next_edit_prompt(in);

    EXPECT_EQ(p.messages[0].content, q.messages[0].content);
    const std::string& a = user_of(p);
    const std::string& b = user_of(q);
    ASSERT_NE(a, b);
    const size_t recent = a.find("recent snippet"), def = a.find("int definition();");
    const size_t diff = a.find("+y\n"), file = a.find("The file being edited");
    ASSERT_NE(file, std::string::npos);
    EXPECT_LT(recent, def);
    EXPECT_LT(def, diff);
    EXPECT_LT(diff, file);
    size_t common = 0;
    while (common < a.size() && common < b.size() && a[common] == b[common]) ++common;
    EXPECT_GT(common, file);

    // Deterministic, whatever order the caller gave the context in.
    in.definitions.push_back({"a0.h", 1, 1, "int another();\n"});
    const NextEditPrompt r = build_next_edit_prompt(in);
    std::swap(in.definitions[0], in.definitions[1]);
    EXPECT_EQ(user_of(build_next_edit_prompt(in)), user_of(r));
}

TEST(NextEditPrompt, ContextCappedDefinitionsFirstExcerptNotRepeated) {
    const std::string text = numbered(100);
    NextEditModelInput in;
    in.path = "a.txt";
    in.text = text;
    in.cursor = 50 * 5;
    in.definitions.push_back({"d.h", 0, 0, std::string(60, 'd') + "\n"});
    in.recent.push_back({"r.h", 0, 0, std::string(60, 'r') + "\n"});
    in.recent.push_back({"a.txt", 48, 52, "this file, in the excerpt\n"});
    in.recent.push_back({"a.txt", 2, 3, "this file, far above\n"});
    in.context_bytes = 100;  // one block
    std::string u = user_of(build_next_edit_prompt(in));
    EXPECT_NE(u.find(std::string(60, 'd')), std::string::npos);
    EXPECT_EQ(u.find(std::string(60, 'r')), std::string::npos);
    in.context_bytes = 8192;
    in.recent.push_back({"d.h", 0, 0, std::string(60, 'd') + "\n"});  // also a definition
    u = user_of(build_next_edit_prompt(in));
    EXPECT_EQ(u.find(std::string(60, 'd')), u.rfind(std::string(60, 'd')));
    EXPECT_NE(u.find(std::string(60, 'r')), std::string::npos);
    EXPECT_NE(u.find("```a.txt:3\nthis file, far above\n```\n"), std::string::npos) << u;
    EXPECT_EQ(u.find("this file, in the excerpt"), std::string::npos);
}

// --- The answer ---

struct Parsed {
    std::vector<RegionEdit> edits;
    std::string why;
};

struct Case {
    std::string text;
    NextEditPrompt prompt;
    explicit Case(std::string t, size_t cursor = 0, uint32_t region_lines = 16)
        : text(std::move(t)) {
        NextEditModelInput in;
        in.path = "a.cpp";
        in.text = text;
        in.cursor = cursor;
        in.region_lines = region_lines;
        prompt = build_next_edit_prompt(in);
    }
    Parsed parse(std::string_view answer, const EditHunk* last = nullptr) const {
        Parsed out;
        out.edits = parse_next_edit_answer(prompt, text, answer, last, &out.why);
        return out;
    }
};

const std::string kCode =
    "#include <vector>\n"
    "\n"
    "int sum(const std::vector<int>& v) {\n"
    "    int total = 0;\n"
    "    for (int x : v) count += x;\n"
    "    return count;\n"
    "}\n";

TEST(NextEditAnswer, OneWordChangeIsOneSmallEditAtItsBytes) {
    const Case c(kCode, kCode.find("int total"));
    std::string rewrite = kCode;
    rewrite.replace(rewrite.find("count += x"), 5, "total");
    const Parsed r = c.parse(marked(rewrite));
    ASSERT_EQ(r.edits.size(), 1u) << r.why;
    EXPECT_EQ(r.edits[0],
              (RegionEdit{kCode.find("count += x"), kCode.find("count += x") + 5, "total"}));

    // Two separate lines: two edits, in order.
    rewrite.replace(rewrite.find("return count"), 12, "return total");
    const Parsed two = c.parse(marked(rewrite));
    ASSERT_EQ(two.edits.size(), 2u) << two.why;
    EXPECT_EQ(two.edits[1], (RegionEdit{kCode.find("return count") + 7,
                                        kCode.find("return count") + 12, "total"}));
    EXPECT_EQ(apply(kCode, two.edits), rewrite);
}

TEST(NextEditAnswer, MultiLineInsertAndDeletion) {
    const std::string text = "a\nb\nc\nd\n";
    const Case c(text, 2);
    const Parsed ins = c.parse(marked("a\nb\nx\ny\nc\nd\n"));
    ASSERT_EQ(ins.edits.size(), 1u) << ins.why;
    EXPECT_EQ(ins.edits[0], (RegionEdit{4, 4, "x\ny\n"}));

    const Parsed del = c.parse(marked("a\nd\n"));
    ASSERT_EQ(del.edits.size(), 1u) << del.why;
    EXPECT_EQ(del.edits[0], (RegionEdit{2, 6, ""}));
}

TEST(NextEditAnswer, RegionInTheMiddleGivesBytesOfTheWholeText) {
    const std::string text = numbered(100);
    const Case c(text, 50 * 5, 8);
    std::string rewrite = c.prompt.region;
    rewrite.replace(rewrite.find("l051"), 4, "L051");
    const Parsed r = c.parse(marked(rewrite));
    ASSERT_EQ(r.edits.size(), 1u) << r.why;
    EXPECT_EQ(r.edits[0], (RegionEdit{51 * 5, 51 * 5 + 1, "L"}));
}

TEST(NextEditAnswer, CrlfFileAnsweredWithBareNewlines) {
    const std::string text = "int a;\r\nint b;\r\n";
    const Case c(text, 0);
    const Parsed r = c.parse(marked("int a;\nlong b;\n"));
    ASSERT_EQ(r.edits.size(), 1u) << r.why;
    EXPECT_EQ(r.edits[0], (RegionEdit{8, 11, "long"}));
}

TEST(NextEditAnswer, FencedUnmarkedAndStrayCursorAccepted) {
    const Case c(kCode, 0);
    std::string rewrite = kCode;
    rewrite.replace(rewrite.find("count += x"), 5, "total");
    const RegionEdit want{kCode.find("count += x"), kCode.find("count += x") + 5, "total"};

    for (const std::string& answer : {
             "```cpp\n" + marked(rewrite) + "```\n",
             "Here is the region:\n```cpp\n" + rewrite + "```", rewrite,
             marked(rewrite).substr(kRegionStartMarker.size() + 1),  // only the end marker
             "```\n" + rewrite.substr(0, 50) + std::string(kCursorMarker) + rewrite.substr(50) +
                 "```\n",
             std::string(kRegionStartMarker) + "\n" + rewrite.substr(0, rewrite.size() - 1) +
                 std::string(kRegionEndMarker),  // no newline before the end marker
         }) {
        const Parsed r = c.parse(answer);
        ASSERT_EQ(r.edits.size(), 1u) << answer << "\n" << r.why;
        EXPECT_EQ(r.edits[0], want) << answer;
    }
}

TEST(NextEditAnswer, DroppedWhenEmptyCutOffOrUnchanged) {
    const Case c(kCode, 10);
    EXPECT_TRUE(c.parse("").edits.empty());
    EXPECT_EQ(c.parse("  \n").why, "empty answer");
    EXPECT_EQ(c.parse(marked("")).why, "empty rewrite");
    const Parsed cut = c.parse(std::string(kRegionStartMarker) + "\n#include <vector>\n");
    EXPECT_TRUE(cut.edits.empty());
    EXPECT_NE(cut.why.find("not closed"), std::string::npos) << cut.why;
    EXPECT_NE(c.parse("```cpp\n#include <vector>\n").why.find("not closed"), std::string::npos);

    const Parsed same = c.parse(marked(kCode));
    EXPECT_TRUE(same.edits.empty());
    EXPECT_EQ(same.why, "no change");
    // The cursor marker left where it was is no change either.
    EXPECT_EQ(
        c.parse(marked(kCode.substr(0, 10) + std::string(kCursorMarker) + kCode.substr(10))).why,
        "no change");
}

TEST(NextEditAnswer, DroppedWhenOnlyWhitespaceChanges) {
    const Case c(kCode, 10);
    std::string rewrite = kCode;
    rewrite.replace(rewrite.find("    int total"), 4, "  ");  // re-indented
    rewrite.replace(rewrite.find("return count"), 0, "\t");   // and a tab
    rewrite += "\n";                                          // a blank line
    const Parsed r = c.parse(marked(rewrite));
    EXPECT_TRUE(r.edits.empty());
    EXPECT_EQ(r.why, "whitespace only");
    // One real change beside them: all kept (three lines in a row, and the blank line).
    rewrite.replace(rewrite.find("count += x"), 5, "total");
    const Parsed kept = c.parse(marked(rewrite));
    EXPECT_EQ(kept.edits.size(), 4u) << kept.why;
    EXPECT_EQ(apply(kCode, kept.edits), rewrite);
}

TEST(NextEditAnswer, DroppedWhenOnlyImportsChange) {
    struct Lang {
        std::string text, rewrite;
    };
    const Lang langs[] = {
        {"#include <vector>\n\nint f();\n", "#include <vector>\n#include <string>\n\nint f();\n"},
        {"import os\n\nx = 1\n", "import os\nimport sys\nfrom a.b import (c, d)\n\nx = 1\n"},
        {"import { a } from './a';\nconst x = 1;\n",
         "import { a, b } from './a';\nconst fs = require('fs');\nconst x = 1;\n"},
        {"import (\n\t\"fmt\"\n)\n\nfunc f() {}\n",
         "import (\n\t\"fmt\"\n\tstr \"strings\"\n)\n\nfunc f() {}\n"},
        {"use std::io;\n\nfn f() {}\n", "use std::io;\nuse std::fs;\n\nfn f() {}\n"},
        {"using namespace std;\nint x;\n", "using namespace std;\nusing std::string;\nint x;\n"},
    };
    for (const auto& l : langs) {
        const Case c(l.text, 0);
        const Parsed r = c.parse(marked(l.rewrite));
        EXPECT_TRUE(r.edits.empty()) << l.rewrite;
        EXPECT_EQ(r.why, "imports only") << l.rewrite;
    }
    // An import with the code that needs it is a next edit.
    const Case c("#include <vector>\n\nint f();\n", 0);
    EXPECT_EQ(
        c.parse(marked("#include <vector>\n#include <string>\n\nint f();\nstd::string g();\n"))
            .edits.size(),
        2u);
    // A type alias is not an import.
    EXPECT_EQ(c.parse(marked("#include <vector>\n\nusing V = std::vector<int>;\nint f();\n"))
                  .edits.size(),
              1u);
}

TEST(NextEditAnswer, DroppedWhenItOnlyUndoesTheLastEdit) {
    // The user just renamed count to total on line 3; the model puts count back.
    const EditHunk last = hunk(3, "    int count = 0;\n", "    int total = 0;\n");
    const Case c(kCode, kCode.find("total"));
    std::string undo = kCode;
    undo.replace(undo.find("int total"), 9, "int count");
    const Parsed r = c.parse(marked(undo), &last);
    EXPECT_TRUE(r.edits.empty());
    EXPECT_EQ(r.why, "it only undoes the last edit");
    // Without the hunk the same answer is an edit; and following the rename is kept.
    EXPECT_EQ(c.parse(marked(undo)).edits.size(), 1u);
    std::string follow = kCode;
    follow.replace(follow.find("count += x"), 5, "total");
    follow.replace(follow.find("return count"), 12, "return total");
    EXPECT_EQ(c.parse(marked(follow), &last).edits.size(), 2u);
    // A hunk that no longer matches the text is not judged.
    const EditHunk stale = hunk(3, "    int count = 0;\n", "    int other = 0;\n");
    EXPECT_EQ(c.parse(marked(undo), &stale).edits.size(), 1u);
}

TEST(NextEditAnswer, DroppedWhenTheModelRanOn) {
    const std::string text = "a\nb\nc\n";
    const Case c(text, 0);
    std::string runaway = text;
    while (runaway.size() <= 4 * text.size() + 1024) runaway += "more\n";
    const Parsed r = c.parse(marked(runaway));
    EXPECT_TRUE(r.edits.empty());
    EXPECT_NE(r.why.find("ran on"), std::string::npos) << r.why;
    // Just under the limit is still an edit.
    runaway.resize(4 * text.size() + 1024 - 5);
    runaway.back() = '\n';
    EXPECT_FALSE(c.parse(marked(runaway)).edits.empty());
}

TEST(NextEditAnswer, RefusesAnotherText) {
    const Case c(kCode, 0);
    std::vector<RegionEdit> edits =
        parse_next_edit_answer(c.prompt, "something else", marked("x\n"), nullptr, nullptr);
    EXPECT_TRUE(edits.empty());
}

}  // namespace
}  // namespace latent::agent
