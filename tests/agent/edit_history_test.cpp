// EditHistory: keystrokes coalesced into the hunks a person would call one edit, with the
// whole lines before and after; checked on hand-made cases and against a replay of
// random edits (each hunk, laid over the document as it was when the hunk began, gives
// the document as it was after its last change).
#include "agent/edit_history.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace latent::agent {
namespace {

// A document whose changes are recorded, with an injected clock.
struct Doc {
    EditHistory& history;
    std::string uri;
    std::string text;
    int64_t now = 0;
    // Replaces bytes [a, b) by `s`, `ms` after the previous change.
    void replace(size_t a, size_t b, const std::string& s, int64_t ms = 100) {
        now += ms;
        const std::string removed = text.substr(a, b - a);
        text.replace(a, b - a, s);
        history.record(uri, text, a, removed, a + s.size(), now);
    }
    void type(size_t at, const std::string& s) {
        for (size_t i = 0; i < s.size(); ++i) replace(at + i, at + i, s.substr(i, 1));
    }
};

TEST(EditHistory, TypingAWordIsOneHunkWithItsWholeLines) {
    EditHistory h;
    Doc d{h, "file:///a.py", "def f(x):\n    return x\n"};
    d.type(22, " + 1");  // after "return x"
    const auto hunks = h.hunks();
    ASSERT_EQ(hunks.size(), 1u);
    EXPECT_EQ(hunks[0].old_first, 1u);
    EXPECT_EQ(hunks[0].old_count, 1u);
    EXPECT_EQ(hunks[0].before, "    return x\n");
    EXPECT_EQ(hunks[0].after, "    return x + 1\n");
    EXPECT_EQ(unified_diff(hunks[0], "a.py"),
              "--- a/a.py\n+++ b/a.py\n@@ -2,1 +2,1 @@\n-    return x\n+    return x + 1\n");
}

TEST(EditHistory, FarAwayOrLaterChangesStartANewHunk) {
    EditHistory h;
    Doc d{h, "file:///a.py", "a\nb\nc\nd\ne\nf\n"};
    d.replace(0, 1, "A");
    d.replace(2, 3, "B");         // the next line: joins
    d.replace(10, 11, "F");       // four lines away: a new hunk
    d.replace(8, 9, "E", 10000);  // next to it, but 10 s later: a new hunk
    const auto hunks = h.hunks();
    ASSERT_EQ(hunks.size(), 3u);
    EXPECT_EQ(hunks[0].before, "a\nb\n");
    EXPECT_EQ(hunks[0].after, "A\nB\n");
    EXPECT_EQ(hunks[1].after, "F\n");
    EXPECT_EQ(hunks[2].after, "E\n");
    EXPECT_EQ(hunks[2].new_first, 4u);
    // Another document never joins.
    Doc other{h, "file:///b.py", "a\n"};
    other.now = d.now;
    other.replace(0, 1, "z");
    EXPECT_EQ(h.hunks("file:///b.py").size(), 1u);
    EXPECT_EQ(h.hunks("file:///a.py").size(), 3u);
    h.forget("file:///a.py");
    EXPECT_EQ(h.hunks().size(), 1u);
}

TEST(EditHistory, TypedAndDeletedAgainIsNoEdit) {
    EditHistory h;
    Doc d{h, "file:///a.py", "x = 1\n"};
    d.type(5, "23");
    d.replace(6, 7, "");
    d.replace(5, 6, "");
    EXPECT_TRUE(h.hunks().empty());
}

TEST(EditHistory, WholeLinesInsertedOrDeletedCountZeroOnTheOtherSide) {
    EditHistory h;
    Doc d{h, "file:///a.py", "one\ntwo\nthree\n"};
    d.replace(4, 4, "new\n");  // a line inserted before "two"
    auto hunks = h.hunks();
    ASSERT_EQ(hunks.size(), 1u);
    EXPECT_EQ(hunks[0].old_count, 0u);
    EXPECT_EQ(hunks[0].new_count, 1u);
    EXPECT_EQ(hunks[0].after, "new\n");
    EXPECT_EQ(unified_diff(hunks[0], "a.py"), "--- a/a.py\n+++ b/a.py\n@@ -1,0 +2,1 @@\n+new\n");
    d.replace(0, 4, "", 60000);  // "one" deleted whole, later
    hunks = h.hunks();
    ASSERT_EQ(hunks.size(), 2u);
    EXPECT_EQ(hunks[1].before, "one\n");
    EXPECT_EQ(hunks[1].new_count, 0u);
}

TEST(EditHistory, CapsOnCountAndSize) {
    EditHistoryOptions o;
    o.max_hunks = 3;
    o.max_hunk_bytes = 64;
    EditHistory h(o);
    Doc d{h, "file:///a.py", std::string(20, '\n')};
    // From the bottom up, so each offset is still line 4 * i.
    for (int i = 4; i >= 0; --i)
        d.replace(static_cast<size_t>(4 * i), static_cast<size_t>(4 * i), "x", 10000);
    const auto hunks = h.hunks();
    ASSERT_EQ(hunks.size(), 3u);
    EXPECT_EQ(hunks[0].new_first, 8u);                     // the oldest two (lines 16 and 12) went
    d.replace(0, 0, std::string(100, 'p') + "\n", 10000);  // a paste: not kept
    EXPECT_EQ(h.hunks().size(), 3u);
}

TEST(EditHistory, EveryHunkReplaysOverTheDocumentItBeganFrom) {
    for (uint32_t seed = 1; seed <= 40; ++seed) {
        std::mt19937 rng(seed);
        EditHistoryOptions o;
        o.max_hunks = 100000;
        o.max_hunk_bytes = 1u << 20;
        EditHistory h(o);
        Doc d{h, "file:///r.txt", "alpha\nbeta\ngamma\ndelta\nepsilon\nzeta\neta\ntheta\n"};
        std::map<int64_t, std::string> before_at, after_at;  // change time -> document
        const std::vector<std::string> pieces = {"a", "b", "\n", "xy\n", "", "q\nr", "  "};
        for (int step = 0; step < 200; ++step) {
            const size_t n = d.text.size();
            const size_t a = n ? rng() % (n + 1) : 0;
            const size_t len = rng() % 4 == 0 ? rng() % 8 : 0;
            const size_t b = std::min(n, a + len);
            const std::string s = pieces[rng() % pieces.size()];
            const int64_t ms = rng() % 5 == 0 ? 8000 : 50 + rng() % 400;
            before_at[d.now + ms] = d.text;
            d.replace(a, b, s, ms);
            after_at[d.now] = d.text;
        }
        auto lines = [](const std::string& text, uint32_t first, uint32_t count) {
            size_t at = 0;
            for (uint32_t i = 0; i < first && at < text.size(); ++i) {
                const size_t nl = text.find('\n', at);
                at = nl == std::string::npos ? text.size() : nl + 1;
            }
            size_t end = at;
            for (uint32_t i = 0; i < count && end < text.size(); ++i) {
                const size_t nl = text.find('\n', end);
                end = nl == std::string::npos ? text.size() : nl + 1;
            }
            return std::pair<size_t, size_t>{at, end};
        };
        for (const auto& hk : h.hunks()) {
            const std::string& was = before_at.at(hk.first_ms);
            const std::string& now = after_at.at(hk.last_ms);
            const auto [oa, oe] = lines(was, hk.old_first, hk.old_count);
            const auto [na, ne] = lines(now, hk.new_first, hk.new_count);
            ASSERT_EQ(was.substr(oa, oe - oa), hk.before) << "seed " << seed;
            ASSERT_EQ(now.substr(na, ne - na), hk.after) << "seed " << seed;
            ASSERT_EQ(was.substr(0, oa) + hk.after + was.substr(oe), now) << "seed " << seed;
            ASSERT_NE(hk.before, hk.after);
        }
    }
}

}  // namespace
}  // namespace latent::agent
