// The DeepSeek API's features on `latent serve`, over HTTP with the tiny random-weight
// model (the hardest client a constrained decoder can have: unmasked, it writes garbage):
// tool calls (forced, strict, streamed, results sent back), JSON output (json_object,
// json_schema), chat prefix completion, logprobs, several choices, usage in streams and
// DeepSeek's /beta routes.
#include "engine/prompt_format.h"
#include "engine/serve/tool_calls.h"
#include "tests/serve/serve_fixture.h"

namespace latent::serve::serve_test {
namespace {

const json kWeatherTool = {{"type", "function"},
                           {"function",
                            {{"name", "get_weather"},
                             {"description", "Weather of a city"},
                             {"strict", true},
                             {"parameters",
                              {{"type", "object"},
                               {"properties",
                                {{"city", {{"type", "string"}}},
                                 {"days", {{"type", "integer"}}},
                                 {"unit", {{"type", "string"}, {"enum", {"c", "f"}}}}}},
                               {"required", {"city", "days", "unit"}},
                               {"additionalProperties", false}}}}}};

const json kSearchTool = {
    {"type", "function"},
    {"function",
     {{"name", "search"},
      {"parameters",
       {{"type", "object"}, {"properties", {{"q", {{"type", "string"}}}}}, {"required", {"q"}}}}}}};

// The tiny model with DeepSeek-V3's real vocabulary: its tool tokens, and masks over all
// 129,280 tokens.
class ServeV3Test : public ServeTest {
protected:
    void SetUp() override { load(true); }
};

json user(const std::string& text) { return {{"role", "user"}, {"content", text}}; }

// The strict weather arguments, checked by hand (not by the decoder's code).
void expect_weather_args(const std::string& text) {
    const json a = json::parse(text, nullptr, false);
    ASSERT_FALSE(a.is_discarded()) << text;
    ASSERT_TRUE(a.is_object()) << text;
    EXPECT_EQ(a.size(), 3u) << text;
    EXPECT_TRUE(a["city"].is_string()) << text;
    EXPECT_TRUE(a["days"].is_number_integer()) << text;
    EXPECT_TRUE(a["unit"] == "c" || a["unit"] == "f") << text;
}

TEST_F(ServeV3Test, ARequiredStrictToolCallAlwaysParses) {
    start();
    for (uint64_t seed = 1; seed <= 4; ++seed) {
        const json req = {
            {"messages", {user("weather in Paris?")}},
            {"tools", {kWeatherTool, kSearchTool}},
            {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}},
            {"seed", seed},
            {"max_tokens", 80}};
        const Reply r = post("/v1/chat/completions", req);
        ASSERT_EQ(r.status, 200) << r.body;
        const json j = json::parse(r.body);
        const json& choice = j["choices"][0];
        EXPECT_EQ(choice["finish_reason"], "tool_calls") << r.body;
        const json& calls = choice["message"]["tool_calls"];
        ASSERT_GE(calls.size(), 1u) << r.body;
        for (const auto& c : calls) {
            EXPECT_EQ(c["type"], "function");
            EXPECT_TRUE(c["id"].get<std::string>().starts_with("call_"));
            EXPECT_EQ(c["function"]["name"], "get_weather");
            expect_weather_args(c["function"]["arguments"].get<std::string>());
        }
    }
}

TEST_F(ServeV3Test, RequiredToolCallsStreamAsOpenAiDeltas) {
    start();
    const json req = {{"messages", {user("find it")}},
                      {"tools", {kSearchTool}},
                      {"tool_choice", "required"},
                      {"stream", true},
                      {"seed", 3},
                      {"max_tokens", 60}};
    const Reply r = post("/v1/chat/completions", req);
    ASSERT_EQ(r.status, 200) << r.body;
    bool done = false;
    const auto evs = events(r.body, &done);
    EXPECT_TRUE(done);
    int calls = 0;
    std::string finish;
    for (const auto& e : evs) {
        const json& c = e["choices"][0];
        if (c["delta"].contains("tool_calls")) {
            const json& t = c["delta"]["tool_calls"][0];
            EXPECT_EQ(t["index"], calls);
            EXPECT_EQ(t["function"]["name"], "search");
            const json args =
                json::parse(t["function"]["arguments"].get<std::string>(), nullptr, false);
            EXPECT_TRUE(args.is_object()) << t.dump();
            ++calls;
        }
        if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
    }
    EXPECT_GE(calls, 1);
    EXPECT_EQ(finish, "tool_calls");
}

TEST_F(ServeV3Test, ToolResultsGoBackIntoThePrompt) {
    start();
    const json messages = {
        user("weather?"),
        {{"role", "assistant"},
         {"content", nullptr},
         {"tool_calls",
          {{{"id", "call_1"},
            {"type", "function"},
            {"function", {{"name", "get_weather"}, {"arguments", "{\"city\":\"Oslo\"}"}}}}}}},
        {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "rain"}}};
    const Reply r = post("/v1/chat/completions",
                         {{"messages", messages}, {"tools", {kWeatherTool}}, {"max_tokens", 1}});
    ASSERT_EQ(r.status, 200) << r.body;
    // The prompt is the V3 template's rendering of exactly these turns.
    std::vector<ChatMessage> m(3);
    m[0] = {"user", "weather?"};
    m[1].role = "assistant";
    m[1].tool_calls = {{"call_1", "get_weather", "{\"city\":\"Oslo\"}"}};
    m[2].role = "tool";
    m[2].content = "rain";
    m[2].tool_call_id = "call_1";
    ChatOptions co;
    co.tool_prompt = tool_prompt(
        {ToolFunction{"get_weather", "Weather of a city",
                      json::parse(kWeatherTool["function"]["parameters"].dump()), true}});
    EXPECT_EQ(json::parse(r.body)["usage"]["prompt_tokens"].get<size_t>(),
              chat_tokens(*tokenizer, m, co).size());
}

