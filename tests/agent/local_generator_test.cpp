// LocalGenerator: the agent's in-process engine through the scheduler. Its output must be
// what plain greedy decoding of the same FIM prompt gives (with and without speculative
// drafts); consecutive prompts reuse their common prefix; a warmed document's prefix is
// pinned and survives a restart through the disk tier; cancellation ends a request and
// the backend stays usable; chat streams exactly the text it returns. With DeepSeek-V3's
// vocabulary: tool calls as `latent serve` makes them (required, named, none, auto),
// JSON answers, tool results in the prompt, and a conversation whose turns reuse the
// earlier turns' own tokens from the cache.
#include "agent/local_generator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "engine/backends.h"
#include "engine/model.h"
#include "engine/prompt_format.h"
#include "engine/sampler.h"
#include "engine/serve/api_request.h"
#include "engine/serve/tool_calls.h"
#include "engine/session.h"
#include "engine/tokenizer.h"
#include "engine/vocab.h"
#include "tests/support/test_models.h"

namespace latent::agent {
namespace {

std::string tiny_model() {
    engine::MakeModelOptions o;
    o.preset = "tiny";
    o.quant = engine::GgmlType::kQ8_0;
    return test::make_test_model(o);
}

LocalGeneratorOptions options(const std::string& engine = "reference") {
    LocalGeneratorOptions o;
    o.model_path = tiny_model();
    o.engine = engine;
    o.threads = 2;
    o.cache_bytes = 64u << 20;
    o.prefill_chunk = 48;
    o.warm_chunk = 16;
    return o;
}

std::unique_ptr<LocalGenerator> make(const LocalGeneratorOptions& o) {
    auto b = LocalGenerator::create(o);
    EXPECT_TRUE(b.ok()) << b.error().message;
    return b.ok() ? std::move(*b) : nullptr;
}

FimPrompt prompt(const std::string& typed = "") {
    FimPrompt p;
    p.context =
        "// util/math.h:1\nint clamp(int v, int lo, int hi);\nint lerp(int a, int b, int t);\n"
        "// util/strings.h:4\nstd::string trim(std::string_view s);\n// src/main.cpp\n";
    p.prefix = "#include \"util/math.h\"\n\nint scale(int v) {\n    int r = clamp(v, 0, 10);\n";
    p.middle = "    return " + typed;
    p.suffix = ";\n}\n";
    return p;
}

// Greedy decoding of the same token ids with a Session: what LocalGenerator must produce.
std::string plain_greedy(const LocalGenerator& lb, const std::string& model_path,
                         const FimPrompt& p, int max_tokens) {
    auto m = engine::Model::load(model_path);
    EXPECT_TRUE(m.ok());
    auto tok = engine::Tokenizer::create((*m)->vocab());
    EXPECT_TRUE(tok.ok());
    auto be = engine::make_backend({"reference", 1});
    EXPECT_TRUE(be.ok());
    const auto& hp = (*m)->hparams();
    engine::LatentCache::Config cc{hp.n_layer, hp.kv_lora_rank, hp.n_rot, 16, 64u << 20};
    engine::LatentCache cache(cc);
    engine::Session s(**m, *be->backend, cache);
    auto pre = s.prefill(lb.fim_tokens(p));
    EXPECT_TRUE(pre.ok());
    std::vector<float> logits = pre->logits;
    engine::SamplingParams sp;
    sp.temperature = 0;
    engine::Sampler sampler(sp);
    std::string text;
    for (int i = 0; i < max_tokens; ++i) {
        const int32_t id = sampler.sample(logits.data(), static_cast<int32_t>(hp.n_vocab));
        sampler.accept(id);
        if (tok->is_eog(id) ||
            (*m)->vocab().types[static_cast<size_t>(id)] == engine::TokenType::kControl)
            break;
        text += tok->token_to_piece(id);
        if (i + 1 == max_tokens) break;
        auto next = s.decode(id);
        EXPECT_TRUE(next.ok());
        logits = *next;
    }
    return text;
}

TEST(LocalGeneratorTest, FimIsPlainGreedyDecodingWithAndWithoutDrafts) {
    GenerateOptions g;
    g.max_tokens = 24;
    std::string texts[2];
    for (int drafts : {0, 4}) {
        auto o = options();
        o.draft_tokens = drafts;
        auto b = make(o);
        ASSERT_TRUE(b);
        auto r = b->fim(prompt(), g);
        ASSERT_TRUE(r.ok()) << r.error().message;
        EXPECT_FALSE(r->cancelled);
        const auto n = static_cast<int32_t>(b->fim_tokens(prompt()).size());
        EXPECT_EQ(r->cached_tokens + r->computed_tokens, n);
        EXPECT_EQ(r->cached_tokens, 0);
        EXPECT_GT(r->generated_tokens, 0);
        EXPECT_GE(r->first_token_ms, 0.0);
        texts[drafts ? 1 : 0] = r->text;
        if (drafts == 0) {
            EXPECT_EQ(r->text, plain_greedy(*b, o.model_path, prompt(), 24));
        }
    }
    EXPECT_EQ(texts[0], texts[1]);
}

TEST(LocalGeneratorTest, TypingRecomputesOnlyTheTokensAfterTheEdit) {
    auto b = make(options());
    ASSERT_TRUE(b);
    GenerateOptions g;
    g.max_tokens = 4;
    g.owner = "file:///src/main.cpp";
    ASSERT_TRUE(b->fim(prompt(), g).ok());
    auto r = b->fim(prompt("r +"), g);
    ASSERT_TRUE(r.ok());
    const auto n = static_cast<int32_t>(b->fim_tokens(prompt("r +")).size());
    EXPECT_EQ(r->cached_tokens + r->computed_tokens, n);
    // Everything before the typed characters is cached, the suffix too (it comes before
    // the middle): only the typed tokens are computed (and the one before them, when the
    // new text tokenizes differently at the seam).
    EXPECT_GE(r->cached_tokens, n - 4);
    EXPECT_LE(r->computed_tokens, 4);
    EXPECT_GT(r->computed_tokens, 0);
    const auto st = b->stats();
    EXPECT_GT(st["cache_hit_rate"].get<double>(), 0.0);
    EXPECT_EQ(st["cached_prompt_tokens"].get<int64_t>(), r->cached_tokens);
    // A new line typed in the same block of lines (the middle grows past a line break):
    // still only what was typed.
    const std::string more = "r + 1;\n    int q = ";
    auto r2 = b->fim(prompt(more), g);
    ASSERT_TRUE(r2.ok());
    const auto n2 = static_cast<int32_t>(b->fim_tokens(prompt(more)).size());
    EXPECT_EQ(r2->cached_tokens + r2->computed_tokens, n2);
    EXPECT_LE(r2->computed_tokens, n2 - n + 4);
    EXPECT_GE(r2->cached_tokens, n - 4);
}

TEST(LocalGeneratorTest, WarmPinsTheStablePrefixAndADiskTierBringsItBackAfterARestart) {
    auto o = options();
    o.disk_dir = test::temp_dir() + "/kv-restart";
    std::filesystem::remove_all(o.disk_dir);
    FimPrompt stable = prompt();
    stable.middle.clear();  // what the server warms: all but the cursor's line
    const auto n_stable = static_cast<int32_t>([&] {
        auto b = make(o);
        EXPECT_TRUE(b);
        b->warm("file:///src/main.cpp", stable, WarmOrder::kAlongside);
        b->wait_idle();
        const auto st = b->stats();
        EXPECT_GT(st["pinned_pages"].get<int64_t>(), 0);
        EXPECT_GT(st["cache_disk_files"].get<int64_t>(), 0);
        EXPECT_EQ(st["cache_disk_error"].get<std::string>(), "");
        return b->fim_tokens(stable).size();
    }());
    // A new process (a new backend on the same folder) computes only what the disk lacks:
    // the partial last page of the warmed prompt and the middle.
    auto b = make(o);
    ASSERT_TRUE(b);
    GenerateOptions g;
    g.max_tokens = 2;
    auto r = b->fim(prompt(), g);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_GE(r->cached_tokens, n_stable / 64 * 64);
    EXPECT_GT(r->cached_tokens, 0);
    EXPECT_GT(b->stats()["pages_from_disk"].get<int64_t>(), 0);
}

// A warm-up that goes first puts the others off; none is lost: once it is done they go on
// from what they had, and each owner's prompt ends up cached (prompt_cost: only the last
// token left to compute) — also when the one going first is released before it is done.
TEST(LocalGeneratorTest, AWarmUpGoingFirstPutsTheOthersOffAndLosesNone) {
    auto b = make(options());
    ASSERT_TRUE(b);
    auto place = [](int i) {
        FimPrompt p = prompt();
        p.middle.clear();
        p.prefix = "// place " + std::to_string(i) + "\n" + p.prefix;
        for (int k = 0; k < 8; ++k) p.prefix += "int v" + std::to_string(k * i) + " = 0;\n";
        return p;
    };
    b->warm("a", place(1), WarmOrder::kAlongside);
    b->warm("b", place(2), WarmOrder::kAlongside);
    b->warm("c", place(3), WarmOrder::kFirst);
    b->warm("d", place(4), WarmOrder::kAlongside);  // waits for c
    b->wait_idle();
    for (int i = 1; i <= 4; ++i) {
        const auto cost = b->prompt_cost(place(i));
        ASSERT_TRUE(cost) << i;
        EXPECT_EQ(cost->computed_tokens, 1) << i;
        EXPECT_EQ(cost->prompt_tokens, static_cast<int32_t>(b->fim_tokens(place(i)).size()));
    }
    EXPECT_GT(b->stats()["pinned_pages"].get<int64_t>(), 0);
    // Released while going first: the others go on.
    b->warm("e", place(5), WarmOrder::kAlongside);
    b->warm("f", place(6), WarmOrder::kFirst);
    b->warm("g", place(7), WarmOrder::kAlongside);
    b->release("f");
    b->wait_idle();
    for (int i : {5, 7}) EXPECT_EQ(b->prompt_cost(place(i))->computed_tokens, 1) << i;
    // A prompt that shares only the context with them computes the rest; one that shares
    // nothing but the FIM start, all the rest; the speeds were measured on the way.
    const auto same_context = b->prompt_cost(place(9));
    EXPECT_GT(same_context->computed_tokens, 1);
    EXPECT_LT(same_context->computed_tokens, same_context->prompt_tokens);
    FimPrompt other = place(9);
    other.context = "# other.py\n";
    const auto fresh = b->prompt_cost(other);
    EXPECT_EQ(fresh->computed_tokens, fresh->prompt_tokens - 2);  // all but BOS, FIM begin
    EXPECT_GT(fresh->prefill_ms_per_token, 0.0);
}

// Speeds are measured at load, before any request (the first prompt is sized by them),
// without counting as a request or cached prompt.
TEST(LocalGeneratorTest, SpeedsAreKnownBeforeTheFirstRequest) {
    auto b = make(options());
    ASSERT_TRUE(b);
    const auto cost = b->prompt_cost(prompt());
    ASSERT_TRUE(cost);
    EXPECT_GT(cost->prefill_ms_per_token, 0.0);
    EXPECT_GT(cost->decode_ms_per_token, 0.0);
    EXPECT_EQ(cost->computed_tokens, cost->prompt_tokens);
    const auto st = b->stats();
    EXPECT_EQ(st["prompt_tokens"].get<int64_t>(), 0);
    EXPECT_EQ(st["prefilled_prompt_tokens"].get<int64_t>(), 0);
    EXPECT_EQ(st["cached_pages"].get<int64_t>(), 0);
    auto o = options();
    o.calibrate = false;
    auto unmeasured = make(o);
    EXPECT_EQ(unmeasured->prompt_cost(prompt())->prefill_ms_per_token, 0.0);
}

// The cost of a completion prompt after one at the same place: the part they share is
// cached, what was typed since is not.
TEST(LocalGeneratorTest, PromptCostCountsWhatTheCacheHolds) {
    auto b = make(options());
    ASSERT_TRUE(b);
    GenerateOptions g;
    g.max_tokens = 3;
    ASSERT_TRUE(b->fim(prompt("int q"), g).ok());
    const auto again = b->prompt_cost(prompt("int q"));
    ASSERT_TRUE(again);
    EXPECT_EQ(again->computed_tokens, 1);
    const auto typed = b->prompt_cost(prompt("int q = clamp(r, 1, 2);"));
    EXPECT_GT(typed->computed_tokens, 1);
    EXPECT_LT(typed->computed_tokens, typed->prompt_tokens / 2);
    EXPECT_GT(typed->decode_ms_per_token, 0.0);
    // Without the prefix cache nothing is cached.
    auto o = options();
    o.prefix_cache = false;
    auto nc = make(o);
    ASSERT_TRUE(nc->fim(prompt("int q"), g).ok());
    const auto none = nc->prompt_cost(prompt("int q"));
    EXPECT_EQ(none->computed_tokens, none->prompt_tokens);
}

TEST(LocalGeneratorTest, AnUnusableDiskFolderTurnsTheDiskTierOffNotTheBackend) {
    auto o = options();
    o.disk_dir = "/proc/latent-cannot-write-here";
    auto b = make(o);
    ASSERT_TRUE(b);
    EXPECT_FALSE(b->disk_error().empty());
    GenerateOptions g;
    g.max_tokens = 2;
    EXPECT_TRUE(b->fim(prompt(), g).ok());
}

TEST(LocalGeneratorTest, CancellationEndsTheRequestAndTheBackendGoesOn) {
    auto b = make(options());
    ASSERT_TRUE(b);
    std::atomic<int> polls{0};
    GenerateOptions g;
    g.max_tokens = 512;
    g.cancelled = [&] { return ++polls > 3; };
    auto r = b->fim(prompt(), g);
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->cancelled);
    EXPECT_LT(r->generated_tokens, 512);
    b->wait_idle();
    EXPECT_EQ(b->stats()["running"].get<int64_t>(), 0);
    GenerateOptions g2;
    g2.max_tokens = 24;
    auto again = b->fim(prompt(), g2);
    ASSERT_TRUE(again.ok());
    EXPECT_FALSE(again->cancelled);
    EXPECT_EQ(again->text, plain_greedy(*b, options().model_path, prompt(), 24));
    // The prompt's size is known whether or not the request ran to its end.
    EXPECT_EQ(r->prompt_tokens, again->cached_tokens + again->computed_tokens);
    EXPECT_EQ(again->prompt_tokens, r->prompt_tokens);
    GenerateOptions gone;
    gone.cancelled = [] { return true; };
    auto early = b->fim(prompt(), gone);
    ASSERT_TRUE(early.ok());
    EXPECT_TRUE(early->cancelled);
    EXPECT_EQ(early->prompt_tokens, r->prompt_tokens);
}

TEST(LocalGeneratorTest, EnoughEndsTheGenerationWhereItSays) {
    auto b = make(options());
    ASSERT_TRUE(b);
    const std::string plain = plain_greedy(*b, options().model_path, prompt(), 24);
    ASSERT_GE(plain.size(), 8u);
    GenerateOptions g;
    g.max_tokens = 24;
    std::vector<size_t> asked;  // the text's size at each call
    g.enough = [&](std::string_view t) {
        asked.push_back(t.size());
        return t.size() >= 6;
    };
    auto r = b->fim(prompt(), g);
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->ended_early);
    EXPECT_FALSE(r->cancelled);
    // The shortest whole-token prefix of the plain text with 6 bytes or more.
    ASSERT_FALSE(asked.empty());
    EXPECT_EQ(r->text.size(), asked.back());
    EXPECT_GE(r->text.size(), 6u);
    EXPECT_EQ(plain.substr(0, r->text.size()), r->text);
    for (size_t i = 0; i + 1 < asked.size(); ++i) EXPECT_LT(asked[i], 6u);
    EXPECT_LT(r->generated_tokens, 24);
}

