// Tests for engine/token_bytes.h and engine/json_constraint.h on the real DeepSeek-V3
// vocabulary: the fast mask equals a plain reference (every token's bytes fed to a copy of
// the matcher) in many states, and generations from random logits (a seeded stand-in for
// a random-weight model, and the tiny test model through the Scheduler) always end in a
// document that nlohmann::json parses and that satisfies the schema by a checker that
// shares no code with the grammar (tests/support/json_schema_check.h), even when
// max_tokens is small.
#include "engine/json_constraint.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <random>

#include "engine/reference.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "engine/tokenizer.h"
#include "tests/support/json_schema_check.h"
#include "tests/support/test_models.h"

namespace latent::engine {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

struct V3 {
    std::optional<Tokenizer> tokenizer;
    std::shared_ptr<const TokenBytes> bytes;
    std::shared_ptr<const JsonTokenTables> tables;
};

// The V3 tokenizer and its tables, built once for the suite.
const V3& v3() {
    static const V3 v = [] {
        V3 r;
        auto tok = Tokenizer::create(test::real_vocab());
        if (!tok) {
            ADD_FAILURE() << tok.error().message;
            return r;
        }
        r.tokenizer = std::move(*tok);
        r.bytes = TokenBytes::create(*r.tokenizer);
        r.tables = JsonTokenTables::create(r.bytes);
        return r;
    }();
    return v;
}

std::shared_ptr<const JsonGrammar> compile(const std::string& schema) {
    auto g = JsonGrammar::compile(ojson::parse(schema));
    EXPECT_TRUE(g.ok()) << (g.ok() ? "" : g.error().message);
    return g.ok() ? *g : JsonGrammar::any_object();
}

// The schemas generations are checked against; "" stands for json_object.
const std::vector<std::string>& schemas() {
    static const std::vector<std::string> s = {
        "",
        R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
            "email":{"type":["string","null"]},"tags":{"type":"array","items":{"type":"string"},
            "minItems":1,"maxItems":3},"address":{"type":"object","properties":{
            "city":{"type":"string"},"zip":{"type":"integer"}},"required":["city"],
            "additionalProperties":false},"role":{"enum":["admin","user","guest"]}},
            "required":["name","age","tags","role"],"additionalProperties":false})",
        R"({"type":"object","properties":{"result":{"anyOf":[{"type":"object","properties":{
            "ok":{"const":true},"value":{"type":"number"}},"required":["ok","value"]},
            {"type":"object","properties":{"ok":{"const":false},"error":{"type":"string"}},
            "required":["ok","error"]}]},"score":{"type":"number"}},"required":["result"]})",
        R"({"$defs":{"node":{"type":"object","properties":{"label":{"enum":["a","b","c"]},
            "children":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":2}},
            "required":["label","children"]}},"$ref":"#/$defs/node"})",
        R"({"type":"array","minItems":2,"maxItems":4,"items":{"type":"object","properties":{
            "id":{"type":"integer"},"flag":{"type":"boolean"},"note":{"type":["string","null"]}},
            "required":["id","flag"]}})",
        R"({"type":"object","properties":{"matrix":{"type":"array","items":{"type":"array",
            "items":{"type":"integer"},"minItems":2,"maxItems":2},"minItems":2,"maxItems":3},
            "meta":{"type":"object","additionalProperties":{"type":"number"}},
            "any":{}},"required":["matrix","meta","any"]})",
        R"({"definitions":{"expr":{"anyOf":[{"type":"integer"},{"type":"object","properties":{
            "op":{"enum":["+","*"]},"args":{"type":"array","items":{"$ref":"#/definitions/expr"},
            "minItems":2,"maxItems":2}},"required":["op","args"]}]}},"$ref":"#/definitions/expr"})",
    };
    return s;
}

std::shared_ptr<const JsonGrammar> grammar_of(const std::string& schema) {
    return schema.empty() ? JsonGrammar::any_object() : compile(schema);
}

std::string check_document(const std::string& text, const std::string& schema) {
    json v;
    try {
        v = json::parse(text);
    } catch (const json::exception& e) {
        return std::string("does not parse: ") + e.what();
    }
    if (schema.empty()) return v.is_object() ? "" : "not an object";
    const json s = json::parse(schema);
    return test::schema_violation(v, s, s);
}

// The reference mask: every text token whose bytes the state takes, one by one.
TokenSet reference_mask(const JsonGrammar& g, const TokenBytes& tb, const JsonMatcher::State& st,
                        uint32_t max_completion) {
    TokenSet out(tb.n_vocab());
    JsonMatcher::State a, b;
    for (int32_t id = 0; id < tb.n_vocab(); ++id) {
        if (!tb.is_text(id)) continue;
        a = st;
        bool ok = true;
        for (char c : tb.bytes(id)) {
            if (!JsonMatcher::step(g, a, uint8_t(c), b)) {
                ok = false;
                break;
            }
            a = b;
        }
        if (ok && (max_completion == UINT32_MAX ||
                   JsonMatcher::completion_length(g, a) <= max_completion))
            out.set(id);
    }
    return out;
}

