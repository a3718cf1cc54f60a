// The official `openai` npm client library against HttpServer: model list, a streamed
// completion equal to the whole one, a streamed chat, and cached tokens in usage.
// Skipped where the package is not installed (it is a devDependency of the repo root).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/reference.h"
#include "engine/serve/http_server.h"
#include "tests/support/test_models.h"

namespace latent::serve {
namespace {

using namespace latent::engine;

// Runs tests/serve/<script> with node against a fresh server on the tiny model (the real
// DeepSeek-V3 vocabulary when asked) and returns what it printed; "" with a test failure
// when it did not exit 0.
std::string run_client(const std::string& script, bool real_vocab) {
    const std::string src = LATENT_SOURCE_DIR;
    MakeModelOptions o;
    o.preset = "tiny";
    o.quant = GgmlType::kQ8_0;
    auto model = Model::load(test::make_test_model(o, real_vocab));
    EXPECT_TRUE(model.ok());
    if (!model.ok()) return "";
    auto tok = Tokenizer::create((*model)->vocab());
    EXPECT_TRUE(tok.ok());
    if (!tok.ok()) return "";
    ReferenceBackend backend;
    Scheduler::Options so;
    so.prefix_cache_bytes = 1 << 20;
    so.cache_bytes = 16 << 20;
    auto sched = Scheduler::create(**model, backend, so);
    EXPECT_TRUE(sched.ok());
    if (!sched.ok()) return "";
    HttpServer::Options ho;
    ho.port = 0;
    ho.model_name = "tiny";
    HttpServer server(**sched, *tok, ho);
    EXPECT_TRUE(server.start().ok());
    const std::string cmd = "node " + src + "/tests/serve/" + script +
                            " http://127.0.0.1:" + std::to_string(server.port()) + "/v1 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    EXPECT_NE(p, nullptr);
    if (!p) return "";
    std::string out;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
    const int status = ::pclose(p);
    EXPECT_EQ(status, 0) << out;
    return status == 0 ? out : "";
}

bool have_openai() {
    return std::filesystem::exists(std::string(LATENT_SOURCE_DIR) + "/node_modules/openai");
}

TEST(ServeOpenAiClientSlow, TheOfficialClientStreamsFromLatentServe) {
    if (!have_openai())
        GTEST_SKIP() << "npm package 'openai' not installed (npm ci at the repo root)";
    const std::string out = run_client("openai_client.mjs", false);
    ASSERT_FALSE(out.empty());
    const auto j = nlohmann::json::parse(out);
    EXPECT_EQ(j["model"], "tiny");
    EXPECT_EQ(j["streamed"], j["whole"]);
    EXPECT_FALSE(j["streamed"].get<std::string>().empty());
    EXPECT_FALSE(j["chat"].get<std::string>().empty());
    EXPECT_GT(j["cached"].get<int>(), 0);
}

TEST(ServeOpenAiClientSlow, ToolsJsonOutputPrefixAndLogprobsThroughTheOfficialClient) {
    if (!have_openai())
        GTEST_SKIP() << "npm package 'openai' not installed (npm ci at the repo root)";
    const std::string out = run_client("openai_features.mjs", true);
    ASSERT_FALSE(out.empty());
    const auto j = nlohmann::json::parse(out);
    auto args_ok = [](const nlohmann::json& args_text) {
        const auto a = nlohmann::json::parse(args_text.get<std::string>(), nullptr, false);
        return a.is_object() && a.size() == 2 && a["city"].is_string() && a["when"].is_object() &&
               a["when"].size() == 1 && a["when"]["day"].is_number_integer();
    };
    EXPECT_EQ(j["whole"]["finish"], "tool_calls") << out;
    ASSERT_GE(j["whole"]["calls"].size(), 1u) << out;
    for (const auto& c : j["whole"]["calls"]) {
        EXPECT_EQ(c["function"]["name"], "get_weather");
        EXPECT_TRUE(args_ok(c["function"]["arguments"])) << c.dump();
    }
    EXPECT_EQ(j["streamed"]["finish"], "tool_calls") << out;
    ASSERT_GE(j["streamed"]["calls"].size(), 1u) << out;
    for (const auto& c : j["streamed"]["calls"]) {
        EXPECT_EQ(c["name"], "get_weather");
        EXPECT_TRUE(args_ok(c["arguments"])) << c.dump();
    }
    EXPECT_GT(j["after_tool"]["prompt_tokens"].get<int>(), 0);
    const auto jo = nlohmann::json::parse(j["json_object"].get<std::string>(), nullptr, false);
    EXPECT_TRUE(jo.is_object()) << out;
    const auto js = nlohmann::json::parse(j["json_schema"].get<std::string>(), nullptr, false);
    ASSERT_TRUE(js.is_object()) << out;
    EXPECT_TRUE(js["name"].is_string());
    ASSERT_TRUE(js["tags"].is_array());
    EXPECT_LE(js["tags"].size(), 2u);
    for (const auto& t : js["tags"]) EXPECT_TRUE(t["k"] == "a" || t["k"] == "b") << out;
    EXPECT_EQ(j["prefix"]["content"].get<std::string>().find("for i in"), std::string::npos);
    EXPECT_EQ(j["logprobs"]["n"], j["logprobs"]["completion_tokens"]);
    EXPECT_EQ(j["logprobs"]["top"], 2);
}

}  // namespace
}  // namespace latent::serve