TEST_F(ServeV3Test, JsonObjectOutputIsAlwaysAnObject) {
    start();
    for (uint64_t seed = 1; seed <= 4; ++seed) {
        const json req = {{"messages", {user("give me json")}},
                          {"response_format", {{"type", "json_object"}}},
                          {"seed", seed},
                          {"max_tokens", 24 + static_cast<int>(seed) * 4}};
        const Reply r = post(seed % 2 ? "/v1/chat/completions" : "/beta/chat/completions", req);
        ASSERT_EQ(r.status, 200) << r.body;
        const std::string text = json::parse(r.body)["choices"][0]["message"]["content"];
        const json v = json::parse(text, nullptr, false);
        EXPECT_TRUE(v.is_object()) << text;
    }
}

TEST_F(ServeV3Test, JsonSchemaOutputValidatesAndUnsupportedKeywordsAreNamed) {
    start();
    const json schema = {
        {"type", "object"},
        {"properties",
         {{"name", {{"type", "string"}}},
          {"tags", {{"type", "array"}, {"items", {{"type", "string"}}}, {"maxItems", 3}}},
          {"ok", {{"type", "boolean"}}}}},
        {"required", {"name", "tags", "ok"}},
        {"additionalProperties", false}};
    for (uint64_t seed = 1; seed <= 4; ++seed) {
        const json req = {
            {"messages", {user("x")}},
            {"response_format",
             {{"type", "json_schema"},
              {"json_schema", {{"name", "t"}, {"strict", true}, {"schema", schema}}}}},
            {"seed", seed},
            {"stream", seed % 2 == 0},
            {"max_tokens", 64}};
        const Reply r = post("/v1/chat/completions", req);
        ASSERT_EQ(r.status, 200) << r.body;
        std::string text;
        if (seed % 2 == 0) {
            bool done = false;
            for (const auto& e : events(r.body, &done))
                if (e["choices"][0]["delta"].contains("content"))
                    text += e["choices"][0]["delta"]["content"].get<std::string>();
        } else {
            text = json::parse(r.body)["choices"][0]["message"]["content"];
        }
        const json v = json::parse(text, nullptr, false);
        ASSERT_TRUE(v.is_object()) << text;
        EXPECT_TRUE(v["name"].is_string()) << text;
        EXPECT_TRUE(v["ok"].is_boolean()) << text;
        ASSERT_TRUE(v["tags"].is_array()) << text;
        EXPECT_LE(v["tags"].size(), 3u) << text;
        EXPECT_EQ(v.size(), 3u) << text;
    }
    json bad = schema;
    bad["properties"]["name"]["pattern"] = "^a";
    const Reply r =
        post("/v1/chat/completions",
             {{"messages", {user("x")}},
              {"response_format",
               {{"type", "json_schema"}, {"json_schema", {{"name", "t"}, {"schema", bad}}}}}});
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("pattern"), std::string::npos) << r.body;
}

