// `latent bench json-decode`: what a JSON-schema constraint costs in decode speed with a
// real model, through the Scheduler as `latent serve` drives it: the same prompt decoded
// free and held to a schema (engine/json_constraint.h), tok/s of each (median of the
// repeats) and the overhead. `latent bench json-mask` times the mask alone, without a
// model. Progress on stderr, one JSON line on stdout (shared/BENCHMARKS.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/commands.h"
#include "engine/backends.h"
#include "engine/cpu/backend.h"
#include "engine/json_constraint.h"
#include "engine/model.h"
#include "engine/scheduler.h"
#include "engine/token_bytes.h"
#include "engine/tokenizer.h"

namespace latent::agent {
namespace {

using namespace latent::engine;
using Clock = std::chrono::steady_clock;

// An array of up to 64 objects (a string, an integer, an enum array each). At least one:
// a schema whose shortest document is longer (in bytes) than the tokens left makes the
// constraint finish from the first token, and only its plan would be timed.
constexpr const char* kSchema = R"({
  "type": "object",
  "properties": {
    "items": {"type": "array", "minItems": 1, "maxItems": 64, "items": {
      "type": "object",
      "properties": {"name": {"type": "string"}, "line": {"type": "integer"},
                     "tags": {"type": "array", "maxItems": 3,
                              "items": {"enum": ["fn", "type", "var", "test"]}}},
      "required": ["name", "line", "tags"]}}
  },
  "required": ["items"]
})";

struct Run {
    double decode_tok_s = 0;
    int32_t tokens = 0;
    std::string finish;
};

// One request through the scheduler: decode tok/s over the tokens after the first (the
// first token's time is the prefill's).
Expected<Run> run_once(Scheduler& sched, const std::vector<int32_t>& prompt, int gen,
                       float temperature, uint64_t seed,
                       std::shared_ptr<TokenConstraint> constraint,
                       std::vector<int32_t> end_tokens) {
    std::mutex mu;
    Clock::time_point first{}, last{};
    int32_t n = 0;
    RequestResult result;
    Request r;
    r.prompt = prompt;
    r.sampling.temperature = temperature;
    r.sampling.seed = seed;
    r.max_tokens = gen;
    r.end_tokens = std::move(end_tokens);
    r.constraint = std::move(constraint);
    r.on_token = [&](int32_t) {
        std::lock_guard lock(mu);
        last = Clock::now();
        if (n++ == 0) first = last;
        return true;
    };
    r.on_done = [&](const RequestResult& res) {
        std::lock_guard lock(mu);
        result = res;
    };
    auto h = sched.submit(std::move(r));
    if (!h) return h.error();
    sched.wait_idle();
    if (result.finish_reason == "error") return make_error(result.error);
    Run out;
    out.tokens = static_cast<int32_t>(result.tokens.size());
    out.finish = result.finish_reason;
    const double s = std::chrono::duration<double>(last - first).count();
    out.decode_tok_s = n > 1 && s > 0 ? (n - 1) / s : 0;
    return out;
}

nlohmann::json stats(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return {{"median", v[v.size() / 2]}, {"min", v.front()}, {"max", v.back()}};
}