TEST(LocalGeneratorTest, ChatStreamsTheTextItReturnsAndRunsBesideCompletions) {
    auto b = make(options("cpu"));
    ASSERT_TRUE(b);
    std::vector<ChatMessage> messages = {{"system", "You are terse."},
                                         {"user", "Explain clamp(v, lo, hi) in one line."}};
    GenerateOptions g;
    g.max_tokens = 40;
    std::string streamed;
    g.on_text = [&](std::string_view piece) { streamed += piece; };
    // The same chat alone, then beside a completion from another thread: same text. Each
    // prompt runs once before, so that the runs compared all find it in the prefix cache
    // (a cold prompt may be prefilled in a different rounding: engine/cpu/backend.cpp).
    GenerateOptions warm;
    warm.max_tokens = 1;
    ASSERT_TRUE(b->chat(messages, warm).ok());
    ASSERT_TRUE(b->fim(prompt(), warm).ok());
    auto alone = b->chat(messages, g);
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ(streamed, alone->text);
    EXPECT_GT(alone->generated_tokens, 0);
    streamed.clear();
    GenerateOptions gf;
    gf.max_tokens = 16;
    std::string fim_alone;
    {
        auto f = b->fim(prompt(), gf);
        ASSERT_TRUE(f.ok());
        fim_alone = f->text;
    }
    std::string fim_beside;
    std::thread t([&] {
        auto f = b->fim(prompt(), gf);
        if (f.ok()) fim_beside = f->text;
    });
    auto beside = b->chat(messages, g);
    t.join();
    ASSERT_TRUE(beside.ok());
    EXPECT_EQ(beside->text, alone->text);
    EXPECT_EQ(streamed, beside->text);
    EXPECT_EQ(fim_beside, fim_alone);
}

