// OutputConstraints on DeepSeek-V3's real vocabulary, driven by random logits (what a
// random-weight model gives: the best adversary a constrained decoder can have): every
// tool call it lets through parses, names a declared function and, for strict functions,
// holds to the parameters schema; forced calls always come; tool tokens never appear
// where no call may be made. The checks use nlohmann's parser and hand-written schema
// checks, not the decoder's code.
#include "engine/serve/output_constraint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/prompt_format.h"
#include "engine/sampler.h"
#include "engine/serve/tool_calls.h"
#include "tests/support/test_models.h"

namespace latent::serve {
namespace {

using namespace engine;
using json = nlohmann::ordered_json;

class OutputConstraintTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        auto tok = Tokenizer::create(test::real_vocab());
        ASSERT_TRUE(tok.ok()) << tok.error().message;
        tokenizer = new Tokenizer(std::move(*tok));
        for (int32_t id = 0; id < tokenizer->n_vocab(); ++id)
            if (tokenizer->is_eog(id)) end_tokens.push_back(id);
        constraints = new OutputConstraints(*tokenizer, end_tokens);
    }
    static void TearDownTestSuite() {
        delete constraints;
        delete tokenizer;
    }

public:
    struct Generated {
        std::string text;
        bool ended = false;  // an end token came before max_tokens
    };

protected:
    // Samples up to max_tokens with random logits through the constraint.
    static Generated generate(TokenConstraint* c, int32_t max_tokens, uint64_t seed,
                              int32_t boost = -1) {
        // Uniform random logits and a greedy pick: a random token among those allowed,
        // cheap enough on 129k tokens for a thousand generations. `boost`: a token made
        // the favourite at the first step (a model that wants to call a tool).
        uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
        SamplingParams sp;
        sp.temperature = 0.0f;
        Sampler sampler(sp);
        const int32_t n = tokenizer->n_vocab();
        std::vector<float> logits(static_cast<size_t>(n));
        Generated g;
        for (int32_t i = 0; i < max_tokens; ++i) {
            for (auto& v : logits) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v = static_cast<float>(x >> 40) * (1.0f / 16777216.0f);
            }
            if (i == 0 && boost >= 0) logits[size_t(boost)] = 10.0f;
            if (c) c->mask(logits.data(), n, max_tokens - i);
            const int32_t id = sampler.sample(logits.data(), n);
            if (c) c->accept(id);
            if (tokenizer->is_eog(id)) {
                g.ended = true;
                break;
            }
            g.text += tokenizer->token_to_piece(id);
        }
        return g;
    }

public:
    using Driver = std::function<Generated(const ApiRequest&, int32_t, uint64_t)>;

protected:
    // A fresh constraint for the request, driven by random logits.
    static Driver driver() {
        return [](const ApiRequest& r, int32_t max_tokens, uint64_t seed) {
            auto c = constraints->for_request(r);
            EXPECT_TRUE(c && *c);
            // Half the auto runs start with a model that wants a call.
            const int32_t boost = r.tool_choice == ToolChoice::kAuto && seed % 2
                                      ? *tokenizer->find_token(kToolCallsBegin)
                                      : -1;
            return generate(c && *c ? c->get() : nullptr, max_tokens, seed, boost);
        };
    }

    static Tokenizer* tokenizer;
    static std::vector<int32_t> end_tokens;
    static OutputConstraints* constraints;
};

Tokenizer* OutputConstraintTest::tokenizer = nullptr;
std::vector<int32_t> OutputConstraintTest::end_tokens;
OutputConstraints* OutputConstraintTest::constraints = nullptr;

ToolFunction weather(bool strict) {
    ToolFunction f;
    f.name = "get_weather";
    f.strict = strict;
    f.parameters = json::parse(R"({"type":"object","properties":{
        "city":{"type":"string"},
        "when":{"type":"object","properties":{"day":{"type":"integer"},"hour":{"type":"integer"}},
                "required":["day"],"additionalProperties":false},
        "units":{"type":"array","items":{"type":"string","enum":["c","f","k"]},"maxItems":2},
        "note":{"anyOf":[{"type":"string"},{"type":"null"}]}},
        "required":["city","when","units","note"],"additionalProperties":false})");
    return f;
}

ToolFunction lookup() {
    ToolFunction f;
    f.name = "lookup";
    f.parameters = json::parse(R"({"type":"object","properties":{"q":{"type":"string"}}})");
    return f;
}

