// The real DeepSeek vocabularies beside V3's: llama.cpp's vocabulary-only GGUFs of DeepSeek
// LLM (102,400 ids, the base of V2 and Coder-V2-Lite) and DeepSeek Coder (32,256 ids), with
// the ids DeepSeek's own tokenizer gives llama.cpp's test texts (.inp/.out), as
// scripts/setup extracts them into build/test-data/vocab. Without them the tests fail in CI
// (CI=true) and skip elsewhere.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "engine/gguf.h"
#include "engine/make_model.h"
#include "engine/model.h"
#include "engine/prompt_format.h"
#include "engine/tokenizer.h"
#include "engine/vocab.h"
#include "tests/support/cli_run.h"
#include "tests/support/test_models.h"

namespace {

using namespace latent::engine;

const std::string kDir = std::string(LATENT_TEST_DATA_DIR) + "/vocab/";
const std::string kLlm = kDir + "ggml-vocab-deepseek-llm.gguf";
const std::string kCoder = kDir + "ggml-vocab-deepseek-coder.gguf";

bool files_present() {
    for (const auto& f : {kLlm, kCoder})
        for (const char* ext : {"", ".inp", ".out"})
            if (!std::filesystem::exists(f + ext)) return false;
    return true;
}

// In a test body: fails under CI=true, skips elsewhere, when setup has not run.
#define REQUIRE_VOCAB_FILES()                                                                 \
    do {                                                                                      \
        if (!files_present()) {                                                               \
            const char* ci = std::getenv("CI");                                               \
            const std::string why = "llama.cpp's DeepSeek vocabularies are not in " + kDir +  \
                                    " (scripts/setup extracts them from npm node-llama-cpp)"; \
            if (ci && std::string(ci) == "true") FAIL() << why;                               \
            GTEST_SKIP() << why;                                                              \
        }                                                                                     \
    } while (0)

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct Case {
    std::string text;
    std::vector<int32_t> ids;
};

// llama.cpp's test format: texts separated by "\n__ggml_vocab_test__\n" (the file ends with
// one); one line of space-separated ids per text.
std::vector<Case> read_cases(const std::string& gguf) {
    const std::string inp = read_file(gguf + ".inp");
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<Case> cases;
    for (size_t pos = 0; pos < inp.size();) {
        const size_t next = inp.find(sep, pos);
        cases.push_back({inp.substr(pos, next == std::string::npos ? next : next - pos), {}});
        if (next == std::string::npos) break;
        pos = next + sep.size();
    }
    std::ifstream out(gguf + ".out");
    size_t i = 0;
    for (std::string line; std::getline(out, line); ++i) {
        if (i >= cases.size()) {
            ADD_FAILURE() << gguf << ".out has more lines than .inp has texts";
            break;
        }
        std::istringstream ids(line);
        for (int32_t id; ids >> id;) cases[i].ids.push_back(id);
    }
    EXPECT_EQ(i, cases.size()) << gguf;
    return cases;
}

const Tokenizer& tokenizer_of(const std::string& path) {
    static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
    auto& t = cache[path];
    if (!t) {
        auto v = load_gguf_vocab(path);
        if (!v) throw std::runtime_error(v.error().message);
        auto tok = Tokenizer::create(*v);
        if (!tok) throw std::runtime_error(tok.error().message);
        t = std::make_unique<Tokenizer>(std::move(*tok));
    }
    return *t;
}

std::string shown(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) s += std::to_string(id) + " ";
    return s;
}

void expect_original_ids(const std::string& path, const char* pre, int32_t n_vocab) {
    const Tokenizer& tok = tokenizer_of(path);
    EXPECT_EQ(tok.pre(), pre);
    EXPECT_EQ(tok.n_vocab(), n_vocab);
    const auto cases = read_cases(path);
    EXPECT_GE(cases.size(), 40u);
    for (const Case& c : cases) {
        // As llama.cpp's test-tokenizer-0: no BOS, no special tokens parsed.
        const auto ids = tok.encode(c.text, false, false);
        EXPECT_EQ(ids, c.ids) << "text '" << c.text << "': got " << shown(ids) << "want "
                              << shown(c.ids);
        EXPECT_EQ(tok.decode(ids), c.text);
    }
}

TEST(RealVocab, DeepseekLlmGivesTheOriginalTokenizersIds) {
    REQUIRE_VOCAB_FILES();
    expect_original_ids(kLlm, "deepseek-llm", 102400);
}

TEST(RealVocab, DeepseekCoderGivesTheOriginalTokenizersIds) {
    REQUIRE_VOCAB_FILES();
    expect_original_ids(kCoder, "deepseek-coder", 32256);
}

