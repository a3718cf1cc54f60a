// Tests for engine/json_matcher.h: every prefix of valid documents accepted, invalid
// bytes refused exactly where they go wrong, the caps, and random byte walks whose every
// prefix, completed by shortest_completion(), parses (nlohmann::json) and satisfies the
// schema (tests/support/json_schema_check.h, which shares no code with the matcher).
#include "engine/json_matcher.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <random>

#include "tests/support/json_schema_check.h"

namespace latent::engine {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

std::shared_ptr<const JsonGrammar> grammar(const std::string& schema) {
    auto g = JsonGrammar::compile(ojson::parse(schema));
    EXPECT_TRUE(g.ok()) << (g.ok() ? "" : g.error().message);
    return g.ok() ? *g : JsonGrammar::any_object();
}

std::shared_ptr<const JsonGrammar> any_value() { return grammar("{}"); }

// Feeds doc byte by byte; returns the index of the first refused byte, or -1.
long first_refused(JsonMatcher& m, const std::string& doc) {
    for (size_t i = 0; i < doc.size(); ++i) {
        if (!m.feed(uint8_t(doc[i]))) return long(i);
    }
    return -1;
}

void expect_valid(const std::shared_ptr<const JsonGrammar>& g, const std::string& doc) {
    JsonMatcher m(g);
    for (size_t i = 0; i < doc.size(); ++i) {
        ASSERT_TRUE(m.feed(uint8_t(doc[i]))) << "refused byte " << i << " of " << doc;
        // Every prefix can still be completed into a document the parser takes.
        const std::string done = doc.substr(0, i + 1) + m.shortest_completion();
        json parsed;
        ASSERT_NO_THROW(parsed = json::parse(done)) << done;
        ASSERT_EQ(m.completion_length(), m.shortest_completion().size());
    }
    EXPECT_TRUE(m.is_complete()) << doc;
    EXPECT_EQ(m.shortest_completion(), "") << doc;
}

void expect_refused_at(const std::shared_ptr<const JsonGrammar>& g, const std::string& doc,
                       long at) {
    JsonMatcher m(g);
    EXPECT_EQ(first_refused(m, doc), at) << doc;
}

TEST(JsonMatcher, AcceptsEveryPrefixOfValidDocuments) {
    auto g = any_value();
    const char* docs[] = {
        "0",
        "-0",
        "12",
        "-3.25",
        "1e5",
        "1E+2",
        "2.5e-3",
        "true",
        "false",
        "null",
        "\"\"",
        "\"plain\"",
        R"("esc \" \\ \/ \b \f \n \r \t")",
        R"("\u0041\u00e9\uD83D\uDE00")",
        "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"",
        "[]",
        "[1,2,3]",
        "{}",
        R"({"a":1,"b":[true,false,null],"c":{"d":"e"}})",
        " \n\t{ \"k\" : [ 1 , { } ] } \r\n",
        "[[[[[]]]]]",
        R"({"":""})",
        "123456789012345",
        "0.123456789012345",
    };
    for (const char* d : docs) expect_valid(g, d);
}

