// The `latent` binary as a newcomer uses it: make-model, generate, tokenize, and one
// clear error line with exit status 2 for bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "tests/support/cli_run.h"
#include "tests/support/test_models.h"

namespace {

using latent::test::CliRun;

CliRun run(const std::string& args) {
    return latent::test::run_cli(args, latent::test::temp_dir() + "/stderr.txt");
}

std::string tiny_model() {
    static const std::string path = [] {
        const std::string p = latent::test::temp_dir() + "/cli-tiny.gguf";
        CliRun r = run("make-model --preset tiny --quant q8_0 --seed 1 --out " + p);
        EXPECT_EQ(r.status, 0) << r.err;
        return p;
    }();
    return path;
}

void expect_one_line_error(const CliRun& r, const std::string& needle) {
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_EQ(r.err.rfind("latent: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(CliSlow, HelpListsTheCommands) {
    CliRun r = run("--help");
    EXPECT_EQ(r.status, 0);
    for (const char* c : {"make-model", "generate", "tokenize", "bench"})
        EXPECT_NE(r.out.find(c), std::string::npos) << c;
    EXPECT_EQ(run("generate --help").status, 0);
    EXPECT_NE(run("frobnicate").status, 0);
}

TEST(CliSlow, NotAGgufIsOneClearError) {
    const std::string p = latent::test::temp_dir() + "/notes.txt";
    std::ofstream(p) << "hello, this is not a model\n";
    expect_one_line_error(run("generate --model " + p + " --prompt hi"), p + ": not a GGUF file");
    expect_one_line_error(run("tokenize --model /nonexistent.gguf hi"),
                          "/nonexistent.gguf: cannot open");
}

TEST(CliSlow, TruncatedModelIsOneClearError) {
    std::ifstream in(tiny_model(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string p = latent::test::temp_dir() + "/truncated.gguf";
    std::ofstream(p, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
    expect_one_line_error(run("generate --model " + p + " --prompt hi"), "truncated or corrupt");
}

TEST(CliSlow, BadFlagsAreErrors) {
    expect_one_line_error(run("make-model --preset huge --out /tmp/x.gguf"),
                          "unknown preset 'huge'");
    expect_one_line_error(run("make-model --quant q3_k --out /tmp/x.gguf"), "unknown type 'q3_k'");
    expect_one_line_error(run("generate --model " + tiny_model() + " --prompt hi --top-p 2"),
                          "top_p");
}

TEST(CliSlow, GenerateIsDeterministicAndStreamsText) {
    const std::string m = tiny_model();
    CliRun a = run("generate --model " + m + " --prompt 'def fib(n):' -n 16 --ids");
    ASSERT_EQ(a.status, 0) << a.err;
    EXPECT_EQ(std::count(a.out.begin(), a.out.end(), '\n'), 16) << a.out;
    EXPECT_EQ(run("generate --model " + m + " --prompt 'def fib(n):' -n 16 --ids").out, a.out);
    CliRun t = run("generate --model " + m + " --prompt 'def fib(n):' -n 8");
    EXPECT_EQ(t.status, 0) << t.err;
    EXPECT_GT(t.out.size(), 1u);
    EXPECT_NE(t.err.find("generate: prompt"), std::string::npos) << "stats go to stderr";
    CliRun s =
        run("generate --model " + m + " --prompt 'def fib(n):' -n 8 --temp 0.8 --seed 3 --ids");
    EXPECT_EQ(s.status, 0) << s.err;
    CliRun fim =
        run("generate --model " + m + " --prompt 'def f(' --suffix '):\\n    pass' -n 4 --ids");
    EXPECT_EQ(fim.status, 0) << fim.err;
}

TEST(CliSlow, TokenizeIdsStartWithBos) {
    CliRun r = run("tokenize --model " + tiny_model() + " --ids 'def fib(n):'");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out.rfind("0 ", 0), 0u) << r.out;
    CliRun special =
        run("tokenize --model " + tiny_model() + " --ids --no-bos --special '<｜fim▁begin｜>'");
    EXPECT_EQ(special.out, "128801\n");
}

}  // namespace
