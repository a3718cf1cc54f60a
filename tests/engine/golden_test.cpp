// Golden tests: token ids and logits of fixed prompts on make-model files, pinned from
// runs that were checked against llama.cpp (README, "Truth against an independent
// engine"). A change to the tokenizer, make-model, the loader or the reference math
// that moves any of them shows here.
//
// To re-pin after a deliberate change (and re-checking against llama.cpp):
//   LATENT_UPDATE_GOLDEN=1 build/tests/latent_engine_tests --gtest_filter='GoldenSlow*'
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/reference.h"
#include "engine/session.h"
#include "engine/tokenizer.h"
#include "tests/support/test_models.h"

namespace latent::engine {
namespace {

constexpr const char* kGoldenPath = LATENT_SOURCE_DIR "/tests/engine/golden/reference.json";
constexpr int kSteps = 32;
constexpr int kTop = 5;
// Logits are pinned to 1e-3 absolute (they are O(1)): far above the run-to-run and
// compiler-to-compiler noise of a double-accumulating reference, far below any change
// of the math.
constexpr double kLogitTolerance = 1e-3;

struct Case {
    std::string name, preset, quant, gating, layout;
};

const std::vector<Case>& cases() {
    static const std::vector<Case> k = {
        {"tiny-q8_0-v3-split", "tiny", "q8_0", "v3", "split"},
        {"tiny-q8_0-v3-single", "tiny", "q8_0", "v3", "single"},
        {"tiny-q8_0-v2-split", "tiny", "q8_0", "v2", "split"},
        {"tiny-f16-v3-split", "tiny", "f16", "v3", "split"},
        {"tiny-f16-v2-single", "tiny", "f16", "v2", "single"},
        {"tiny-v2-q8_0-split", "tiny-v2", "q8_0", "v2", "split"},
        {"tiny-v2-f16-single", "tiny-v2", "f16", "v2", "single"},
        {"small-q8_0-v3-split", "small", "q8_0", "v3", "split"},
        {"small-q4_k-v3-split", "small", "q4_k", "v3", "split"},
    };
    return k;
}

const char* kPrompt = "def fib(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n";

nlohmann::json run_case(const Case& c) {
    MakeModelOptions o;
    o.preset = c.preset;
    o.quant = *parse_type_name(c.quant);
    o.v3_gating = c.gating == "v3";
    o.split_kv = c.layout == "split";
    o.seed = 1;
    auto m = Model::load(test::make_test_model(o, /*real_tokenizer=*/true));
    EXPECT_TRUE(m.ok());
    if (!m.ok()) return {};
    auto tok = Tokenizer::create((*m)->vocab());
    EXPECT_TRUE(tok.ok());
    const auto prompt = tok->encode(kPrompt, true, false);
    ReferenceBackend backend;
    const HParams& hp = (*m)->hparams();
    LatentCache cache(LatentCache::Config{hp.n_layer, hp.kv_lora_rank, hp.n_rot});
    Session s(**m, backend, cache);
    auto pre = s.prefill(prompt);
    EXPECT_TRUE(pre.ok());
    std::vector<float> logits = pre->logits;
    nlohmann::json j = {{"prompt_ids", prompt},
                        {"tokens", nlohmann::json::array()},
                        {"top", nlohmann::json::array()}};
    for (int step = 0; step < kSteps; ++step) {
        std::vector<int32_t> order(logits.size());
        for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
        std::partial_sort(order.begin(), order.begin() + kTop, order.end(),
                          [&](int32_t a, int32_t b) {
                              return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
                          });
        nlohmann::json top = nlohmann::json::array();
        for (int k = 0; k < kTop; ++k) top.push_back({order[k], logits[order[k]]});
        j["top"].push_back(top);
        j["tokens"].push_back(order[0]);
        auto next = s.decode(order[0]);
        EXPECT_TRUE(next.ok());
        logits = *next;
    }
    return j;
}

TEST(GoldenSlow, ReferenceMatchesPinnedIdsAndLogits) {
    const bool update = std::getenv("LATENT_UPDATE_GOLDEN") != nullptr;
    nlohmann::json golden;
    if (!update) {
        std::ifstream in(kGoldenPath);
        ASSERT_TRUE(in) << kGoldenPath << " is missing";
        golden = nlohmann::json::parse(in);
    }
    nlohmann::json out = {{"prompt", kPrompt}, {"cases", nlohmann::json::object()}};
    for (const Case& c : cases()) {
        SCOPED_TRACE(c.name);
        const nlohmann::json got = run_case(c);
        out["cases"][c.name] = got;
        if (update) continue;
        ASSERT_TRUE(golden["cases"].contains(c.name));
        const nlohmann::json& want = golden["cases"][c.name];
        EXPECT_EQ(got["prompt_ids"], want["prompt_ids"]);
        EXPECT_EQ(got["tokens"], want["tokens"]);
        for (int step = 0; step < kSteps; ++step)
            for (int k = 0; k < kTop; ++k) {
                EXPECT_EQ(got["top"][step][k][0], want["top"][step][k][0]) << "step " << step;
                EXPECT_NEAR(got["top"][step][k][1].get<double>(),
                            want["top"][step][k][1].get<double>(), kLogitTolerance)
                    << "step " << step << " rank " << k;
            }
    }
    if (update) {
        std::ofstream(kGoldenPath) << out.dump(1) << "\n";
        GTEST_SKIP() << "wrote " << kGoldenPath;
    }
}

}  // namespace
}  // namespace latent::engine