TEST_F(ServeV3Test, APrefixMessageIsContinuedNotAnswered) {
    start();
    const json messages = {
        user("write a loop"),
        {{"role", "assistant"}, {"content", "```python\nfor"}, {"prefix", true}}};
    for (const bool stream : {false, true}) {
        const Reply r = post(
            "/beta/chat/completions",
            {{"messages", messages}, {"max_tokens", 4}, {"temperature", 0}, {"stream", stream}});
        ASSERT_EQ(r.status, 200) << r.body;
        std::vector<ChatMessage> m = {{"user", "write a loop"}, {"assistant", "```python\nfor"}};
        ChatOptions co;
        co.prefix = true;
        const auto ids = chat_tokens(*tokenizer, m, co);
        // Ends with the prefix's own text: no end-of-sentence, no new assistant turn.
        EXPECT_NE(ids.back(), tokenizer->eos());
        if (!stream) {
            const json j = json::parse(r.body);
            EXPECT_EQ(j["usage"]["prompt_tokens"].get<size_t>(), ids.size());
            EXPECT_EQ(j["choices"][0]["message"]["content"].get<std::string>().find("```python"),
                      std::string::npos);
        }
    }
    // Only the last message may be a prefix.
    const json wrong = {{{"role", "assistant"}, {"content", "a"}, {"prefix", true}}, user("b")};
    EXPECT_EQ(post("/v1/chat/completions", {{"messages", wrong}}).status, 400);
}

TEST_F(ServeV3Test, LogprobsChoicesAndStreamUsage) {
    start();
    Reply r = post("/v1/chat/completions", {{"messages", {user("hi")}},
                                            {"logprobs", true},
                                            {"top_logprobs", 3},
                                            {"max_tokens", 5},
                                            {"n", 2},
                                            {"seed", 9}});
    ASSERT_EQ(r.status, 200) << r.body;
    json j = json::parse(r.body);
    ASSERT_EQ(j["choices"].size(), 2u);
    int total = 0;
    for (const auto& c : j["choices"]) {
        const json& content = c["logprobs"]["content"];
        total += static_cast<int>(content.size());
        for (const auto& e : content) {
            EXPECT_LE(e["logprob"].get<double>(), 0.0);
            ASSERT_EQ(e["top_logprobs"].size(), 3u);
            // The top list is sorted and the sampled token's logprob is at most the best.
            EXPECT_GE(e["top_logprobs"][0]["logprob"].get<double>(),
                      e["top_logprobs"][1]["logprob"].get<double>());
            EXPECT_LE(e["logprob"].get<double>(),
                      e["top_logprobs"][0]["logprob"].get<double>() + 1e-5);
        }
    }
    EXPECT_EQ(total, j["usage"]["completion_tokens"].get<int>());
    r = post("/v1/completions",
             {{"prompt", "int x"}, {"logprobs", 2}, {"max_tokens", 3}, {"temperature", 0}});
    ASSERT_EQ(r.status, 200) << r.body;
    j = json::parse(r.body)["choices"][0]["logprobs"];
    EXPECT_EQ(j["tokens"].size(), 3u);
    EXPECT_EQ(j["top_logprobs"][0].size(), 2u);
    EXPECT_EQ(j["text_offset"][0], 0);
    r = post("/v1/chat/completions", {{"messages", {user("hi")}},
                                      {"max_tokens", 3},
                                      {"stream", true},
                                      {"stream_options", {{"include_usage", true}}}});
    bool done = false;
    const auto evs = events(r.body, &done);
    ASSERT_FALSE(evs.empty());
    EXPECT_TRUE(evs.back()["choices"].empty());
    EXPECT_TRUE(evs.back()["usage"].contains("completion_tokens"));
    EXPECT_EQ(post("/v1/completions", {{"prompt", "x"}, {"logprobs", 21}}).status, 400);
}

TEST(ToolCallStreamTest, SplitsContentAndCallsWhateverThePieces) {
    const std::string text = std::string("Sure.") + kToolCallsBegin + kToolCallBegin + "function" +
                             kToolSep + "f\n```json\n{\"a\":1}\n```" + kToolCallEnd + "\n" +
                             kToolCallBegin + "function" + kToolSep + "g\n```json\n{}\n```" +
                             kToolCallEnd + kToolCallsEnd;
    for (size_t step : {1u, 2u, 5u, 1000u}) {
        ToolCallStream s;
        std::string content;
        std::vector<ToolCallText> calls;
        for (size_t at = 0; at < text.size(); at += step) {
            auto u = s.push(text.substr(at, step));
            content += u.content;
            calls.insert(calls.end(), u.calls.begin(), u.calls.end());
        }
        auto u = s.finish();
        content += u.content;
        calls.insert(calls.end(), u.calls.begin(), u.calls.end());
        EXPECT_EQ(content, "Sure.") << step;
        ASSERT_EQ(calls.size(), 2u) << step;
        EXPECT_EQ(calls[0].name, "f");
        EXPECT_EQ(calls[0].arguments, "{\"a\":1}");
        EXPECT_EQ(calls[1].name, "g");
        EXPECT_EQ(calls[1].arguments, "{}");
    }
}

}  // namespace
}  // namespace latent::serve::serve_test