#define REQUIRE_V3()                                 \
    const V3& v = v3();                              \
    ASSERT_TRUE(v.tables) << "V3 tokenizer missing"; \
    (void)v

TEST(JsonConstraint, TokenBytesOfTheV3Vocabulary) {
    REQUIRE_V3();
    const TokenBytes& tb = *v.bytes;
    EXPECT_EQ(tb.n_vocab(), 129280);
    for (int32_t id : {0, 1, 2, 128800, 128803, 128804, 128805, 128806, 128814})
        EXPECT_TRUE(tb.is_special(id)) << id;
    EXPECT_FALSE(tb.is_text(129279));  // [PAD] slot
    size_t in_trie = tb.trie().tokens.size(), text = 0;
    for (int32_t id = 0; id < tb.n_vocab(); ++id) text += tb.is_text(id) ? 1 : 0;
    EXPECT_EQ(in_trie, text);
    EXPECT_GT(text, 120000u);
    // Every token's bytes lead through the trie to it.
    for (int32_t id = 3; id < tb.n_vocab(); id += 97) {
        if (!tb.is_text(id)) continue;
        uint32_t node = 0;
        for (char c : tb.bytes(id)) {
            const auto& n = tb.trie().nodes[node];
            uint32_t next = UINT32_MAX;
            for (uint32_t k = 0; k < n.n_children; ++k)
                if (tb.trie().byte[n.first_child + k] == uint8_t(c)) next = n.first_child + k;
            ASSERT_NE(next, UINT32_MAX);
            node = next;
        }
        const auto& n = tb.trie().nodes[node];
        bool found = false;
        for (uint32_t k = 0; k < n.n_tokens; ++k)
            found |= tb.trie().tokens[n.first_token + k] == id;
        EXPECT_TRUE(found) << id;
    }
    // Plain string content: most of the vocabulary.
    EXPECT_GT(v.tables->plain_string().count(), 100000u);
    EXPECT_TRUE(v.tables->plain_string().test(*v.tokenizer->find_token("hello")));
    EXPECT_FALSE(v.tables->plain_string().test(*v.tokenizer->find_token("\"")));
    EXPECT_FALSE(v.tables->plain_string().test(*v.tokenizer->find_token("Ċ")));  // "\n"
}

// States along documents (every prefix of each), in and out of strings, mid-escape and
// mid-character, each masked fast and by the reference, with and without the
// completion-length cap.
void expect_masks_match(const std::string& schema, const std::string& doc, int stride) {
    const V3& v = v3();
    auto g = grammar_of(schema);
    JsonMasker masker(v.tables, g);
    JsonMatcher m(g);
    TokenSet fast(v.bytes->n_vocab());
    for (size_t i = 0; i <= doc.size(); ++i) {
        if (i > 0) {
            ASSERT_TRUE(m.feed(uint8_t(doc[i - 1]))) << doc.substr(0, i);
        }
        if (i % size_t(stride) != 0 && i != doc.size()) continue;
        masker.allowed(m.state(), fast);
        const TokenSet ref = reference_mask(*g, *v.bytes, m.state(), UINT32_MAX);
        ASSERT_TRUE(fast == ref) << "after " << doc.substr(0, i) << ": fast " << fast.count()
                                 << " tokens, reference " << ref.count();
        ASSERT_TRUE(fast.any() || m.is_closed()) << doc.substr(0, i);
        // Again from the cache.
        masker.allowed(m.state(), fast);
        ASSERT_TRUE(fast == ref);
        const uint32_t cap = m.completion_length() + 3;
        masker.allowed(m.state(), fast, cap);
        ASSERT_TRUE(fast == reference_mask(*g, *v.bytes, m.state(), cap)) << doc.substr(0, i);
    }
}

TEST(JsonConstraint, FastMaskEqualsReferenceOnV3) {
    REQUIRE_V3();
    expect_masks_match(
        "", "{\"k\": [1, -2.5e+3, \"a\\u00e9\\uD83D\\uDE00\\n\", true], \"\xC3\xA9\":{}}", 1);
    expect_masks_match(schemas()[1],
                       R"({"name":"Ann \"Lee\"","age":42,"tags":["x"],"role":"guest"})", 7);
    expect_masks_match(schemas()[6], R"({"op":"+","args":[1,{"op":"*","args":[2,3]}]})", 9);
}