TEST(LocalGeneratorTest, StopStringsEndTheAnswerAndAreNotReturned) {
    auto b = make(options());
    ASSERT_TRUE(b);
    GenerateOptions g;
    g.max_tokens = 24;
    auto full = b->fim(prompt(), g);
    ASSERT_TRUE(full.ok());
    if (full->text.size() < 4) GTEST_SKIP() << "the tiny model stopped at once";
    // Stop at the text's own third..fourth bytes: the answer is what came before them.
    const std::string stop = full->text.substr(2, 2);
    const std::string expect = full->text.substr(0, full->text.find(stop));
    g.stop = {stop};
    auto cut = b->fim(prompt(), g);
    ASSERT_TRUE(cut.ok());
    EXPECT_EQ(cut->text, expect);
}

// Function calling and JSON output on the tiny model with DeepSeek-V3's real vocabulary
// (its tool tokens): the output constraints of `latent serve` hold a random-weight model,
// which would write garbage unmasked, to well-formed calls and JSON.
std::unique_ptr<LocalGenerator> make_v3() {
    engine::MakeModelOptions mo;
    mo.preset = "tiny";
    mo.quant = engine::GgmlType::kQ8_0;
    LocalGeneratorOptions o = options();
    o.model_path = test::make_test_model(mo, /*real_tokenizer=*/true);
    return make(o);
}