TEST(RealVocab, SourceTextRoundTrips) {
    REQUIRE_VOCAB_FILES();
    std::string text;
    for (const char* f : {"/engine/tokenizer.cpp", "/README.md", "/engine/vocab.h"})
        text += read_file(std::string(LATENT_SOURCE_DIR) + f);
    text += "Grüße, 世界! Ünïcödé ø and tabs\t\r\n  \n";
    ASSERT_GT(text.size(), 10000u);
    for (const auto& path : {kLlm, kCoder}) {
        const Tokenizer& tok = tokenizer_of(path);
        const auto ids = tok.encode(text, true, false);
        EXPECT_EQ(ids.front(), tok.bos());
        EXPECT_EQ(tok.decode({ids.begin() + 1, ids.end()}), text) << path;
        // Code compresses: several bytes per token.
        EXPECT_GT(double(text.size()) / ids.size(), 2.5) << path;
    }
}

TEST(RealVocab, PlainAddedTokensAreSplitOutSpecialLookingOnesOnlyOnRequest) {
    REQUIRE_VOCAB_FILES();
    // DeepSeek LLM's added characters (USER_DEFINED 'ö' at 100003): split out of any text, as
    // llama.cpp and HF do.
    const Tokenizer& llm = tokenizer_of(kLlm);
    EXPECT_EQ(llm.find_token("ö"), 100003);
    EXPECT_EQ(llm.encode("ö", false, false), std::vector<int32_t>{100003});
    EXPECT_EQ(llm.decode({100003}), "ö");
    // DeepSeek Coder's <|EOT|> is USER_DEFINED too, but looks special: only on request.
    const Tokenizer& coder = tokenizer_of(kCoder);
    ASSERT_EQ(coder.find_token("<|EOT|>"), 32021);
    EXPECT_EQ(coder.encode("a<|EOT|>", false, true).back(), 32021);
    const auto plain = coder.encode("a<|EOT|>", false, false);
    EXPECT_EQ(std::count(plain.begin(), plain.end(), 32021), 0) << shown(plain);
    EXPECT_TRUE(coder.is_eog(32021));
}

TEST(RealVocab, FimTokensComeFromTheVocabularyByText) {
    REQUIRE_VOCAB_FILES();
    // DeepSeek LLM has none: a completion gets a clear error.
    const Tokenizer& llm = tokenizer_of(kLlm);
    EXPECT_FALSE(llm.fim());
    auto none = fim_tokens(llm, "int main(", ") {}");
    ASSERT_FALSE(none);
    EXPECT_NE(none.error().message.find("no fill-in-the-middle tokens"), std::string::npos)
        << none.error().message;
    // DeepSeek Coder (v1): the same spellings at 32015-32017.
    auto coder = tokenizer_of(kCoder).fim();
    ASSERT_TRUE(coder);
    EXPECT_EQ(coder->pre, 32016);
    EXPECT_EQ(coder->suf, 32015);
    EXPECT_EQ(coder->mid, 32017);
}

TEST(RealVocab, CoderV2LiteVocabularyHasItsFimTokensOverDeepseekLlms) {
    REQUIRE_VOCAB_FILES();
    auto base = load_gguf_vocab(kLlm);
    ASSERT_TRUE(base) << base.error().message;
    auto lite = coder_v2_lite_vocab(*base);
    ASSERT_TRUE(lite) << lite.error().message;
    EXPECT_EQ(lite->tokens.size(), 102400u);
    EXPECT_EQ(lite->merges, base->merges);
    for (size_t id = 0; id < lite->tokens.size(); ++id) {
        if (id < 100002 || id > 100004) {
            ASSERT_EQ(lite->tokens[id], base->tokens[id]) << id;
        }
    }
    auto tok = Tokenizer::create(*lite);
    ASSERT_TRUE(tok) << tok.error().message;
    ASSERT_TRUE(tok->fim());
    EXPECT_EQ(tok->fim()->suf, 100002);  // <｜fim▁hole｜>
    EXPECT_EQ(tok->fim()->pre, 100003);  // <｜fim▁begin｜>
    EXPECT_EQ(tok->fim()->mid, 100004);  // <｜fim▁end｜>

    // PSM order with BOS 100000; the pieces tokenized separately (ENGINE_SPEC §4.3).
    auto ids = fim_tokens(*tok, "def f(x):\n    return ", "\n\nprint(f(2))\n");
    ASSERT_TRUE(ids) << ids.error().message;
    std::vector<int32_t> want = {100000, 100003};
    for (int32_t id : tok->encode("def f(x):\n    return ", false, false)) want.push_back(id);
    want.push_back(100002);
    for (int32_t id : tok->encode("\n\nprint(f(2))\n", false, false)) want.push_back(id);
    want.push_back(100004);
    EXPECT_EQ(*ids, want);
    // A client's text cannot spell a FIM token.
    const auto smuggled = tok->encode("x<｜fim▁hole｜>", false, false);
    EXPECT_EQ(std::count(smuggled.begin(), smuggled.end(), 100002), 0) << shown(smuggled);

    // Chat: Coder-V2's text form, BOS/EOS by the vocabulary's ids.
    EXPECT_EQ(chat_family(*tok), ChatFamily::kDeepSeekCoderV2);
    const auto chat = chat_tokens(
        *tok, {{"user", "hi", {}, {}}, {"assistant", "yo", {}, {}}, {"user", "again", {}, {}}});
    EXPECT_EQ(chat.front(), 100000);
    EXPECT_EQ(std::count(chat.begin(), chat.end(), 100001), 1);
    EXPECT_EQ(tok->decode({chat.begin() + 1, chat.end()}),
              "User: hi\n\nAssistant: yo<｜end▁of▁sentence｜>User: again\n\nAssistant:");

    // Only DeepSeek LLM's vocabulary is Coder-V2-Lite's base.
    auto coder = load_gguf_vocab(kCoder);
    ASSERT_TRUE(coder);
    auto wrong = coder_v2_lite_vocab(*coder);
    ASSERT_FALSE(wrong);
    EXPECT_NE(wrong.error().message.find("deepseek-coder"), std::string::npos)
        << wrong.error().message;
}

