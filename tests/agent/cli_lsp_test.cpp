// `latent complete` and `latent bench lsp` from the command line.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "engine/make_model.h"
#include "tests/support/cli_run.h"

namespace latent::test {
std::string temp_dir();
std::string make_test_model(engine::MakeModelOptions options, bool real_tokenizer);
}  // namespace latent::test

namespace latent::agent {
namespace {

using latent::test::CliRun;

CliRun run(const std::string& args) { return latent::test::run_cli(args); }

TEST(CliLspTest, BenchLspPrintsOneJsonLine) {
    const CliRun r = run("bench lsp -n 20");
    ASSERT_EQ(r.status, 0);
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["bench"], "lsp");
    EXPECT_GT(j["p50_ms"].get<double>(), 0.0);
    EXPECT_GE(j["p99_ms"].get<double>(), j["p50_ms"].get<double>());
}

TEST(CliLspTest, CompleteNeedsAPositionAndABackend) {
    EXPECT_EQ(run("complete nofile.py").status, 2);
    EXPECT_EQ(run("complete x.py:0:1 --model m.gguf").status, 2);
    EXPECT_EQ(run("complete x.py:1:1").status, 2);
}

TEST(CliLspTest, CompleteWithATinyModel) {
    engine::MakeModelOptions o;
    o.preset = "tiny";
    const std::string model = latent::test::make_test_model(o, false);
    ASSERT_FALSE(model.empty());
    const std::string file = latent::test::temp_dir() + "/complete_me.py";
    std::ofstream(file) << "def add(a, b):\n    return a + b\n";
    const CliRun r =
        run("complete " + file + ":2:5 --model " + model + " --engine reference --no-index -n 4");
    EXPECT_EQ(r.status, 0) << r.out;
}

}  // namespace
}  // namespace latent::agent