TEST(JsonMatcher, RefusesInvalidBytesWhereTheyGoWrong) {
    auto g = any_value();
    expect_refused_at(g, "01", 1);  // leading zero
    expect_refused_at(g, "-a", 1);
    expect_refused_at(g, "1.e5", 2);   // a digit must follow the dot
    expect_refused_at(g, "1e+", -1);   // a valid prefix ...
    expect_refused_at(g, "[1e+]", 4);  // ... that cannot end
    expect_refused_at(g, "tru ", 3);
    expect_refused_at(g, "nul1", 3);
    expect_refused_at(g, "[1,]", 3);       // trailing comma
    expect_refused_at(g, "{\"a\" 1}", 5);  // missing colon
    expect_refused_at(g, "{\"a\":1,}", 7);
    expect_refused_at(g, "{1:2}", 1);  // keys are strings
    expect_refused_at(g, "[1 2]", 3);
    expect_refused_at(g, "\"a\nb\"", 2);  // raw control character
    expect_refused_at(g, "\"\\x\"", 2);   // unknown escape
    expect_refused_at(g, "\"\\u12G4\"", 5);
    expect_refused_at(g, "\"\\uDC00\"", 4);   // lone low surrogate
    expect_refused_at(g, "\"\\uD800x\"", 7);  // high surrogate without its low half
    expect_refused_at(g, "\"\\uD800\\n\"", 8);
    expect_refused_at(g, "\"\\uD800\\uD800\"", 10);
    expect_refused_at(g, "\"\xC0\x80\"", 1);          // overlong
    expect_refused_at(g, "\"\xE0\x80\x80\"", 2);      // overlong 3-byte
    expect_refused_at(g, "\"\xED\xA0\x80\"", 2);      // UTF-8 surrogate
    expect_refused_at(g, "\"\xF4\x90\x80\x80\"", 2);  // above U+10FFFF
    expect_refused_at(g, "\"\xC3\"", 2);              // truncated sequence
    expect_refused_at(g, "\"\xFF\"", 1);
    expect_refused_at(g, "{}}", 2);
    expect_refused_at(g, "1 2", 2);  // one value per document
}

TEST(JsonMatcher, CapsDigitsWhitespaceAndNesting) {
    auto g = any_value();
    expect_refused_at(g, "1234567890123456", 15);
    expect_refused_at(g, "-0.1234567890123456", 18);
    expect_refused_at(g, "1e123", 4);
    expect_refused_at(g, std::string(JsonMatcher::kMaxWhitespace, ' ') + " 1",
                      JsonMatcher::kMaxWhitespace);
    // Whitespace inside strings is content, not counted.
    expect_valid(g, "\"" + std::string(100, ' ') + "\"");
    const int cap = JsonGrammar::kMaxNesting;
    expect_valid(g, std::string(size_t(cap - 1), '[') + "0" + std::string(size_t(cap - 1), ']'));
    expect_valid(g, std::string(size_t(cap), '[') + std::string(size_t(cap), ']'));
    expect_refused_at(g, std::string(size_t(cap + 1), '['), cap);
    // The innermost of 32 containers can only stay empty.
    expect_refused_at(g, std::string(size_t(cap), '[') + "0", cap);

    auto integer = grammar(R"({"type":"integer"})");
    expect_refused_at(integer, "1.5", 1);
    expect_refused_at(integer, "1e5", 1);
    expect_valid(integer, "-42");
}

TEST(JsonMatcher, CompleteAndClosed) {
    JsonMatcher m(any_value());
    EXPECT_FALSE(m.is_complete());
    EXPECT_EQ(m.shortest_completion(), "0");
    ASSERT_TRUE(m.feed("12"));
    EXPECT_TRUE(m.is_complete());
    EXPECT_FALSE(m.is_closed());  // more digits may come
    ASSERT_TRUE(m.feed(" "));
    EXPECT_TRUE(m.is_closed());

    JsonMatcher o(JsonGrammar::any_object());
    EXPECT_FALSE(o.feed("1"));
    EXPECT_FALSE(o.feed("[]"));
    ASSERT_TRUE(o.feed("{\"a\":[1,{\"b\":\"x"));
    EXPECT_EQ(o.shortest_completion(), "\"}]}");
    EXPECT_FALSE(o.feed("\x01"));   // a refused byte changes nothing
    EXPECT_FALSE(o.feed("x\x01"));  // nor does a refused string
    ASSERT_TRUE(o.feed("\"}]}"));
    EXPECT_TRUE(o.is_closed());
    EXPECT_FALSE(o.accepts("x"));
    EXPECT_TRUE(o.accepts(" \n"));
}

