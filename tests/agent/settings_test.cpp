// Settings: the remote backend's FIM settings (fimApi values, the raw mode's fimTemplate),
// their problems, and whether a change needs a new backend.
#include "agent/settings.h"

#include <gtest/gtest.h>

namespace latent::agent {
namespace {

using nlohmann::json;

TEST(SettingsTest, RemoteFimApiAndTemplate) {
    std::vector<std::string> problems;
    Settings s = parse_settings(
        json::parse(R"({"backend": "remote", "remote": {"fimApi": "raw"}})"), {}, &problems);
    EXPECT_TRUE(problems.empty());
    EXPECT_EQ(s.remote_fim_api, "raw");
    EXPECT_EQ(s.remote_fim_template.prefix, "<｜fim▁begin｜>");  // DeepSeek's by default
    EXPECT_EQ(s.remote_fim_template.suffix, "<｜fim▁hole｜>");
    EXPECT_EQ(s.remote_fim_template.middle, "<｜fim▁end｜>");

    const Settings q = parse_settings(json::parse(R"({"latent": {"remote": {"fimTemplate":
        {"prefix": "<|fim_prefix|>", "suffix": "<|fim_suffix|>", "middle": "<|fim_middle|>"}}}})"),
                                      s, &problems);
    EXPECT_TRUE(problems.empty());
    EXPECT_EQ(q.remote_fim_api, "raw");
    EXPECT_EQ(q.remote_fim_template.prefix, "<|fim_prefix|>");
    EXPECT_EQ(q.remote_fim_template.middle, "<|fim_middle|>");
    EXPECT_EQ(redacted(q)["remote"]["fimTemplate"]["suffix"], "<|fim_suffix|>");
    EXPECT_TRUE(backend_settings_differ(s, q));
    EXPECT_FALSE(backend_settings_differ(q, q));
}

TEST(SettingsTest, BadFimSettingsAreProblemsAndKeepThePreviousValues) {
    std::vector<std::string> problems;
    const Settings s = parse_settings(
        json::parse(R"({"remote": {"fimApi": "telepathy", "fimTemplate": {"prefix": "<p>"}}})"), {},
        &problems);
    ASSERT_EQ(problems.size(), 2u);
    EXPECT_NE(problems[0].find("raw"), std::string::npos) << problems[0];
    EXPECT_NE(problems[1].find("fimTemplate"), std::string::npos) << problems[1];
    EXPECT_EQ(s.remote_fim_api, "completions");
    EXPECT_EQ(s.remote_fim_template, FimTemplate{});
    problems.clear();
    const std::string long_marker(65, 'x');
    parse_settings(
        json{{"remote",
              {{"fimTemplate", {{"prefix", long_marker}, {"suffix", "<s>"}, {"middle", "<m>"}}}}}},
        {}, &problems);
    EXPECT_EQ(problems.size(), 1u);
    parse_settings(
        json{{"remote", {{"fimTemplate", {{"prefix", ""}, {"suffix", "<s>"}, {"middle", "<m>"}}}}}},
        {}, &problems);
    EXPECT_EQ(problems.size(), 2u);
}

// A reload replaces the backend (a local model: gigabytes read again): only a setting the
// chosen backend reads may cause one (the real editor reloaded the model on Set API Key).
TEST(SettingsTest, OnlyWhatTheChosenBackendReadsNeedsANewOne) {
    Settings local;
    local.backend = "local";
    local.model = "/m/a.gguf";
    Settings key = local;
    key.remote_key = "sk-new";
    key.remote_url = "https://api.example";
    key.remote_fim_api = "raw";
    EXPECT_FALSE(backend_settings_differ(local, key));
    Settings chat = local;
    chat.chat_max_tokens = 99;
    chat.next_edit_model = false;
    EXPECT_FALSE(backend_settings_differ(local, chat));
    for (auto change :
         {+[](Settings& s) { s.model = "/m/b.gguf"; }, +[](Settings& s) { s.threads = 3; },
          +[](Settings& s) { s.mtp = true; }, +[](Settings& s) { s.cache_mb = 64; },
          +[](Settings& s) { s.engine = "reference"; }, +[](Settings& s) { s.disk_cache_mb = 0; },
          +[](Settings& s) { s.backend = "remote"; }}) {
        Settings b = local;
        change(b);
        EXPECT_TRUE(backend_settings_differ(local, b));
    }

    Settings remote;
    remote.backend = "remote";
    remote.remote_url = "http://127.0.0.1:8000";
    Settings model = remote;
    model.model = "/m/b.gguf";
    model.threads = 3;
    model.cache_mb = 64;
    EXPECT_FALSE(backend_settings_differ(remote, model));
    Settings rekey = remote;
    rekey.remote_key = "sk-2";
    EXPECT_TRUE(backend_settings_differ(remote, rekey));
    Settings renamed = remote;
    renamed.remote_model = "deepseek-chat";
    EXPECT_TRUE(backend_settings_differ(remote, renamed));

    Settings none;
    none.backend = "none";
    Settings none2 = none;
    none2.model = "/m/a.gguf";
    EXPECT_FALSE(backend_settings_differ(none, none2));
}

}  // namespace
}  // namespace latent::agent