const nlohmann::json kWeatherTool = nlohmann::json::parse(R"({
  "type": "function",
  "function": {"name": "get_weather", "description": "Weather of a city", "strict": true,
    "parameters": {"type": "object",
      "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                     "unit": {"type": "string", "enum": ["c", "f"]}},
      "required": ["city", "days", "unit"], "additionalProperties": false}}})");
const nlohmann::json kSearchTool = nlohmann::json::parse(R"({
  "type": "function",
  "function": {"name": "search", "description": "Search the code", "strict": true,
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}},
      "required": ["q"], "additionalProperties": false}}})");

// The strict weather arguments, checked by hand (not by the decoder's code).
void expect_weather_args(const std::string& text) {
    const auto a = nlohmann::json::parse(text, nullptr, false);
    ASSERT_TRUE(a.is_object()) << text;
    EXPECT_EQ(a.size(), 3u) << text;
    EXPECT_TRUE(a["city"].is_string()) << text;
    EXPECT_TRUE(a["days"].is_number_integer()) << text;
    EXPECT_TRUE(a["unit"] == "c" || a["unit"] == "f") << text;
}

bool has_tool_marker(const std::string& text) { return text.find("<｜tool") != std::string::npos; }

TEST(LocalGeneratorToolsTest, ARequiredCallIsMadeWithArgumentsThatMatchTheSchema) {
    auto b = make_v3();
    ASSERT_TRUE(b);
    GenerateOptions g;
    g.max_tokens = 80;
    g.tools = nlohmann::json::array({kWeatherTool});
    g.tool_choice = "required";
    std::string streamed;
    g.on_text = [&](std::string_view piece) { streamed += piece; };
    auto r = b->chat({{"user", "weather in Paris?"}}, g);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->finish_reason, "tool_calls");
    ASSERT_GE(r->tool_calls.size(), 1u) << r->text;
    for (const auto& c : r->tool_calls) {
        EXPECT_TRUE(c.id.starts_with("call_")) << c.id;
        EXPECT_EQ(c.name, "get_weather");
        expect_weather_args(c.arguments);
    }
    // The calls are not text: neither the answer nor what streamed holds their markers.
    EXPECT_FALSE(has_tool_marker(r->text)) << r->text;
    EXPECT_EQ(streamed, r->text);
}

