// `latent bench engine` and `latent bench tokenizer`: progress on stderr, one JSON
// object on one line on stdout (shared/BENCHMARKS.md).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include <nlohmann/json.hpp>

#include "agent/commands.h"
#include "engine/backends.h"
#include "engine/cpu/backend.h"
#include "engine/cpu/thread_pool.h"
#include "engine/model.h"
#include "engine/session.h"
#include "engine/tokenizer.h"

namespace latent::agent {
namespace {

using namespace latent::engine;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

double peak_rss_mb() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;  // KiB on Linux
}

nlohmann::json stats(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return {{"median", v[v.size() / 2]}, {"min", v.front()}, {"max", v.back()}};
}

// Memory read bandwidth: `threads` threads sum disjoint parts of a 1 GiB buffer (far larger
// than any cache), best of 5 passes, in GB/s. The loop is 8 independent 64-bit sums, which
// the compiler vectorizes; reading, not arithmetic, is the limit.
double measure_read_bandwidth_gbs(int threads) {
    const size_t n = (size_t{1} << 30) / sizeof(uint64_t);
    std::vector<uint64_t> buf(n);
    for (size_t i = 0; i < n; ++i) buf[i] = i;
    ThreadPool pool(threads);
    double best = 0;
    std::vector<uint64_t> sink(static_cast<size_t>(pool.size()));
    for (int pass = 0; pass < 5; ++pass) {
        const auto t0 = Clock::now();
        pool.run([&](int i, int total) {
            const size_t b = n * static_cast<size_t>(i) / total;
            const size_t e = n * static_cast<size_t>(i + 1) / total;
            uint64_t acc[8] = {};
            for (size_t k = b; k + 8 <= e; k += 8)
                for (int l = 0; l < 8; ++l) acc[l] += buf[k + l];
            sink[static_cast<size_t>(i)] =
                acc[0] ^ acc[1] ^ acc[2] ^ acc[3] ^ acc[4] ^ acc[5] ^ acc[6] ^ acc[7];
        });
        best = std::max(best, (n * sizeof(uint64_t)) / seconds_since(t0) / 1e9);
    }
    if (sink[0] == 42) std::fprintf(stderr, " ");  // keep the sums alive
    return best;
}

void register_bench_engine(CLI::App* bench, int& exit_code) {
    auto* cmd = bench->add_subcommand("engine", "Prefill and decode speed of one sequence.");
    struct Args {
        std::string model, backend = "cpu";
        int threads = 0, prompt = 512, gen = 128, repeat = 3, context = 0;
        bool no_bandwidth = false;
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("--model,-m", a->model, "GGUF model file")->required();
    cmd->add_option("--backend", a->backend, std::string("Backend: ") + backend_names())
        ->capture_default_str();
    cmd->add_option("--threads,-t", a->threads,
                    "CPU threads (0: every CPU this process may use; the reference uses 1)")
        ->capture_default_str()
        ->check(CLI::Range(0, 1024));
    cmd->add_flag("--no-bandwidth", a->no_bandwidth,
                  "Skip measuring memory read bandwidth (the decode bound)");
    cmd->add_option("--prompt", a->prompt, "Prompt tokens")
        ->capture_default_str()
        ->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--context", a->context,
                    "Tokens already in the cache before the prompt (prefilled untimed): the "
                    "prompt then measures the prefill after an edit")
        ->capture_default_str()
        ->check(CLI::Range(0, 1 << 20));
    cmd->add_option("--gen", a->gen, "Generated tokens")
        ->capture_default_str()
        ->check(CLI::Range(0, 1 << 20));
    cmd->add_option("--repeat", a->repeat, "Runs (median reported)")
        ->capture_default_str()
        ->check(CLI::Range(1, 100));
    cmd->callback([&exit_code, a] {
        auto chosen = make_backend({a->backend, a->threads});
        if (!chosen) {
            exit_code = fail(chosen.error().message);
            return;
        }
        if (!chosen->note.empty()) std::fprintf(stderr, "bench engine: %s\n", chosen->note.c_str());
        Backend& backend = *chosen->backend;
        const int threads = a->backend == "reference" ? 1
                            : a->threads > 0          ? a->threads
                                                      : ThreadPool::available_cpus();
        const auto t_load = Clock::now();
        auto m = Model::load(a->model);
        if (!m) {
            exit_code = fail(m.error().message);
            return;
        }
        const Model& model = **m;
        const double map_s = seconds_since(t_load);
        std::fprintf(stderr, "bench engine: preparing the weights...\n");
        backend.prepare(model);  // the CPU backend's repacked copy, part of the load time
        const double load_s = seconds_since(t_load);
        const auto* cpu = dynamic_cast<const engine::CpuBackend*>(&backend);
        const engine::CpuBackend::Repacked repacked =
            cpu ? cpu->repacked() : engine::CpuBackend::Repacked{};
        const HParams& hp = model.hparams();
        // Fixed pseudo-random prompt: the work does not depend on the text.
        // With --context, the context's tokens come first and the prompt after them.
        std::vector<int32_t> prompt(static_cast<size_t>(a->context + a->prompt));
        uint32_t x = 12345;
        for (int32_t& id : prompt)
            id = static_cast<int32_t>((x = x * 1664525u + 1013904223u) %
                                      std::min(hp.n_vocab, 100000u));
        const std::span<const int32_t> context(prompt.data(), static_cast<size_t>(a->context));
        std::vector<double> pre_tps, dec_tps;
        for (int rep = 0; rep < a->repeat; ++rep) {
            LatentCache cache(LatentCache::Config{hp.n_layer, hp.kv_lora_rank, hp.n_rot});
            Session s(model, backend, cache);
            if (a->context > 0) {
                if (auto c = s.prefill(context); !c) {
                    exit_code = fail(c.error().message);
                    return;
                }
            }
            std::fprintf(stderr, "bench engine: run %d/%d: prefill %d...\n", rep + 1, a->repeat,
                         a->prompt);
            auto t0 = Clock::now();
            auto pre = s.prefill(prompt);
            if (!pre) {
                exit_code = fail(pre.error().message);
                return;
            }
            pre_tps.push_back(a->prompt / seconds_since(t0));
            int32_t next = static_cast<int32_t>(
                std::max_element(pre->logits.begin(), pre->logits.end()) - pre->logits.begin());
            t0 = Clock::now();
            for (int i = 0; i < a->gen; ++i) {
                auto l = s.decode(next);
                if (!l) {
                    exit_code = fail(l.error().message);
                    return;
                }
                next = static_cast<int32_t>(std::max_element(l->begin(), l->end()) - l->begin());
            }
            if (a->gen > 0) dec_tps.push_back(a->gen / seconds_since(t0));
            std::fprintf(stderr, "bench engine: run %d: prefill %.2f tok/s, decode %.2f tok/s\n",
                         rep + 1, pre_tps.back(), a->gen > 0 ? dec_tps.back() : 0.0);
        }
        if (dec_tps.empty()) dec_tps.push_back(0);
        // The decode bound: every token reads the active weights once from memory. On the GPU:
        // HBM (4.8 TB/s, an H200) and the step also reads the latent cache (F32 rows, at the
        // run's mean context).
        const bool gpu = backend.name() == "cuda";
        const double cache_gb = gpu ? 4.0 * hp.n_layer * (hp.kv_lora_rank + hp.n_rot) *
                                          (a->context + a->prompt + a->gen / 2.0) / 1e9
                                    : 0.0;
        double read_gbs = gpu ? 4800.0 : 0.0;
        if (!a->no_bandwidth && !gpu) {
            std::fprintf(stderr, "bench engine: measuring memory read bandwidth...\n");
            read_gbs = measure_read_bandwidth_gbs(threads);
        }
        const double step_gb = model.active_weight_bytes() / 1e9 + cache_gb;
        nlohmann::json j = {
            {"bench", "engine"},
            {"model", a->model},
            {"backend", backend.name()},
            {"threads", threads},
            {"prompt", a->prompt},
            {"context", a->context},
            {"gen", a->gen},
            {"prefill_tok_s", stats(pre_tps)["median"]},
            {"decode_tok_s", stats(dec_tps)["median"]},
            {"prefill", stats(pre_tps)},
            {"decode", stats(dec_tps)},
            {"active_weight_mb", model.active_weight_bytes() / 1e6},
            {"mem_read_gbs", read_gbs},
            {"decode_bound_tok_s", read_gbs > 0 ? read_gbs / step_gb : 0.0},
            {"decode_of_bound",
             read_gbs > 0 ? stats(dec_tps)["median"].get<double>() / (read_gbs / step_gb) : 0.0},
            {"load_s", load_s},
            {"map_s", map_s},
            {"kernels", cpu ? cpu->kernels().name : ""},
            {"repacked_mb", repacked.bytes / 1e6},
            {"repack_s", repacked.seconds},
            {"repack_skipped", repacked.skipped},
            {"peak_rss_mb", peak_rss_mb()},
            {"peak_vram_mb", peak_device_bytes(backend) / 1e6}};
        std::printf("%s\n", j.dump().c_str());
    });
}

void register_bench_tokenizer(CLI::App* bench, int& exit_code) {
    auto* cmd = bench->add_subcommand("tokenizer", "Encode speed on real source files.");
    struct Args {
        std::string model, vocab, dir;
        int repeat = 3;
    };
    auto a = std::make_shared<Args>();
    auto* m = cmd->add_option("--model,-m", a->model, "GGUF model file (its vocabulary)");
    cmd->add_option("--vocab", a->vocab,
                    "Any GGUF's vocabulary alone (e.g. llama.cpp's ggml-vocab-deepseek-llm.gguf); "
                    "instead of --model")
        ->excludes(m);
    cmd->add_option("--dir", a->dir, "Directory of source files (recursive)")->required();
    cmd->add_option("--repeat", a->repeat, "Runs (median reported)")
        ->capture_default_str()
        ->check(CLI::Range(1, 100));
    cmd->callback([&exit_code, a] {
        if (a->model.empty() == a->vocab.empty()) {
            exit_code = fail("give --model FILE or --vocab FILE");
            return;
        }
        Expected<Vocab> vocab = make_error("no vocabulary");
        if (!a->vocab.empty()) {
            vocab = load_gguf_vocab(a->vocab);
        } else if (auto model = Model::load(a->model)) {
            vocab = (*model)->vocab();
        } else {
            vocab = model.error();
        }
        if (!vocab) {
            exit_code = fail(vocab.error().message);
            return;
        }
        auto tok = Tokenizer::create(*vocab);
        if (!tok) {
            exit_code = fail(tok.error().message);
            return;
        }
        // Text files only, each capped (1 MiB, like the indexer) and 64 MiB in all.
        std::vector<std::string> texts;
        uint64_t bytes = 0;
        std::error_code ec;
        std::vector<std::filesystem::path> files;
        for (auto it = std::filesystem::recursive_directory_iterator(
                 a->dir, std::filesystem::directory_options::skip_permission_denied, ec);
             !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
            if (it->is_regular_file(ec) && it->file_size(ec) <= (1u << 20))
                files.push_back(it->path());
        }
        if (ec) {
            exit_code = fail(a->dir + ": " + ec.message());
            return;
        }
        std::sort(files.begin(), files.end());
        for (const auto& p : files) {
            std::ifstream in(p, std::ios::binary);
            std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            if (s.find('\0') != std::string::npos) continue;  // binary
            bytes += s.size();
            texts.push_back(std::move(s));
            if (bytes > (64u << 20)) break;
        }
        if (texts.empty()) {
            exit_code = fail(a->dir + ": no text files");
            return;
        }
        std::vector<double> mbs;
        uint64_t n_tokens = 0;
        for (int rep = 0; rep < a->repeat; ++rep) {
            n_tokens = 0;
            const auto t0 = Clock::now();
            for (const std::string& t : texts) n_tokens += tok->encode(t, false, false).size();
            mbs.push_back(bytes / 1e6 / seconds_since(t0));
            std::fprintf(stderr, "bench tokenizer: run %d: %.2f MB/s\n", rep + 1, mbs.back());
        }
        nlohmann::json j = {
            {"bench", "tokenizer"},
            {"vocab",
             std::filesystem::path(a->vocab.empty() ? a->model : a->vocab).filename().string()},
            {"pre", tok->pre()},
            {"n_vocab", tok->n_vocab()},
            {"files", texts.size()},
            {"mb", bytes / 1e6},
            {"tokens", n_tokens},
            {"bytes_per_token", n_tokens ? bytes / double(n_tokens) : 0.0},
            {"mb_s", stats(mbs)["median"]},
            {"runs", stats(mbs)}};
        std::printf("%s\n", j.dump().c_str());
    });
}

}  // namespace

CLI::App* bench_command(CLI::App& app) {
    try {
        return app.get_subcommand("bench");
    } catch (const CLI::OptionNotFound&) {
        auto* bench = app.add_subcommand("bench", "Benchmarks: one JSON line on stdout each.");
        bench->require_subcommand(1);
        return bench;
    }
}

void register_bench_commands(CLI::App& app, int& exit_code) {
    auto* bench = bench_command(app);
    register_bench_engine(bench, exit_code);
    register_bench_tokenizer(bench, exit_code);
}

}  // namespace latent::agent