void register_bench_json_decode(CLI::App& app, int& exit_code) {
    CLI::App* bench = bench_command(app);
    auto* cmd = bench->add_subcommand(
        "json-decode",
        "Decode tok/s through the scheduler for one prompt, free and held to a JSON schema "
        "(the constraint's cost with a real model).");
    struct Args {
        std::string model, backend = "cpu";
        int threads = 0, gen = 256, repeat = 3;
        float temperature = 0;
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("--model,-m", a->model, "GGUF model file")->required();
    cmd->add_option("--backend", a->backend, std::string("Backend: ") + backend_names())
        ->capture_default_str();
    cmd->add_option("--threads,-t", a->threads, "CPU threads (0: all)")->capture_default_str();
    cmd->add_option("--gen", a->gen, "Tokens to generate (at most)")
        ->capture_default_str()
        ->check(CLI::Range(2, 1 << 16));
    cmd->add_option("--repeat", a->repeat, "Runs of each (median reported)")
        ->capture_default_str()
        ->check(CLI::Range(1, 100));
    cmd->add_option("--temperature", a->temperature, "0: greedy; else seeded sampling")
        ->capture_default_str();
    cmd->callback([&exit_code, a] {
        auto m = Model::load(a->model);
        if (!m) {
            exit_code = fail(m.error().message);
            return;
        }
        const Model& model = **m;
        auto tok = Tokenizer::create(model.vocab());
        if (!tok) {
            exit_code = fail(a->model + ": tokenizer: " + tok.error().message);
            return;
        }
        auto chosen = make_backend({a->backend, a->threads});
        if (!chosen) {
            exit_code = fail(chosen.error().message);
            return;
        }
        if (!chosen->note.empty())
            std::fprintf(stderr, "bench json-decode: %s\n", chosen->note.c_str());
        Backend& backend = *chosen->backend;
        std::string kernels = "-";
        int threads = 1;
        if (const auto* cpu = dynamic_cast<const CpuBackend*>(&backend)) {
            kernels = cpu->kernels().name;
            threads = cpu->threads();
        }
        Scheduler::Options o;
        o.prefix_cache = false;  // every run computes its prompt: runs are alike
        o.disk_dir = "";
        o.threaded = true;
        auto sched = Scheduler::create(model, backend, o);
        if (!sched) {
            exit_code = fail(sched.error().message);
            return;
        }

        const auto t_tables = Clock::now();
        auto tables = JsonTokenTables::create(TokenBytes::create(*tok));
        const double tables_ms =
            std::chrono::duration<double, std::milli>(Clock::now() - t_tables).count();
        auto grammar = JsonGrammar::compile(nlohmann::ordered_json::parse(kSchema));
        if (!grammar) {
            exit_code = fail(grammar.error().message);
            return;
        }
        std::vector<int32_t> end_tokens;
        for (int32_t id = 0; id < tok->n_vocab(); ++id)
            if (tok->is_eog(id)) end_tokens.push_back(id);

        const std::vector<int32_t> prompt = tok->encode(
            "List every symbol of the file below as JSON: an object with an array \"items\" "
            "of {name, line, tags}.\n\nint add(int a, int b) { return a + b; }\nstruct Point "
            "{ int x, y; };\nstatic int counter = 0;\nvoid test_add() { assert(add(1, 2) == 3); "
            "}\n",
            /*add_bos=*/true, /*parse_special=*/false);
        std::vector<double> free_tps, json_tps;
        std::vector<int32_t> free_tokens, json_tokens;
        std::vector<std::string> json_finish;
        for (int rep = 0; rep < a->repeat; ++rep) {
            const uint64_t seed = 1000 + static_cast<uint64_t>(rep);
            // Free: no end tokens, so every run makes --gen tokens.
            auto f = run_once(**sched, prompt, a->gen, a->temperature, seed, nullptr, {});
            if (!f) {
                exit_code = fail(f.error().message);
                return;
            }
            auto c = std::make_shared<JsonConstraint>(tables, *grammar, end_tokens);
            auto j = run_once(**sched, prompt, a->gen, a->temperature, seed, c, end_tokens);
            if (!j) {
                exit_code = fail(j.error().message);
                return;
            }
            free_tps.push_back(f->decode_tok_s);
            json_tps.push_back(j->decode_tok_s);
            free_tokens.push_back(f->tokens);
            json_tokens.push_back(j->tokens);
            json_finish.push_back(j->finish + (c->failed() ? "/failed" : "") +
                                  (nlohmann::json::parse(c->text(), nullptr, false).is_discarded()
                                       ? "/unparsed"
                                       : "/parsed"));
            std::fprintf(stderr,
                         "bench json-decode: run %d/%d: free %.2f tok/s (%d tokens), schema "
                         "%.2f tok/s (%d tokens, %s)\n",
                         rep + 1, a->repeat, f->decode_tok_s, f->tokens, j->decode_tok_s, j->tokens,
                         json_finish.back().c_str());
        }
        const double free_med = stats(free_tps)["median"];
        const double json_med = stats(json_tps)["median"];
        nlohmann::json out = {
            {"bench", "json-decode"},
            {"model", a->model},
            {"backend", backend.name()},
            {"kernels", kernels},
            {"threads", threads},
            {"prompt", prompt.size()},
            {"gen", a->gen},
            {"temperature", a->temperature},
            {"repeat", a->repeat},
            {"free_decode_tok_s", free_med},
            {"json_decode_tok_s", json_med},
            {"overhead_pct", free_med > 0 ? (free_med / json_med - 1) * 100 : 0.0},
            {"free", stats(free_tps)},
            {"json", stats(json_tps)},
            {"free_tokens", free_tokens},
            {"json_tokens", json_tokens},
            {"json_finish", json_finish},
            {"tables_build_ms", tables_ms}};
        std::printf("%s\n", out.dump().c_str());
    });
}

}  // namespace

void register_bench_json_decode_command(CLI::App& app, int& exit_code) {
    register_bench_json_decode(app, exit_code);
}

}  // namespace latent::agent
