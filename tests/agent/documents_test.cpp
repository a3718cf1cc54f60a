// Documents: position <-> byte offset in UTF-16 and UTF-8, incremental sync.
#include "agent/documents.h"

#include <gtest/gtest.h>

namespace latent::agent {
namespace {

using lsp::Position;
using lsp::Range;
using lsp::TextDocumentContentChangeEvent;
constexpr auto k16 = PositionEncoding::kUtf16;
constexpr auto k8 = PositionEncoding::kUtf8;

TEST(PositionTest, AsciiLines) {
    const std::string t = "ab\ncd\n";
    EXPECT_EQ(to_offset(t, {0, 0}, k16), 0u);
    EXPECT_EQ(to_offset(t, {0, 2}, k16), 2u);
    EXPECT_EQ(to_offset(t, {1, 1}, k16), 4u);
    EXPECT_EQ(to_offset(t, {2, 0}, k16), 6u);  // the empty last line
    EXPECT_EQ(to_position(t, 4, k16), (Position{1, 1}));
    EXPECT_EQ(to_position(t, 6, k16), (Position{2, 0}));
}

TEST(PositionTest, ClampsPastLineAndText) {
    const std::string t = "ab\ncd";
    EXPECT_EQ(to_offset(t, {0, 99}, k16), 2u);  // end of line, before its break
    EXPECT_EQ(to_offset(t, {7, 0}, k16), 5u);   // end of text
    EXPECT_EQ(to_offset(t, {1, 99}, k16), 5u);
    EXPECT_EQ(to_position(t, 99, k16), (Position{1, 2}));
}

TEST(PositionTest, SurrogatePairsCountTwoUtf16Units) {
    // "a😀b": 😀 is U+1F600, 4 bytes in UTF-8, 2 units in UTF-16.
    const std::string t =
        "a\xF0\x9F\x98\x80"
        "b";
    EXPECT_EQ(to_offset(t, {0, 1}, k16), 1u);
    EXPECT_EQ(to_offset(t, {0, 3}, k16), 5u);
    EXPECT_EQ(to_offset(t, {0, 4}, k16), 6u);
    EXPECT_EQ(to_offset(t, {0, 2}, k16), 1u);  // inside the pair: rounds down
    EXPECT_EQ(to_position(t, 5, k16), (Position{0, 3}));
    EXPECT_EQ(to_position(t, 3, k16), (Position{0, 1}));  // inside the bytes: rounds down
    EXPECT_EQ(code_units(t, k16), 4u);
    // UTF-8 positions are bytes.
    EXPECT_EQ(to_offset(t, {0, 5}, k8), 5u);
    EXPECT_EQ(to_offset(t, {0, 3}, k8), 1u);  // mid-character: rounds down
    EXPECT_EQ(to_position(t, 5, k8), (Position{0, 5}));
    EXPECT_EQ(code_units(t, k8), 6u);
}

TEST(PositionTest, TwoAndThreeByteCharactersAreOneUtf16Unit) {
    const std::string t = "\xC3\xA9\xE2\x82\xAC!";  // é € !
    EXPECT_EQ(to_offset(t, {0, 1}, k16), 2u);
    EXPECT_EQ(to_offset(t, {0, 2}, k16), 5u);
    EXPECT_EQ(to_position(t, 5, k16), (Position{0, 2}));
    EXPECT_EQ(to_position(t, 5, PositionEncoding::kUtf32), (Position{0, 2}));
}

TEST(PositionTest, InvalidUtf8BytesCountOneUnitEach) {
    const std::string t = "a\xFF\xC3z";  // a lone 0xFF and a truncated 2-byte lead
    EXPECT_EQ(code_units(t, k16), 4u);
    EXPECT_EQ(to_offset(t, {0, 3}, k16), 3u);
    EXPECT_EQ(to_position(t, 3, k16), (Position{0, 3}));
}

TEST(PositionTest, CrLfAndLoneCrEndLines) {
    const std::string t = "ab\r\ncd\ref\n";
    EXPECT_EQ(to_offset(t, {1, 0}, k16), 4u);
    EXPECT_EQ(to_offset(t, {0, 9}, k16), 2u);  // before the \r
    EXPECT_EQ(to_offset(t, {2, 1}, k16), 8u);
    EXPECT_EQ(to_position(t, 4, k16), (Position{1, 0}));
    EXPECT_EQ(to_position(t, 3, k16), (Position{0, 2}));  // between \r and \n
    EXPECT_EQ(to_position(t, 7, k16), (Position{2, 0}));
    EXPECT_EQ(to_position(t, 10, k16), (Position{3, 0}));
}

TEST(PositionTest, RoundTripsEveryCharacterBoundary) {
    const std::string t = "x\xF0\x9F\x98\x80y\r\n\xC3\xA9\tz\n\n\xE2\x82\xAC";
    for (auto enc : {k16, k8, PositionEncoding::kUtf32}) {
        for (size_t off = 0; off <= t.size(); ++off) {
            const Position p = to_position(t, off, enc);
            const size_t back = to_offset(t, p, enc);
            EXPECT_LE(back, off);
            EXPECT_EQ(to_position(t, back, enc), p) << off;
        }
    }
}

TextDocumentContentChangeEvent edit(Range r, std::string text) {
    TextDocumentContentChangeEvent c;
    c.range = r;
    c.text = std::move(text);
    return c;
}

TEST(ApplyChangeTest, InsertDeleteReplace) {
    std::string t = "hello\nworld\n";
    apply_change(t, edit({{0, 5}, {0, 5}}, ","), k16);
    EXPECT_EQ(t, "hello,\nworld\n");
    apply_change(t, edit({{0, 5}, {1, 0}}, ""), k16);  // joins the lines
    EXPECT_EQ(t, "helloworld\n");
    const auto a = apply_change(t, edit({{0, 0}, {0, 5}}, "bye"), k16);
    EXPECT_EQ(t, "byeworld\n");
    EXPECT_EQ(a.start, 0u);
    EXPECT_EQ(a.old_end, 5u);
    EXPECT_EQ(a.new_end, 3u);
}

TEST(ApplyChangeTest, ChangeAtEndOfFile) {
    std::string t = "a\nb";
    apply_change(t, edit({{1, 1}, {1, 1}}, "c\n"), k16);
    EXPECT_EQ(t, "a\nbc\n");
    apply_change(t, edit({{2, 0}, {2, 0}}, "d"), k16);  // the empty last line
    EXPECT_EQ(t, "a\nbc\nd");
    apply_change(t, edit({{9, 0}, {9, 0}}, "!"), k16);  // past the end: appended
    EXPECT_EQ(t, "a\nbc\nd!");
}

TEST(ApplyChangeTest, SurrogatePairEditsInUtf16AndUtf8) {
    std::string t =
        "a\xF0\x9F\x98\x80"
        "b";
    apply_change(t, edit({{0, 1}, {0, 3}}, "X"), k16);  // replaces the emoji
    EXPECT_EQ(t, "aXb");
    t = "a\xF0\x9F\x98\x80"
        "b";
    apply_change(t, edit({{0, 1}, {0, 5}}, "Y"), k8);
    EXPECT_EQ(t, "aYb");
}

TEST(ApplyChangeTest, ReversedRangeIsEmptyAtStartAndFullSyncReplaces) {
    std::string t = "abc";
    apply_change(t, edit({{0, 2}, {0, 1}}, "-"), k16);
    EXPECT_EQ(t, "ab-c");
    TextDocumentContentChangeEvent full;
    full.text = "new";
    apply_change(t, full, k16);
    EXPECT_EQ(t, "new");
}

TEST(DocumentStoreTest, IncrementalChangesApplyInOrder) {
    DocumentStore s;
    s.open({"file:///a.py", "python", 1, "def f():\r\n    pass\r\n"});
    std::vector<AppliedChange> applied;
    ASSERT_TRUE(s.change("file:///a.py", 2,
                         {edit({{1, 4}, {1, 8}}, "return 1"), edit({{0, 4}, {0, 5}}, "g")},
                         &applied));
    const auto d = s.get("file:///a.py");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->text, "def g():\r\n    return 1\r\n");
    EXPECT_EQ(d->version, 2);
    EXPECT_EQ(applied.size(), 2u);
    EXPECT_FALSE(s.change("file:///missing", 1, {edit({{0, 0}, {0, 0}}, "x")}));
    s.close("file:///a.py");
    EXPECT_FALSE(s.get("file:///a.py"));
}

TEST(DocumentStoreTest, RefusesOversizedResultAndKeepsText) {
    DocumentStore s;
    s.open({"u", "c", 1, "abc"});
    TextDocumentContentChangeEvent big;
    big.text.assign(DocumentStore::kMaxDocumentBytes + 1, 'x');
    EXPECT_FALSE(s.change("u", 2, {big}));
    EXPECT_EQ(s.get("u")->text, "abc");
    EXPECT_EQ(s.get("u")->version, 1);
}

TEST(EncodingTest, NegotiatesUtf8OnlyWhenOffered) {
    EXPECT_EQ(negotiate_encoding(std::nullopt), k16);
    EXPECT_EQ(negotiate_encoding(std::vector<std::string>{"utf-16"}), k16);
    EXPECT_EQ(negotiate_encoding(std::vector<std::string>{"utf-32", "utf-8"}), k8);
    EXPECT_STREQ(encoding_name(k8), "utf-8");
}

TEST(UriTest, FileUrisRoundTrip) {
    EXPECT_EQ(uri_to_path("file:///a/b%20c.cpp"), "/a/b c.cpp");
    EXPECT_EQ(uri_to_path("file://localhost/x"), "/x");
    EXPECT_EQ(uri_to_path("untitled:1"), "");
    EXPECT_EQ(path_to_uri("/a/b c.cpp"), "file:///a/b%20c.cpp");
    EXPECT_EQ(uri_to_path(path_to_uri("/t/\xC3\xA9#x")), "/t/\xC3\xA9#x");
}

}  // namespace
}  // namespace latent::agent