TEST(JsonConstraint, SlowFastMaskEqualsReferenceOnV3EveryState) {
    REQUIRE_V3();
    expect_masks_match(schemas()[1],
                       "{\"name\": \"Zo\xC3\xAB \\\\ \\t\", \"age\": -7, \"email\": null, "
                       "\"tags\": [\"a\", \"b\"], \"address\": {\"city\": \"\xE6\x9D\xB1\"}, "
                       "\"role\": \"admin\"}",
                       1);
    expect_masks_match(schemas()[3], R"({"label":"a","children":[{"label":"b","children":[]}]})",
                       1);
    expect_masks_match(schemas()[5], R"({"matrix":[[1,2],[3,4]],"meta":{"x":1.5},"any":[null]})",
                       1);
}

struct GenResult {
    std::string text;
    int tokens = 0;
    bool ended = false;
};

// One generation: random logits (xorshift, like a random-weight model's row), masked,
// then sampled by the engine's Sampler; stops at an end token or max_tokens.
GenResult generate(const std::shared_ptr<const JsonGrammar>& g, uint64_t seed, int max_tokens,
                   std::vector<float>& row) {
    const V3& v = v3();
    const int32_t eos = v.tokenizer->eos();
    JsonConstraint c(v.tables, g, {eos});
    SamplingParams sp;
    sp.seed = seed;
    sp.temperature = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    Sampler sampler(sp);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    GenResult r;
    const int32_t n = v.bytes->n_vocab();
    for (int step = 0; step < max_tokens; ++step) {
        // Scale 4: peaked enough that the choice is not uniform over the allowed set.
        for (int32_t i = 0; i < n; ++i) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            row[size_t(i)] = float(x >> 40) * (4.0f / float(1 << 24));
        }
        c.mask(row.data(), n, max_tokens - step);
        const int32_t id = sampler.sample(row.data(), n);
        sampler.accept(id);
        c.accept(id);
        EXPECT_FALSE(c.failed()) << "sampled " << id << " outside the mask";
        ++r.tokens;
        if (id == eos) {
            r.ended = true;
            break;
        }
    }
    r.text = c.text();
    return r;
}

void run_generations(int count, uint64_t first_seed) {
    std::vector<float> row(size_t(v3().bytes->n_vocab()));
    std::vector<std::shared_ptr<const JsonGrammar>> grammars;
    for (const std::string& s : schemas()) grammars.push_back(grammar_of(s));
    int ended = 0;
    for (int i = 0; i < count; ++i) {
        const uint64_t seed = first_seed + uint64_t(i);
        const size_t k = size_t(i) % schemas().size();
        const int max_tokens = 24 + int((seed * 7919) % 73);  // 24..96
        const GenResult r = generate(grammars[k], seed, max_tokens, row);
        ended += r.ended;
        ASSERT_EQ(check_document(r.text, schemas()[k]), "")
            << "schema " << k << " seed " << seed << " max_tokens " << max_tokens << ": " << r.text;
    }
    // Most generations end on their own, not at max_tokens (the caps make them finish).
    EXPECT_GE(ended, count / 2);
}

TEST(JsonConstraint, RandomLogitGenerationsAreValid) {
    REQUIRE_V3();
    run_generations(int(schemas().size()), 1000);  // one each; the Slow test runs 1,050
}

TEST(JsonConstraint, SlowThousandRandomLogitGenerationsAreValid) {
    REQUIRE_V3();
    run_generations(1050, 1);
}

TEST(JsonConstraint, MaxTokensTooSmallStillEndsComplete) {
    REQUIRE_V3();
    std::vector<float> row(size_t(v3().bytes->n_vocab()));
    // The shortest document of schema 1 is about 40 bytes: 44 tokens must suffice.
    for (uint64_t seed = 0; seed < 6; ++seed) {
        const GenResult r = generate(grammar_of(schemas()[1]), seed, 44, row);
        EXPECT_EQ(check_document(r.text, schemas()[1]), "") << r.text;
    }
}

