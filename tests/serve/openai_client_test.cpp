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

TEST(ServeOpenAiClientSlow, TheOfficialClientStreamsFromLatentServe) {
    const std::string src = LATENT_SOURCE_DIR;
    if (!std::filesystem::exists(src + "/node_modules/openai"))
        GTEST_SKIP() << "npm package 'openai' not installed (npm ci at the repo root)";
    MakeModelOptions o;
    o.preset = "tiny";
    o.quant = GgmlType::kQ8_0;
    auto model = Model::load(test::make_test_model(o));
    ASSERT_TRUE(model.ok());
    auto tok = Tokenizer::create((*model)->vocab());
    ASSERT_TRUE(tok.ok());
    ReferenceBackend backend;
    Scheduler::Options so;
    so.prefix_cache_bytes = 1 << 20;
    so.cache_bytes = 16 << 20;
    auto sched = Scheduler::create(**model, backend, so);
    ASSERT_TRUE(sched.ok());
    HttpServer::Options ho;
    ho.port = 0;
    ho.model_name = "tiny";
    HttpServer server(**sched, *tok, ho);
    ASSERT_TRUE(server.start().ok());

    const std::string cmd = "node " + src + "/tests/serve/openai_client.mjs http://127.0.0.1:" +
                            std::to_string(server.port()) + "/v1";
    FILE* p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
    ASSERT_EQ(::pclose(p), 0) << out;
    const auto j = nlohmann::json::parse(out);
    EXPECT_EQ(j["model"], "tiny");
    EXPECT_EQ(j["streamed"], j["whole"]);
    EXPECT_FALSE(j["streamed"].get<std::string>().empty());
    EXPECT_FALSE(j["chat"].get<std::string>().empty());
    EXPECT_GT(j["cached"].get<int>(), 0);
}

}  // namespace
}  // namespace latent::serve