TEST(LocalGeneratorToolsTest, ANamedFunctionIsTheOneCalled) {
    auto b = make_v3();
    ASSERT_TRUE(b);
    GenerateOptions g;
    g.max_tokens = 80;
    g.tools = nlohmann::json::array({kWeatherTool, kSearchTool});
    g.tool_choice = {{"type", "function"}, {"function", {{"name", "search"}}}};
    auto r = b->chat({{"user", "where is clamp defined?"}}, g);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->finish_reason, "tool_calls");
    ASSERT_GE(r->tool_calls.size(), 1u);
    for (const auto& c : r->tool_calls) {
        EXPECT_EQ(c.name, "search");
        const auto a = nlohmann::json::parse(c.arguments, nullptr, false);
        ASSERT_TRUE(a.is_object()) << c.arguments;
        EXPECT_TRUE(a["q"].is_string()) << c.arguments;
    }
}

TEST(LocalGeneratorToolsTest, ToolChoiceNoneMakesNoCallAndAutoSplitsTextFromCalls) {
    auto b = make_v3();
    ASSERT_TRUE(b);
    GenerateOptions g;
    g.max_tokens = 40;
    g.tools = nlohmann::json::array({kWeatherTool, kSearchTool});
    g.tool_choice = "none";
    auto none = b->chat({{"user", "weather in Paris?"}}, g);
    ASSERT_TRUE(none.ok()) << none.error().message;
    EXPECT_TRUE(none->tool_calls.empty());
    EXPECT_NE(none->finish_reason, "tool_calls");
    EXPECT_FALSE(has_tool_marker(none->text)) << none->text;
    EXPECT_GT(none->generated_tokens, 0);
    g.tool_choice = "auto";
    auto any = b->chat({{"user", "weather in Paris?"}}, g);
    ASSERT_TRUE(any.ok()) << any.error().message;
    EXPECT_FALSE(has_tool_marker(any->text)) << any->text;
    EXPECT_EQ(any->finish_reason == "tool_calls", !any->tool_calls.empty());
}