TEST(JsonMatcher, SchemaObjectsKeepDeclaredOrderAndRequiredProperties) {
    auto g = grammar(R"({"type":"object","properties":{"z":{"type":"integer"},
        "a":{"type":"string"},"m":{"type":"boolean"}},"required":["a"]})");
    expect_valid(g, R"({"z":1,"a":"x","m":true})");
    expect_valid(g, R"({"a":"x"})");
    expect_valid(g, R"({ "z" : 1 , "a" : "" })");
    expect_refused_at(g, R"({"a":"x","z":1})", 10);  // z comes before a
    expect_refused_at(g, R"({"m":true})", 2);        // m would skip the required a
    expect_refused_at(g, R"({"z":1})", 6);           // a is required
    expect_refused_at(g, R"({"q":1})", 2);           // undeclared
    expect_refused_at(g, R"({"z":"1"})", 5);
    JsonMatcher m(g);
    ASSERT_TRUE(m.feed("{\"z\":7,"));
    EXPECT_EQ(m.shortest_completion(), "\"a\":\"\"}");
}

TEST(JsonMatcher, EnumsAnyOfAndRefs) {
    auto e = grammar(R"({"enum":["red","re",1,12,{"k":[true]},null]})");
    for (const char* d : {R"("red")", R"("re")", "1", "12", R"({"k":[true]})", "null"})
        expect_valid(e, d);
    expect_refused_at(e, R"("r")", 2);
    expect_refused_at(e, "123", 2);
    expect_refused_at(e, R"({ "k":[true]})", 1);  // enum values in their compact form

    auto a = grammar(R"({"anyOf":[{"type":"string"},{"type":"array","items":{"type":"integer"},
        "maxItems":2},{"type":"null"}]})");
    for (const char* d : {R"("s")", "[1,2]", "[]", "null"}) expect_valid(a, d);
    expect_refused_at(a, "[1,2,3]", 4);
    expect_refused_at(a, "true", 0);

    auto nullable = grammar(R"({"type":["integer","null"]})");
    expect_valid(nullable, "7");
    expect_valid(nullable, "null");
    expect_refused_at(nullable, "7.5", 1);

    auto tree = grammar(R"({"$defs":{"t":{"type":"object","properties":{"v":{"type":"integer"},
        "kids":{"type":"array","items":{"$ref":"#/$defs/t"}}},"required":["v"]}},
        "$ref":"#/$defs/t"})");
    expect_valid(tree, R"({"v":1,"kids":[{"v":2},{"v":3,"kids":[{"v":4,"kids":[]}]}]})");
    expect_refused_at(tree, R"({"v":1,"kids":[{"kids":[]}]})", 17);  // v first
}

TEST(JsonMatcher, ArrayBounds) {
    auto g = grammar(R"({"type":"array","items":{"type":"boolean"},"minItems":2,"maxItems":3})");
    expect_valid(g, "[true,false]");
    expect_valid(g, "[true,false,true]");
    expect_refused_at(g, "[]", 1);
    expect_refused_at(g, "[true]", 5);
    expect_refused_at(g, "[true,true,true,", 15);
    JsonMatcher m(g);
    ASSERT_TRUE(m.feed("[tr"));
    EXPECT_EQ(m.shortest_completion(), "ue,true]");
}

// Random JSON values whose numbers fit the digit caps, written compact or indented,
// with ASCII escapes (surrogate pairs) or raw UTF-8.
json random_value(std::mt19937& rng, int depth) {
    const int kind = int(rng() % (depth > 4 ? 5 : 7));
    switch (kind) {
        case 0:
            return nullptr;
        case 1:
            return rng() % 2 == 0;
        case 2:
            return int64_t(rng() % 2000000) - 1000000;
        case 3:
            return double(int64_t(rng() % 100000) - 50000) / 64.0;
        case 4: {
            std::string s;
            const int n = int(rng() % 8);
            for (int i = 0; i < n; ++i) {
                const uint32_t pick = rng() % 6;
                const uint32_t cp = pick == 0   ? rng() % 0x20
                                    : pick == 1 ? 0x20 + rng() % 0x60
                                    : pick == 2 ? 0x80 + rng() % 0x780
                                    : pick == 3 ? 0x800 + rng() % 0x7000
                                    : pick == 4 ? 0xE000 + rng() % 0x2000
                                                : 0x10000 + rng() % 0x100000;
                if (cp < 0x80) {
                    s += char(cp);
                } else if (cp < 0x800) {
                    s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
                } else if (cp < 0x10000) {
                    s += char(0xE0 | (cp >> 12)), s += char(0x80 | ((cp >> 6) & 0x3F));
                    s += char(0x80 | (cp & 0x3F));
                } else {
                    s += char(0xF0 | (cp >> 18)), s += char(0x80 | ((cp >> 12) & 0x3F));
                    s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
                }
            }
            return s;
        }
        case 5: {
            json a = json::array();
            const int n = int(rng() % 4);
            for (int i = 0; i < n; ++i) a.push_back(random_value(rng, depth + 1));
            return a;
        }
        default: {
            json o = json::object();
            const int n = int(rng() % 4);
            for (int i = 0; i < n; ++i)
                o["k" + std::to_string(rng() % 10)] = random_value(rng, depth + 1);
            return o;
        }
    }
}

