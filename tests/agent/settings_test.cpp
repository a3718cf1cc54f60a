// Settings: the remote backend's FIM settings (fimApi values, the raw mode's fimTemplate),
// their problems, and whether a change needs a new backend.
#include "agent/settings.h"

#include <gtest/gtest.h>

namespace latent::agent {
namespace {

using nlohmann::json;

TEST(SettingsTest, RemoteFimApiAndTemplate) {
    std::vector<std::string> problems;
    Settings s = parse_settings(json::parse(R"({"remote": {"fimApi": "raw"}})"), {}, &problems);
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

}  // namespace
}  // namespace latent::agent