TEST(JsonConstraint, EndTokensOnlyWhenCompleteAndNeverSpecials) {
    REQUIRE_V3();
    const int32_t eos = v.tokenizer->eos();
    JsonConstraint c(v.tables, JsonGrammar::any_object(), {eos});
    std::vector<float> row(size_t(v.bytes->n_vocab()), 0.0f);
    c.mask(row.data(), v.bytes->n_vocab(), 1000);
    EXPECT_TRUE(std::isinf(row[size_t(eos)]));
    for (int32_t id = 0; id < v.bytes->n_vocab(); ++id)
        if (v.bytes->is_special(id)) {
            ASSERT_TRUE(std::isinf(row[size_t(id)])) << id;
        }
    // Only "{" or whitespace can start an object.
    EXPECT_TRUE(std::isfinite(row[size_t(*v.tokenizer->find_token("{"))]));
    EXPECT_TRUE(std::isinf(row[size_t(*v.tokenizer->find_token("["))]));
    for (const char* piece : {"{\"", "a", "\":", "1", "}"}) {
        const auto ids = v.tokenizer->encode(piece, false, false);
        ASSERT_EQ(ids.size(), 1u) << piece;
        c.accept(ids[0]);
        ASSERT_FALSE(c.failed()) << piece;
    }
    EXPECT_EQ(c.text(), "{\"a\":1}");
    std::fill(row.begin(), row.end(), 0.0f);
    c.mask(row.data(), v.bytes->n_vocab(), 1000);
    EXPECT_EQ(c.last_allowed().count(), 1u);  // closed: the end token alone
    EXPECT_TRUE(std::isfinite(row[size_t(eos)]));
    // A token outside the mask makes it fail safe: end tokens only from then on.
    c.accept(*v.tokenizer->find_token("x"));
    EXPECT_TRUE(c.failed());
}

TEST(JsonConstraint, FinishingFollowsTheShortestCompletion) {
    REQUIRE_V3();
    auto g = grammar_of(schemas()[1]);
    JsonConstraint c(v.tables, g, {v.tokenizer->eos()});
    for (int32_t id : v.tokenizer->encode("{\"name\":\"Bob", false, false)) c.accept(id);
    ASSERT_FALSE(c.failed());
    const std::string rest = c.matcher().shortest_completion();
    EXPECT_EQ(rest, "\",\"age\":0,\"tags\":[\"\"],\"role\":\"user\"}");
    std::vector<float> row(size_t(v.bytes->n_vocab()), 0.0f);
    // Finishing: one token at a time along the completion, the longest that fits.
    std::string written;
    for (int32_t left = int32_t(rest.size()) + 1; left > 0; --left) {
        std::fill(row.begin(), row.end(), 0.0f);
        c.mask(row.data(), v.bytes->n_vocab(), left);
        ASSERT_TRUE(c.finishing());
        ASSERT_EQ(c.last_allowed().count(), 1u);
        int32_t id = -1;
        for (int32_t i = 0; i < v.bytes->n_vocab(); ++i)
            if (std::isfinite(row[size_t(i)])) id = i;
        c.accept(id);
        if (id == v.tokenizer->eos()) break;
        written += v.bytes->bytes(id);
    }
    EXPECT_EQ(written, rest);
    EXPECT_TRUE(c.ended());
    EXPECT_LT(v.tokenizer->encode(rest, false, false).size(), rest.size());
}

TEST(JsonConstraint, SchedulerWithTinyModelGivesValidJson) {
    REQUIRE_V3();
    MakeModelOptions o;
    o.preset = "tiny";
    o.quant = GgmlType::kQ8_0;
    auto model = Model::load(test::make_test_model(o, /*real_tokenizer=*/true));
    ASSERT_TRUE(model.ok()) << model.error().message;
    auto tok = Tokenizer::create((*model)->vocab());
    ASSERT_TRUE(tok.ok());
    auto tables = JsonTokenTables::create(TokenBytes::create(*tok));
    ReferenceBackend backend;
    Scheduler::Options so;
    so.threaded = false;
    so.prefix_cache_bytes = 1 << 20;
    so.cache_bytes = 16 << 20;
    auto sched = Scheduler::create(**model, backend, so);
    ASSERT_TRUE(sched.ok()) << sched.error().message;
    std::vector<std::string> texts(3), reasons(3);
    for (int i = 0; i < 3; ++i) {
        const std::string& schema = schemas()[size_t(i) % 3];
        Request r;
        r.prompt = tok->encode("Reply in JSON.", true, false);
        r.sampling.seed = uint64_t(i);
        r.sampling.temperature = i % 2 ? 1.0f : 0.0f;
        r.max_tokens = 32 + 8 * i;
        r.end_tokens = {tok->eos()};
        auto c = std::make_shared<JsonConstraint>(tables, grammar_of(schema),
                                                  std::vector<int32_t>{tok->eos()});
        r.constraint = c;
        r.on_done = [&, i, c](const RequestResult& res) {
            texts[size_t(i)] = c->text();
            reasons[size_t(i)] = res.finish_reason;
        };
        ASSERT_TRUE((*sched)->submit(std::move(r)).ok());
    }
    (*sched)->run_until_idle();
    for (int i = 0; i < 3; ++i) {
        EXPECT_TRUE(reasons[size_t(i)] == "stop" || reasons[size_t(i)] == "length");
        EXPECT_EQ(check_document(texts[size_t(i)], schemas()[size_t(i) % 3]), "")
            << texts[size_t(i)];
    }
}

}  // namespace
}  // namespace latent::engine
