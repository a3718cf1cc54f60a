// `latent bench json-mask`: what JSON-constrained decoding costs per sampled token on the
// DeepSeek-V3 vocabulary (engine/json_constraint.h), without a model: random logit rows
// stand in for a random-weight model and only JsonConstraint::mask() is timed. Progress
// on stderr, one JSON line on stdout (shared/BENCHMARKS.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/commands.h"
#include "agent/data_files.h"
#include "engine/json_constraint.h"
#include "engine/tokenizer.h"
#include "engine/tokenizer_json.h"

namespace latent::agent {
namespace {

using namespace latent::engine;
using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point t) {
    return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
}

// A nested schema of the kind clients send: objects in arrays, enums, nullable fields,
// integers, and a recursive $ref.
constexpr const char* kNestedSchema = R"({
  "type": "object",
  "properties": {
    "title": {"type": "string"},
    "year": {"type": "integer"},
    "rating": {"type": ["number", "null"]},
    "genres": {"type": "array", "items": {"enum": ["drama", "comedy", "horror", "sci-fi"]},
               "minItems": 1, "maxItems": 3},
    "cast": {"type": "array", "maxItems": 4, "items": {
      "type": "object",
      "properties": {"name": {"type": "string"}, "role": {"type": "string"},
                     "lead": {"type": "boolean"}},
      "required": ["name", "role"]}},
    "sections": {"type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/section"}}
  },
  "required": ["title", "year", "genres", "cast"],
  "$defs": {"section": {"type": "object", "properties": {
    "heading": {"type": "string"},
    "children": {"type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/section"}}},
    "required": ["heading"]}}
})";

struct CaseResult {
    std::vector<double> us;  // one per mask() call
    uint64_t generations = 0, tokens_in_strings = 0;
    JsonMasker::Stats stats;
};

// Generations (restarted when one ends) until `steps` masks are timed. Each step: a
// random logit row (xorshift), mask() timed, then argmax, which with i.i.d. logits is a
// uniform draw from the allowed tokens.
CaseResult run_case(const std::shared_ptr<const JsonTokenTables>& tables,
                    const std::shared_ptr<const JsonGrammar>& grammar, int32_t eos, int steps,
                    int max_tokens, uint64_t seed) {
    const int32_t n = tables->tokens().n_vocab();
    std::vector<float> row(static_cast<size_t>(n));
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    CaseResult r;
    while (int(r.us.size()) < steps) {
        JsonConstraint c(tables, grammar, {eos});
        ++r.generations;
        for (int t = 0; t < max_tokens && int(r.us.size()) < steps; ++t) {
            for (float& v : row) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                v = float(x >> 40);
            }
            const auto t0 = Clock::now();
            c.mask(row.data(), n, max_tokens - t);
            r.us.push_back(us_since(t0));
            const int32_t id =
                static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
            c.accept(id);
            if (id == eos || c.failed()) break;
        }
        const auto& s = c.stats();
        r.stats.masks += s.masks;
        r.stats.cache_hits += s.cache_hits;
        r.stats.string_fast_path += s.string_fast_path;
        r.stats.trie_steps += s.trie_steps;
    }
    return r;
}

nlohmann::json summary(const std::string& name, int max_tokens, CaseResult r) {
    std::vector<double> v = r.us;
    std::sort(v.begin(), v.end());
    auto pct = [&](double p) { return v[std::min(v.size() - 1, size_t(p * double(v.size())))]; };
    double sum = 0;
    for (double u : v) sum += u;
    const double masks = double(std::max<uint64_t>(1, r.stats.masks));
    return {{"name", name},
            {"max_tokens", max_tokens},
            {"masks", v.size()},
            {"generations", r.generations},
            {"p50_us", pct(0.50)},
            {"p90_us", pct(0.90)},
            {"p99_us", pct(0.99)},
            {"max_us", v.back()},
            {"mean_us", sum / double(v.size())},
            {"cache_hit_rate", double(r.stats.cache_hits) / masks},
            {"string_fast_path_rate", double(r.stats.string_fast_path) / masks},
            {"trie_steps_per_mask", double(r.stats.trie_steps) / masks}};
}