TEST(LocalGeneratorToolsTest, AResponseFormatHoldsTheAnswerToJson) {
    auto b = make_v3();
    ASSERT_TRUE(b);
    GenerateOptions g;
    g.max_tokens = 48;
    g.response_format = {{"type", "json_object"}};
    auto obj = b->chat({{"user", "as JSON"}}, g);
    ASSERT_TRUE(obj.ok()) << obj.error().message;
    EXPECT_TRUE(nlohmann::json::parse(obj->text, nullptr, false).is_object()) << obj->text;
    g.response_format = {
        {"type", "json_schema"},
        {"json_schema", {{"name", "weather"}, {"schema", kWeatherTool["function"]["parameters"]}}}};
    auto schema = b->chat({{"user", "as JSON"}}, g);
    ASSERT_TRUE(schema.ok()) << schema.error().message;
    expect_weather_args(schema->text);
}

TEST(LocalGeneratorToolsTest, OptionsItCannotHonourAreErrorsNamingTheField) {
    auto b = make_v3();
    ASSERT_TRUE(b);
    GenerateOptions g;
    g.max_tokens = 8;
    g.tools = nlohmann::json::array({kWeatherTool});
    g.tool_choice = {{"type", "function"}, {"function", {{"name", "no_such_tool"}}}};
    auto r = b->chat({{"user", "hi"}}, g);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("tool_choice"), std::string::npos) << r.error().message;
    g.tool_choice = nullptr;
    g.response_format = {{"type", "xml"}};
    r = b->chat({{"user", "hi"}}, g);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("response_format"), std::string::npos) << r.error().message;
    // A vocabulary without tool tokens (the small test one) cannot be made to call, and
    // agent mode is told so.
    EXPECT_TRUE(b->supports_tools());
    auto plain = make(options());
    ASSERT_TRUE(plain);
    EXPECT_FALSE(plain->supports_tools());
    g.response_format = nullptr;
    g.tool_choice = "required";
    r = plain->chat({{"user", "hi"}}, g);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("tool-call tokens"), std::string::npos) << r.error().message;
}

