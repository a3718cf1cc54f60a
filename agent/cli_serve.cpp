// `latent serve` (the engine behind an OpenAI-compatible HTTP API) and `latent bench
// batch` (concurrent requests through the scheduler: throughput and first-token
// latency, cold and after an edit at the end of each prompt).
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/commands.h"
#include "engine/backends.h"
#include "engine/model.h"
#include "engine/scheduler.h"
#include "engine/serve/http_server.h"
#include "engine/tokenizer.h"

namespace latent::agent {

using namespace latent::engine;
using serve::HttpServer;

namespace {

// Scheduler flags shared by serve and bench batch.
struct EngineFlags {
    std::string model, backend = "cpu";
    int threads = 0;
    Scheduler::Options sched;
    uint64_t cache_mb = 0, prefix_mb = 0, disk_mb = 8192;
    std::string disk = "default";
    bool no_prefix_cache = false;
};

void add_engine_flags(CLI::App* cmd, EngineFlags& f) {
    cmd->add_option("--model,-m", f.model, "GGUF model file")->required();
    cmd->add_option("--backend", f.backend, backend_names())->capture_default_str();
    cmd->add_option("--threads", f.threads, "CPU threads (0: all)")->capture_default_str();
    cmd->add_option("--prefill-chunk", f.sched.prefill_chunk,
                    "Prompt tokens per scheduler step for one prefill")
        ->capture_default_str();
    cmd->add_option("--max-queue", f.sched.max_queue, "Requests queued or running; more: busy")
        ->capture_default_str();
    cmd->add_option("--max-running", f.sched.max_running, "Sequences running at once")
        ->capture_default_str();
    cmd->add_option("--page-tokens", f.sched.page_tokens, "Tokens per cache page")
        ->capture_default_str();
    cmd->add_option("--cache-mb", f.cache_mb, "Latent cache MiB (0: twice the prefix cache's)");
    cmd->add_option("--prefix-cache-mb", f.prefix_mb,
                    "Prefix cache MiB in RAM (0: a quarter of available memory)");
    cmd->add_flag("--no-prefix-cache", f.no_prefix_cache, "Compute every prompt in full");
    cmd->add_option("--disk-cache", f.disk,
                    "Prefix pages on disk: default ($XDG_CACHE_HOME/latent/kv/<model id>), a "
                    "folder, or none")
        ->capture_default_str();
    cmd->add_option("--disk-cache-mb", f.disk_mb, "Disk tier budget in MiB")->capture_default_str();
    cmd->add_option("--draft", f.sched.draft_tokens,
                    "Speculative decoding: prompt-lookup draft tokens per step (0: off)")
        ->capture_default_str();
    cmd->add_flag("--no-batch{false}", f.sched.batch,
                  "One backend call per sequence in a scheduler step (for comparisons)");
    cmd->add_flag("--mtp", f.sched.mtp,
                  "Speculative decoding with the model's MTP block (one draft token per step; "
                  "models with nextn layers, cpu and reference backends), instead of --draft");
}

struct Engine {
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tokenizer;
    std::unique_ptr<Backend> backend;
    std::unique_ptr<Scheduler> scheduler;
};

Expected<Engine> load_engine(const EngineFlags& f, bool threaded) {
    Engine e;
    auto m = Model::load(f.model);
    if (!m) return m.error();
    e.model = std::move(*m);
    auto t = Tokenizer::create(e.model->vocab());
    if (!t) return make_error(f.model + ": tokenizer: " + t.error().message);
    e.tokenizer = std::make_unique<Tokenizer>(std::move(*t));
    auto b = make_backend(BackendOptions{f.backend, f.threads});
    if (!b) return b.error();
    if (!b->note.empty()) std::fprintf(stderr, "latent: %s\n", b->note.c_str());
    e.backend = std::move(b->backend);
    e.backend->prepare(*e.model);
    Scheduler::Options o = f.sched;
    o.cache_bytes = f.cache_mb << 20;
    o.prefix_cache_bytes = f.prefix_mb << 20;
    o.prefix_cache = !f.no_prefix_cache;
    o.disk_dir = f.disk == "none" ? "" : f.disk;
    o.disk_bytes = f.disk_mb << 20;
    o.threaded = threaded;
    if (o.mtp && e.model->hparams().n_nextn == 0)
        std::fprintf(stderr, "latent: --mtp: %s has no MTP block; no drafts\n", f.model.c_str());
    else if (o.mtp && !e.backend->supports_mtp())
        std::fprintf(stderr, "latent: --mtp: the %s backend cannot run the MTP block; no drafts\n",
                     e.backend->name().c_str());
    auto s = Scheduler::create(*e.model, *e.backend, o);
    if (!s) return s.error();
    e.scheduler = std::move(*s);
    return e;
}

// The first line of a key file (at most 4 KiB; trailing spaces and CR dropped).
Expected<std::string> read_api_key_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return make_error("--api-key-file " + path + ": cannot open it");
    char buf[4097];
    const size_t n = std::fread(buf, 1, sizeof(buf), f);
    std::fclose(f);
    if (n > 4096) return make_error("--api-key-file " + path + ": larger than 4 KiB");
    std::string key(buf, n);
    key = key.substr(0, key.find('\n'));
    while (!key.empty() && (key.back() == '\r' || key.back() == ' ' || key.back() == '\t'))
        key.pop_back();
    if (key.empty()) return make_error("--api-key-file " + path + ": no key in its first line");
    return key;
}

void register_serve(CLI::App& app, int& exit_code) {
    auto* cmd =
        app.add_subcommand("serve",
                           "Serve the model over an OpenAI/DeepSeek-compatible HTTP API "
                           "(/v1/completions, /v1/chat/completions with tools and JSON output, "
                           "the same under /beta, /v1/models, /health, /metrics). The API key "
                           "comes from $LATENT_API_KEY or --api-key-file.");
    struct Args {
        EngineFlags engine;
        HttpServer::Options http;
        uint64_t max_body_kb = 8192;
        std::string api_key_file;
    };
    auto a = std::make_shared<Args>();
    add_engine_flags(cmd, a->engine);
    cmd->add_option("--host", a->http.host, "Address to bind (loopback unless you mean it)")
        ->capture_default_str();
    cmd->add_option("--port", a->http.port, "Port (0: any free one)")->capture_default_str();
    cmd->add_option("--api-key", a->http.api_key,
                    "Require 'Authorization: Bearer KEY' (every local user can read argv: "
                    "prefer $LATENT_API_KEY or --api-key-file)");
    cmd->add_option("--api-key-file", a->api_key_file,
                    "Read the API key from this file (its first line)");
    cmd->add_option("--allow-host", a->http.allowed_hosts,
                    "Accept requests whose Host header names this host (repeatable; '*': any). "
                    "By default only loopback names and the bound address")
        ->take_all();
    cmd->add_option("--allow-origin", a->http.allowed_origins,
                    "Serve cross-origin requests from this origin, e.g. http://localhost:3000 "
                    "(repeatable; '*': any). By default a request with an Origin header is "
                    "refused")
        ->take_all();
    cmd->add_option("--alias", a->http.model_name, "Model id to report (default: file name)");
    cmd->add_option("--max-body-kb", a->max_body_kb, "Largest request body")->capture_default_str();
    cmd->add_option("--max-prompt-tokens", a->http.max_prompt_tokens,
                    "Longest prompt (0: the model's context)")
        ->capture_default_str();
    cmd->add_option("--max-connections", a->http.max_connections,
                    "Requests handled at once; more are answered 503")
        ->capture_default_str();
    cmd->add_option("--default-max-tokens", a->http.default_chat_max_tokens,
                    "Longest chat answer when a request gives no max_tokens")
        ->capture_default_str();
    cmd->add_option("--timeout", a->http.request_timeout_s, "Deadline of one request, seconds")
        ->capture_default_str();
    cmd->callback([&exit_code, a] {
        // SIGINT/SIGTERM are taken by sigwait below; every thread started from here on
        // inherits the mask.
        sigset_t signals;
        sigemptyset(&signals);
        sigaddset(&signals, SIGINT);
        sigaddset(&signals, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &signals, nullptr);

        if (!a->api_key_file.empty()) {
            auto key = read_api_key_file(a->api_key_file);
            if (!key) {
                exit_code = fail(key.error().message);
                return;
            }
            a->http.api_key = *key;
        } else if (a->http.api_key.empty()) {
            if (const char* k = std::getenv("LATENT_API_KEY"); k && *k) a->http.api_key = k;
        } else {
            std::fprintf(stderr,
                         "latent serve: warning: --api-key is visible to every local user in "
                         "the process list; prefer $LATENT_API_KEY or --api-key-file\n");
        }
        std::fprintf(stderr, "latent serve: loading %s\n", a->engine.model.c_str());
        auto e = load_engine(a->engine, /*threaded=*/true);
        if (!e) {
            exit_code = fail(e.error().message);
            return;
        }
        if (a->http.model_name.empty())
            a->http.model_name = std::filesystem::path(a->engine.model).stem().string();
        a->http.max_body_bytes = a->max_body_kb << 10;
        HttpServer server(*e->scheduler, *e->tokenizer, a->http);
        if (Status st = server.start(); !st) {
            exit_code = fail(st.error().message);
            return;
        }
        std::fprintf(stderr, "latent serve: %s (backend %s) on http://%s:%u\n",
                     a->http.model_name.c_str(), e->backend->name().c_str(), a->http.host.c_str(),
                     static_cast<unsigned>(server.port()));
        int sig = 0;
        sigwait(&signals, &sig);
        std::fprintf(stderr, "latent serve: stopping\n");
        server.stop();
    });
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
    return v[i];
}

void register_bench_batch(CLI::App& app, int& exit_code) {
    CLI::App* bench = bench_command(app);
    auto* cmd = bench->add_subcommand(
        "batch",
        "Concurrent requests through the scheduler: tok/s and first-token latency, cold and "
        "after an edit at the end of every prompt (prefix cache).");
    struct Args {
        EngineFlags engine;
        std::string clients = "1,4,16";
        int prompt = 128, gen = 32, edit = 16;
    };
    auto a = std::make_shared<Args>();
    a->engine.disk = "none";
    add_engine_flags(cmd, a->engine);
    cmd->add_option("--clients", a->clients, "Comma-separated client counts")
        ->capture_default_str();
    cmd->add_option("--prompt", a->prompt, "Prompt tokens per request")->capture_default_str();
    cmd->add_option("--gen", a->gen, "Generated tokens per request")->capture_default_str();
    cmd->add_option("--edit", a->edit, "Tokens replaced at the end of each prompt for the warm run")
        ->capture_default_str();
    cmd->callback([&exit_code, a] {
        std::vector<int> counts;
        {
            std::stringstream ss(a->clients);
            for (std::string item; std::getline(ss, item, ',');) {
                try {
                    counts.push_back(std::stoi(item));
                } catch (...) {
                    exit_code = fail("--clients: not a number list: " + a->clients);
                    return;
                }
                if (counts.back() < 1 || counts.back() > 1024) {
                    exit_code = fail("--clients: each count must be in 1..1024");
                    return;
                }
            }
        }
        if (a->prompt < 1 || a->gen < 1 || a->edit < 0 || a->edit >= a->prompt) {
            exit_code = fail("need --prompt >= 1, --gen >= 1, 0 <= --edit < --prompt");
            return;
        }
        auto e = load_engine(a->engine, /*threaded=*/true);
        if (!e) {
            exit_code = fail(e.error().message);
            return;
        }
        const int32_t n_vocab = static_cast<int32_t>(e->model->hparams().n_vocab);
        uint32_t seed = 12345;
        auto random_tokens = [&](int n) {
            std::vector<int32_t> v;
            for (int i = 0; i < n; ++i)
                v.push_back(static_cast<int32_t>((seed = seed * 1664525u + 1013904223u) >> 8) %
                            n_vocab);
            return v;
        };
        struct Row {
            int clients;
            double tok_s, ttft_p50, ttft_p95, warm_ttft_p50, warm_ttft_p95;
            int64_t warm_cached, warm_prompt;
        };
        std::vector<Row> rows;
        using Clock = std::chrono::steady_clock;
        // Runs every prompt at once; returns wall seconds and the results.
        auto run_all = [&](const std::vector<std::vector<int32_t>>& prompts,
                           std::vector<RequestResult>& results) -> Expected<double> {
            std::mutex mu;
            results.assign(prompts.size(), {});
            const auto t0 = Clock::now();
            for (size_t i = 0; i < prompts.size(); ++i) {
                Request r;
                r.prompt = prompts[i];
                r.sampling.temperature = 0;
                r.max_tokens = a->gen;  // no end tokens: every request makes --gen tokens
                r.on_done = [&results, &mu, i](const RequestResult& res) {
                    std::lock_guard lock(mu);
                    results[i] = res;
                };
                auto h = e->scheduler->submit(std::move(r));
                if (!h) return h.error();
            }
            e->scheduler->wait_idle();
            for (const auto& res : results)
                if (res.finish_reason == "error") return make_error(res.error);
            return std::chrono::duration<double>(Clock::now() - t0).count();
        };
        for (int c : counts) {
            std::fprintf(stderr, "bench batch: %d client(s), prompt %d, gen %d...\n", c, a->prompt,
                         a->gen);
            std::vector<std::vector<int32_t>> prompts;
            for (int i = 0; i < c; ++i) prompts.push_back(random_tokens(a->prompt));
            std::vector<RequestResult> cold, warm;
            auto secs = run_all(prompts, cold);
            if (!secs) {
                exit_code = fail(secs.error().message);
                return;
            }
            for (auto& p : prompts) {  // an edit at the end: the cursor moved on
                p.resize(static_cast<size_t>(a->prompt - a->edit));
                for (int32_t id : random_tokens(a->edit)) p.push_back(id);
            }
            if (auto w = run_all(prompts, warm); !w) {
                exit_code = fail(w.error().message);
                return;
            }
            std::vector<double> t_cold, t_warm;
            Row row{c, 0, 0, 0, 0, 0, 0, 0};
            for (const auto& r : cold) t_cold.push_back(r.first_token_ms);
            for (const auto& r : warm) {
                t_warm.push_back(r.first_token_ms);
                row.warm_cached += r.cached_tokens;
                row.warm_prompt += r.prompt_tokens;
            }
            row.tok_s = double(c) * a->gen / *secs;
            row.ttft_p50 = percentile(t_cold, 0.5);
            row.ttft_p95 = percentile(t_cold, 0.95);
            row.warm_ttft_p50 = percentile(t_warm, 0.5);
            row.warm_ttft_p95 = percentile(t_warm, 0.95);
            std::fprintf(stderr,
                         "bench batch: %d client(s): %.1f tok/s, first token p50 %.0f ms (after "
                         "an edit: %.0f ms, %lld/%lld prompt tokens cached)\n",
                         c, row.tok_s, row.ttft_p50, row.warm_ttft_p50,
                         static_cast<long long>(row.warm_cached),
                         static_cast<long long>(row.warm_prompt));
            rows.push_back(row);
        }
        nlohmann::json out = {{"bench", "batch"},
                              {"model", a->engine.model},
                              {"backend", e->backend->name()},
                              {"threads", a->engine.threads},
                              {"prompt", a->prompt},
                              {"gen", a->gen},
                              {"edit", a->edit},
                              {"prefix_cache", !a->engine.no_prefix_cache},
                              {"draft", a->engine.sched.draft_tokens},
                              {"mtp", a->engine.sched.mtp},
                              {"batch", a->engine.sched.batch},
                              {"drafted_tokens", e->scheduler->stats().drafted_tokens},
                              {"accepted_tokens", e->scheduler->stats().accepted_tokens},
                              {"rows", nlohmann::json::array()}};
        for (const auto& r : rows)
            out["rows"].push_back({{"clients", r.clients},
                                   {"tok_s", r.tok_s},
                                   {"ttft_p50_ms", r.ttft_p50},
                                   {"ttft_p95_ms", r.ttft_p95},
                                   {"edit_ttft_p50_ms", r.warm_ttft_p50},
                                   {"edit_ttft_p95_ms", r.warm_ttft_p95},
                                   {"edit_cached_tokens", r.warm_cached},
                                   {"edit_prompt_tokens", r.warm_prompt}});
        std::printf("%s\n", out.dump().c_str());
    });
}

}  // namespace

void register_serve_commands(CLI::App& app, int& exit_code) {
    register_serve(app, exit_code);
    register_bench_batch(app, exit_code);
}

}  // namespace latent::agent