void register_bench_json_mask(CLI::App& app, int& exit_code) {
    CLI::App* bench = bench_command(app);
    auto* cmd = bench->add_subcommand(
        "json-mask",
        "JSON-constrained decoding: microseconds per logit mask on the DeepSeek-V3 "
        "vocabulary, for json_object and a nested schema (no model needed).");
    struct Args {
        std::string tokenizer;
        int steps = 400;
        int seed = 1;
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("--tokenizer", a->tokenizer,
                    "HF tokenizer.json (default: the one scripts/setup extracted)");
    cmd->add_option("--steps", a->steps, "Masks timed per case")
        ->capture_default_str()
        ->check(CLI::Range(10, 1000000));
    cmd->add_option("--seed", a->seed, "Random logits seed")->capture_default_str();
    cmd->callback([&exit_code, a] {
        std::string path = a->tokenizer;
        if (path.empty()) {
            auto found = find_data_file("deepseek-v3/tokenizer.json");
            if (!found) {
                exit_code = fail(
                    "the DeepSeek-V3 tokenizer was not found (run scripts/setup, or pass "
                    "--tokenizer PATH)");
                return;
            }
            path = *found;
        }
        const std::string dir = path.substr(0, path.rfind('/') + 1);
        const std::string config = std::filesystem::exists(dir + "tokenizer_config.json")
                                       ? dir + "tokenizer_config.json"
                                       : "";
        auto vocab = load_hf_tokenizer_json(path, config, 129280);
        if (!vocab) {
            exit_code = fail(vocab.error().message);
            return;
        }
        auto tok = Tokenizer::create(*vocab);
        if (!tok) {
            exit_code = fail(tok.error().message);
            return;
        }
        auto t0 = Clock::now();
        auto tables = JsonTokenTables::create(TokenBytes::create(*tok));
        const double build_ms = us_since(t0) / 1000;
        std::fprintf(stderr, "bench json-mask: tables for %d tokens built in %.0f ms\n",
                     tok->n_vocab(), build_ms);
        auto nested = JsonGrammar::compile(nlohmann::ordered_json::parse(kNestedSchema));
        if (!nested) {
            exit_code = fail(nested.error().message);
            return;
        }
        struct Case {
            const char* name;
            std::shared_ptr<const JsonGrammar> grammar;
            int max_tokens;
        };
        // Far from max_tokens (the common case), and with max_tokens small enough that
        // every mask checks each token's completion length.
        const Case cases[] = {{"json_object", JsonGrammar::any_object(), 4096},
                              {"nested_schema", *nested, 4096},
                              {"json_object_near_max_tokens", JsonGrammar::any_object(), 96},
                              {"nested_schema_near_max_tokens", *nested, 96}};
        nlohmann::json rows = nlohmann::json::array();
        for (const Case& c : cases) {
            auto r =
                run_case(tables, c.grammar, tok->eos(), a->steps, c.max_tokens, uint64_t(a->seed));
            rows.push_back(summary(c.name, c.max_tokens, std::move(r)));
            std::fprintf(stderr, "bench json-mask: %s: p50 %.1f us, p99 %.1f us\n", c.name,
                         rows.back()["p50_us"].get<double>(), rows.back()["p99_us"].get<double>());
        }
        nlohmann::json j = {{"bench", "json-mask"},
                            {"vocab", tok->n_vocab()},
                            {"steps", a->steps},
                            {"tables_build_ms", build_ms},
                            {"json_object_p50_us", rows[0]["p50_us"]},
                            {"json_object_p99_us", rows[0]["p99_us"]},
                            {"nested_schema_p50_us", rows[1]["p50_us"]},
                            {"nested_schema_p99_us", rows[1]["p99_us"]},
                            {"cases", rows}};
        std::printf("%s\n", j.dump().c_str());
    });
}

}  // namespace

void register_bench_json_mask_command(CLI::App& app, int& exit_code) {
    register_bench_json_mask(app, exit_code);
}

}  // namespace latent::agent