std::unique_ptr<engine::Tokenizer> v3_tokenizer() {
    engine::MakeModelOptions mo;
    mo.preset = "tiny";
    mo.quant = engine::GgmlType::kQ8_0;
    auto m = engine::Model::load(test::make_test_model(mo, true));
    EXPECT_TRUE(m.ok());
    auto t = engine::Tokenizer::create((*m)->vocab());
    EXPECT_TRUE(t.ok());
    return std::make_unique<engine::Tokenizer>(std::move(*t));
}

// The system text's tool descriptions as chat() writes them for these tools.
engine::ChatOptions with_tools(const nlohmann::json& tools) {
    serve::ApiRequest req;
    nlohmann::ordered_json body = {{"tools", nlohmann::ordered_json::parse(tools.dump())}};
    EXPECT_TRUE(serve::parse_chat_output_options(body, req).ok());
    engine::ChatOptions co;
    co.tool_prompt = serve::tool_prompt(req.tools);
    return co;
}

TEST(LocalGeneratorToolsTest, ACallAndItsResultGoBackIntoThePromptAndTheChatGoesOn) {
    auto b = make_v3();
    ASSERT_TRUE(b);
    ChatMessage call{"assistant", ""};
    call.tool_calls = {{"call_1", "get_weather", R"({"city":"Oslo","days":1,"unit":"c"})"}};
    ChatMessage result{"tool", "12 C, rain"};
    result.tool_call_id = "call_1";
    const std::vector<ChatMessage> messages = {
        {"system", "You are terse."}, {"user", "weather in Oslo?"}, call, result};
    const nlohmann::json tools = nlohmann::json::array({kWeatherTool});
    const auto ids = b->chat_prompt_tokens(messages, with_tools(tools), "nobody");
    const std::string text = v3_tokenizer()->decode(ids);
    EXPECT_NE(text.find("<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function"
                        "<｜tool▁sep｜>get_weather\n```json\n"
                        R"({"city":"Oslo","days":1,"unit":"c"})"
                        "\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>"
                        "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>12 C, "
                        "rain<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("get_weather"), text.rfind("get_weather")) << "described and called";
    EXPECT_TRUE(text.ends_with("<｜tool▁outputs▁end｜>")) << text;  // the answer follows
    GenerateOptions g;
    g.max_tokens = 24;
    g.tools = tools;
    auto r = b->chat(messages, g);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->prompt_tokens, static_cast<int32_t>(ids.size()));
    EXPECT_GT(r->generated_tokens, 0);
}

// Without an earlier chat of its owner, a prompt is chat_tokens' exactly; with one, each
// turn that extends the last starts with the last prompt and the answer's own tokens, so
// the prefix cache serves all of them, whatever they would re-tokenize to.
TEST(LocalGeneratorToolsTest, ATurnThatExtendsTheLastReusesItsTokensFromTheCache) {
    auto b = make_v3();
    ASSERT_TRUE(b);
    auto tok = v3_tokenizer();
    const nlohmann::json tools = nlohmann::json::array({kWeatherTool, kSearchTool});
    std::vector<ChatMessage> messages = {{"system", "You are a coding assistant."},
                                         {"user", "Explain clamp(v, lo, hi) in one line."}};
    for (const auto& co : {engine::ChatOptions{}, with_tools(tools)})
        EXPECT_EQ(b->chat_prompt_tokens(messages, co, "conversation"),
                  engine::chat_tokens(*tok, messages, co));
    GenerateOptions g;
    g.owner = "conversation";
    g.max_tokens = 64;
    g.tools = tools;
    int32_t expect_cached = 0;
    bool retokenized_differently = false;
    for (int turn = 0; turn < 4; ++turn) {
        // Turns 0 and 2 must call a tool (its result goes back), 1 and 3 may answer.
        g.tool_choice = turn % 2 == 0 ? nlohmann::json("required") : nlohmann::json("auto");
        const auto planned = b->chat_prompt_tokens(messages, with_tools(tools), g.owner);
        const auto plain = engine::chat_tokens(*tok, messages, with_tools(tools));
        EXPECT_EQ(tok->decode(planned), tok->decode(plain)) << "turn " << turn;
        retokenized_differently = retokenized_differently || planned != plain;
        auto r = b->chat(messages, g);
        ASSERT_TRUE(r.ok()) << r.error().message;
        EXPECT_EQ(r->prompt_tokens, static_cast<int32_t>(planned.size()));
        EXPECT_GE(r->cached_tokens, expect_cached) << "turn " << turn;
        ChatMessage answer{"assistant", r->text};
        for (const auto& c : r->tool_calls)
            answer.tool_calls.push_back({c.id, c.name, c.arguments});
        messages.push_back(answer);
        // Every row but the last token's was computed (that one was sampled, not fed).
        expect_cached = r->prompt_tokens + r->generated_tokens - 1;
        if (!r->tool_calls.empty()) {
            for (const auto& c : r->tool_calls) {
                ChatMessage result{"tool", "no results for " + c.arguments};
                result.tool_call_id = c.id;
                messages.push_back(result);
            }
        } else {
            messages.push_back({"user", "And lerp? Turn " + std::to_string(turn) + "."});
        }
    }
    // The model's own tokens are not what its text tokenizes to (random weights; the
    // constrained calls): without the reuse this conversation would miss the cache.
    EXPECT_TRUE(retokenized_differently);
}

}  // namespace
}  // namespace latent::agent