// ---- The CLI on the real vocabularies (it runs the binary: the slow label, no sanitizer run) ----

using latent::test::CliRun;

CliRun run(const std::string& args) {
    return latent::test::run_cli(args, latent::test::temp_dir() + "/real-vocab-stderr.txt");
}

TEST(RealVocabCliSlow, TokenizeReadsAVocabularyOnlyFile) {
    REQUIRE_VOCAB_FILES();
    const auto cases = read_cases(kLlm);
    const Case& c = cases[18];  // " this is 🦙.cpp"
    const std::string text_path = latent::test::temp_dir() + "/real-vocab-text.txt";
    std::ofstream(text_path, std::ios::binary) << c.text;
    CliRun r = run("tokenize --vocab " + kLlm + " --ids --stdin < " + text_path);
    ASSERT_EQ(r.status, 0) << r.err;
    std::string want = "100000";  // BOS: the file's add_bos_token
    for (int32_t id : c.ids) want += " " + std::to_string(id);
    EXPECT_EQ(r.out, want + "\n");
    CliRun both = run("tokenize --vocab " + kLlm + " --model " + kLlm + " x");
    EXPECT_NE(both.status, 0);
}

TEST(RealVocabCliSlow, MakeModelWithTheRealVocabularyCompletesAndBenchReportsIt) {
    REQUIRE_VOCAB_FILES();
    const std::string dir = latent::test::temp_dir();
    const std::string lite = dir + "/real-vocab-tiny.gguf";
    CliRun made = run("make-model --preset tiny --quant q8_0 --vocab " + kLlm + " --out " + lite);
    ASSERT_EQ(made.status, 0) << made.err;
    EXPECT_NE(made.err.find("Coder-V2-Lite"), std::string::npos) << made.err;
    auto model = Model::load(lite);
    ASSERT_TRUE(model) << model.error().message;
    EXPECT_EQ((*model)->hparams().n_vocab, 102400u);
    EXPECT_EQ((*model)->vocab().pre, "deepseek-llm");
    EXPECT_EQ((*model)->vocab().tokens[100003], "<｜fim▁begin｜>");
    CliRun fim = run("generate -m " + lite + " -p 'int main(' --suffix ') {}' -n 2 --ids");
    EXPECT_EQ(fim.status, 0) << fim.err;

    // The same vocabulary without FIM tokens: a completion is refused with a clear message.
    auto base = load_gguf_vocab(kLlm);
    ASSERT_TRUE(base);
    MakeModelOptions o;
    o.preset = "tiny";
    o.quant = GgmlType::kQ8_0;
    o.out = dir + "/real-vocab-no-fim.gguf";
    ASSERT_TRUE(make_model(o, *base));
    CliRun refused = run("generate -m " + o.out + " -p 'int main(' --suffix ') {}' -n 2");
    EXPECT_EQ(refused.status, 2);
    EXPECT_NE(refused.err.find("no fill-in-the-middle tokens"), std::string::npos) << refused.err;

    // bench tokenizer on the vocabulary-only file.
    const std::string src = dir + "/real-vocab-src";
    std::filesystem::create_directories(src);
    std::filesystem::copy_file(std::string(LATENT_SOURCE_DIR) + "/engine/tokenizer.h",
                               src + "/tokenizer.h",
                               std::filesystem::copy_options::overwrite_existing);
    CliRun bench = run("bench tokenizer --vocab " + kLlm + " --dir " + src + " --repeat 1");
    ASSERT_EQ(bench.status, 0) << bench.err;
    const auto j = nlohmann::json::parse(bench.out);
    EXPECT_EQ(j["pre"], "deepseek-llm");
    EXPECT_EQ(j["n_vocab"], 102400);
    EXPECT_EQ(j["files"], 1);
    EXPECT_GT(j["tokens"].get<int>(), 100);
    EXPECT_GT(j["bytes_per_token"].get<double>(), 2.5);
}

}  // namespace