// The strict weather arguments, checked by hand.
::testing::AssertionResult valid_weather(const std::string& text) {
    const json a = json::parse(text, nullptr, false);
    if (a.is_discarded() || !a.is_object())
        return ::testing::AssertionFailure() << "not an object: " << text;
    if (a.size() != 4) return ::testing::AssertionFailure() << "keys: " << text;
    if (!a["city"].is_string()) return ::testing::AssertionFailure() << "city: " << text;
    const json& w = a["when"];
    if (!w.is_object() || !w.contains("day") || !w["day"].is_number_integer() ||
        (w.contains("hour") && !w["hour"].is_number_integer()) || w.size() > 2)
        return ::testing::AssertionFailure() << "when: " << text;
    if (!a["units"].is_array() || a["units"].size() > 2)
        return ::testing::AssertionFailure() << "units: " << text;
    for (const auto& u : a["units"])
        if (u != "c" && u != "f" && u != "k")
            return ::testing::AssertionFailure() << "unit: " << text;
    if (!a["note"].is_string() && !a["note"].is_null())
        return ::testing::AssertionFailure() << "note: " << text;
    return ::testing::AssertionSuccess();
}

// Runs `runs` generations of a chat request with these tools and checks every call.
void check_calls(OutputConstraintTest::Driver drive, const ApiRequest& r, int runs,
                 int32_t max_tokens, bool forced, uint64_t seed0, int* calls_seen) {
    for (int i = 0; i < runs; ++i) {
        const auto g = drive(r, max_tokens, seed0 + static_cast<uint64_t>(i));
        ToolCallStream split;
        auto u = split.push(g.text);
        auto f = split.finish();
        u.calls.insert(u.calls.end(), f.calls.begin(), f.calls.end());
        if (forced) {
            ASSERT_GE(u.calls.size(), 1u) << "seed " << seed0 + i << ": " << g.text;
            EXPECT_TRUE(g.ended) << g.text;  // the calls closed and the answer ended in time
            EXPECT_EQ(u.content + f.content, "") << g.text;
        }
        if (split.in_calls()) {
            EXPECT_TRUE(g.ended) << "a call begun but not ended: " << g.text;
        }
        for (const auto& call : u.calls) {
            ++*calls_seen;
            bool declared = false;
            for (const auto& t : r.tools) declared = declared || t.name == call.name;
            ASSERT_TRUE(declared) << call.name;
            if (call.name == "get_weather" && r.tools[0].strict) {
                EXPECT_TRUE(valid_weather(call.arguments)) << "seed " << seed0 + i;
            } else {
                const json a = json::parse(call.arguments, nullptr, false);
                EXPECT_TRUE(a.is_object()) << call.arguments;
            }
        }
    }
}

ApiRequest tool_request(ToolChoice choice, bool strict, bool parallel) {
    ApiRequest r;
    r.chat = true;
    r.tools = {weather(strict), lookup()};
    r.tool_choice = choice;
    if (choice == ToolChoice::kFunction) r.tool_choice_name = "get_weather";
    r.parallel_tool_calls = parallel;
    return r;
}

TEST_F(OutputConstraintTest, ForcedStrictCallsAlwaysParseAndHoldToTheSchemaSlow) {
    int calls = 0;
    // 1,000 generations: named and required choices, parallel or not, budgets from tight
    // (the shortest call barely fits) to roomy.
    for (int k = 0; k < 4; ++k) {
        const ToolChoice choice = k % 2 ? ToolChoice::kRequired : ToolChoice::kFunction;
        const ApiRequest r = tool_request(choice, true, k >= 2);
        check_calls(driver(), r, 250, 60 + 20 * k, true, 1000u * (k + 1), &calls);
    }
    EXPECT_GE(calls, 1000);
}

TEST_F(OutputConstraintTest, AutoCallsAreWellFormedOnceBegun) {
    int calls = 0;
    const ApiRequest r = tool_request(ToolChoice::kAuto, false, true);
    check_calls(driver(), r, 40, 48, false, 7, &calls);
    EXPECT_GE(calls, 20);  // the runs that opened with calls-begin made a call
}

TEST_F(OutputConstraintTest, ToolTokensNeverAppearWithoutTools) {
    ApiRequest r;
    r.chat = true;
    auto c = constraints->for_request(r);
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_TRUE(*c);
    const int32_t n = tokenizer->n_vocab();
    std::vector<float> logits(static_cast<size_t>(n), 0.0f);
    const auto begin = tokenizer->find_token(kToolCallsBegin);
    ASSERT_TRUE(begin);
    logits[size_t(*begin)] = 100.0f;  // the model wants a call badly
    (*c)->mask(logits.data(), n, 10);
    EXPECT_TRUE(std::isinf(logits[size_t(*begin)]));
}

TEST_F(OutputConstraintTest, TooFewTokensForARequiredCallOrASchemaIsAClearError) {
    ApiRequest r = tool_request(ToolChoice::kRequired, true, false);
    r.max_tokens = 5;
    auto c = constraints->for_request(r);
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("max_tokens"), std::string::npos);
    ApiRequest j;
    j.chat = true;
    j.response_format.kind = ResponseFormat::Kind::kJsonSchema;
    j.response_format.schema =
        json::parse(R"({"type":"object","properties":{"p":{"format":"email"}}})");
    c = constraints->for_request(j);
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("format"), std::string::npos) << c.error().message;
}

}  // namespace
}  // namespace latent::serve