TEST(JsonMatcher, RandomDocumentsAreAcceptedWhole) {
    std::mt19937 rng(7);
    auto g = any_value();
    for (int i = 0; i < 300; ++i) {
        const json v = random_value(rng, 0);
        const bool ascii = i % 2 == 0;
        const std::string doc = v.dump(i % 3 == 0 ? 2 : -1, ' ', ascii);
        JsonMatcher m(g);
        ASSERT_EQ(first_refused(m, doc), -1) << doc;
        ASSERT_TRUE(m.is_complete()) << doc;
        ASSERT_EQ(json::parse(doc), v);
    }
}

// Random walks: each step feeds a byte drawn from those the matcher takes (found by
// trying all 256), then the prefix plus shortest_completion() must parse and satisfy the
// schema. A soundness check of every state the walk visits.
void random_walks(const std::string& schema_text, int walks, uint32_t seed) {
    const json schema = json::parse(schema_text);
    auto g = grammar(schema_text);
    std::mt19937 rng(seed);
    for (int w = 0; w < walks; ++w) {
        JsonMatcher m(g);
        std::string doc;
        const int steps = 1 + int(rng() % 120);
        for (int i = 0; i < steps; ++i) {
            std::vector<uint8_t> ok;
            for (int b = 0; b < 256; ++b)
                if (m.accepts(std::string(1, char(b)))) ok.push_back(uint8_t(b));
            if (ok.empty()) {
                ASSERT_TRUE(m.is_closed()) << doc;
                break;
            }
            // Prefer structure over long runs of string content.
            const uint8_t b = ok[rng() % ok.size()];
            ASSERT_TRUE(m.feed(b));
            doc += char(b);
        }
        const std::string done = doc + m.shortest_completion();
        JsonMatcher check(g);
        ASSERT_TRUE(check.feed(done)) << done;
        ASSERT_TRUE(check.is_complete()) << done;
        json v;
        ASSERT_NO_THROW(v = json::parse(done)) << done;
        ASSERT_EQ(test::schema_violation(v, schema, schema), "") << done;
    }
}

TEST(JsonMatcher, RandomWalksCompleteIntoValidDocuments) {
    random_walks("{}", 150, 1);
    random_walks(R"({"type":"object"})", 100, 2);
    random_walks(R"({"type":"object","properties":{"name":{"type":"string"},
        "age":{"type":"integer"},"tags":{"type":"array","items":{"enum":["a","bb","ccc"]},
        "minItems":1,"maxItems":3},"alive":{"type":"boolean"},"spouse":{"type":["string","null"]}},
        "required":["name","tags"]})",
                 150, 3);
    random_walks(R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"number"},
        "next":{"anyOf":[{"$ref":"#/$defs/node"},{"type":"null"}]}},"required":["v","next"]}},
        "$ref":"#/$defs/node"})",
                 150, 4);
    random_walks(R"({"type":"array","minItems":2,"items":{"anyOf":[{"type":"string"},
        {"type":"object","properties":{"x":{"const":[1,{"y":null}]}}},{"type":"integer"}]}})",
                 150, 5);
}

}  // namespace
}  // namespace latent::engine
