// `latent demo`, `latent complete` and `latent bench lsp`: clients of `latent lsp`. Each
// starts the server as a child process (this same binary) and talks to it exactly as an
// editor does, so what they print is what an editor gets.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "agent/commands.h"
#include "agent/data_files.h"
#include "agent/documents.h"
#include "agent/lsp_child.h"
#include "engine/make_model.h"
#include "engine/tokenizer_json.h"
#include "index/indexer.h"

namespace latent::agent {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using lsp::Position;
using std::chrono::milliseconds;

std::string self_exe() {
    std::error_code ec;
    const auto p = fs::read_symlink("/proc/self/exe", ec);
    return ec ? std::string("latent") : p.string();
}

std::string cache_base() {
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/latent";
    if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/latent";
    return "/tmp/latent-cache";
}

std::optional<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

double pct(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
}

// The git work tree holding `path`, else its folder.
std::string workspace_of(const std::string& file) {
    fs::path dir = fs::absolute(file).parent_path();
    for (fs::path d = dir; !d.empty(); d = d.parent_path()) {
        std::error_code ec;
        if (fs::exists(d / ".git", ec)) return d.string();
        if (d == d.parent_path()) break;
    }
    return dir.string();
}

std::unique_ptr<LspChild> start_server(const std::string& log_path, bool test_backend = false) {
    std::vector<std::string> argv = {self_exe(), "lsp"};
    if (test_backend) argv.push_back("--enable-test-backend");
    auto c = std::make_unique<LspChild>(argv, log_path);
    if (!c->started()) return nullptr;
    return c;
}

// Waits for the end of the server's index progress (or the timeout).
void wait_for_index(LspChild& c, std::chrono::seconds timeout) {
    c.wait_for(
        [](const json& m) {
            return m.value("method", "") == "$/progress" && m["params"]["value"].is_object() &&
                   m["params"]["value"].value("kind", "") == "end";
        },
        timeout);
}

json change_at(const std::string& uri, int version, uint32_t line, uint32_t ch,
               const std::string& text) {
    return {{"textDocument", {{"uri", uri}, {"version", version}}},
            {"contentChanges",
             {{{"range",
                {{"start", {{"line", line}, {"character", ch}}},
                 {"end", {{"line", line}, {"character", ch}}}}},
               {"text", text}}}}};
}

json completion_at(const std::string& uri, uint32_t line, uint32_t ch) {
    return {{"textDocument", {{"uri", uri}}},
            {"position", {{"line", line}, {"character", ch}}},
            {"context", {{"triggerKind", 2}}}};
}

// s on one line, cut to at most `max` bytes at a character boundary (never inside a
// UTF-8 sequence: a terminal would print garbage).
std::string one_line(std::string s, size_t max) {
    for (char& c : s)
        if (c == '\n') c = '|';
    if (s.size() > max) {
        size_t cut = max;
        while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
        s = s.substr(0, cut) + "...";
    }
    return s;
}

void register_complete(CLI::App& app, int& exit_code) {
    auto* cmd =
        app.add_subcommand("complete",
                           "Print one inline completion at FILE:LINE:COL (1-based; COL in bytes), "
                           "through `latent lsp` as an editor would ask for it.");
    struct Args {
        std::string where, model, remote, remote_model, engine = "cpu", log;
        bool no_index = false;
        int max_tokens = 64;
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("FILE:LINE:COL", a->where, "Position")->required();
    cmd->add_option("--model,-m", a->model, "GGUF model (local backend)");
    cmd->add_option("--remote", a->remote, "OpenAI-compatible server URL (key: $LATENT_API_KEY)");
    cmd->add_option("--remote-model", a->remote_model, "Model name on the remote server");
    cmd->add_option("--engine", a->engine, "cpu | reference | cuda")->capture_default_str();
    cmd->add_option("-n,--max-tokens", a->max_tokens, "Tokens to generate")->capture_default_str();
    cmd->add_flag("--no-index", a->no_index, "Do not index the workspace for context");
    cmd->add_option("--log", a->log, "Server log file (default: discarded)");
    cmd->callback([&exit_code, a] {
        const size_t c2 = a->where.rfind(':');
        const size_t c1 = c2 == std::string::npos ? c2 : a->where.rfind(':', c2 - 1);
        if (c1 == std::string::npos) {
            exit_code = fail("expected FILE:LINE:COL, got " + a->where);
            return;
        }
        const std::string file = a->where.substr(0, c1);
        const int line = std::atoi(a->where.substr(c1 + 1, c2 - c1 - 1).c_str());
        const int col = std::atoi(a->where.substr(c2 + 1).c_str());
        if (line < 1 || col < 1) {
            exit_code = fail("LINE and COL start at 1");
            return;
        }
        if (a->model.empty() == a->remote.empty()) {
            exit_code = fail("give --model GGUF or --remote URL");
            return;
        }
        const auto text = read_file(file);
        if (!text) {
            exit_code = fail(file + ": cannot read");
            return;
        }
        const std::string path = fs::absolute(file).lexically_normal().string();
        const std::string root = workspace_of(path);
        auto c = start_server(a->log.empty() ? "/dev/null" : a->log);
        if (!c) {
            exit_code = fail("cannot start latent lsp");
            return;
        }
        json opts = {{"backend", a->remote.empty() ? "local" : "remote"},
                     {"engine", a->engine},
                     {"model", a->model},
                     {"remote", {{"url", a->remote}, {"model", a->remote_model}}},
                     {"completion", {{"maxTokens", a->max_tokens}}},
                     {"index", {{"enabled", !a->no_index}}}};
        if (const char* k = std::getenv("LATENT_API_KEY"); k && *k) opts["remote"]["apiKey"] = k;
        c->initialize(opts, path_to_uri(root),
                      {{"general", {{"positionEncodings", {"utf-8"}}}},
                       {"window", {{"workDoneProgress", true}}}});
        if (!a->no_index) wait_for_index(*c, std::chrono::seconds(300));
        const std::string uri = path_to_uri(path);
        c->notify("textDocument/didOpen",
                  {{"textDocument",
                    {{"uri", uri}, {"languageId", ""}, {"version", 1}, {"text", *text}}}});
        json params =
            completion_at(uri, static_cast<uint32_t>(line - 1), static_cast<uint32_t>(col - 1));
        params["context"]["triggerKind"] = 1;  // invoked: waits for the model to load
        auto r = c->wait_response(c->request("textDocument/inlineCompletion", params),
                                  std::chrono::seconds(600));
        if (!r || r->contains("error")) {
            exit_code = fail(r ? (*r)["error"].value("message", "error") : "no answer");
            return;
        }
        const json& res = (*r)["result"];
        if (!res["items"].empty())
            std::printf("%s\n", res["items"][0]["insertText"].get<std::string>().c_str());
        const json& st = res["latent"];
        std::fprintf(stderr, "complete: %.1f ms, %d cached + %d computed prompt tokens%s\n",
                     st.value("ms", 0.0), st.value("cachedTokens", 0),
                     st.value("computedTokens", 0), res["items"].empty() ? " (no suggestion)" : "");
        c->request("shutdown", nullptr);
        c->notify("exit", nullptr);
        c->wait_exit(std::chrono::seconds(5));
    });
}

// A function typed into a scratch document, one chunk per "keystroke burst".
const char* kTyped[] = {"std::string ",
                        "join_",
                        "lines(",
                        "const std::vector<std::string>& ",
                        "lines) {\n",
                        "    std::string ",
                        "out;\n",
                        "    for (const auto& ",
                        "line : lines) {\n",
                        "        out += ",
                        "line;\n",
                        "        out += '\\n';\n",
                        "    }\n",
                        "    return ",
                        "out;\n",
                        "}\n"};

void register_demo(CLI::App& app, int& exit_code) {
    auto* cmd = app.add_subcommand(
        "demo",
        "Make (or reuse) a small model, index this repository, and drive `latent lsp` "
        "through a scripted editing session, printing each completion's latency and "
        "cached/computed prompt tokens.");
    struct Args {
        std::string dir, model, preset = "tiny", engine = "cpu", log;
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("--dir", a->dir, "Workspace to index (default: Latent's own sources)");
    cmd->add_option("--model,-m", a->model, "Use this GGUF instead of making one");
    cmd->add_option("--preset", a->preset, "make-model preset for the demo model")
        ->capture_default_str();
    cmd->add_option("--engine", a->engine, "cpu | reference | cuda")->capture_default_str();
    cmd->add_option("--log", a->log, "Server log file (default: under the cache folder)");
    cmd->callback([&exit_code, a] {
        const std::string cache = cache_base() + "/demo";
        std::error_code ec;
        fs::create_directories(cache, ec);
        std::string model = a->model;
        if (model.empty()) {
            model = cache + "/" + a->preset + "-q8_0.gguf";
            if (!fs::exists(model)) {
                auto tj = find_data_file("deepseek-v3/tokenizer.json");
                if (!tj) {
                    exit_code = fail("the DeepSeek-V3 tokenizer was not found (run scripts/setup)");
                    return;
                }
                const std::string dir = tj->substr(0, tj->rfind('/') + 1);
                engine::MakeModelOptions o;
                o.preset = a->preset;
                o.quant = engine::GgmlType::kQ8_0;
                o.out = model + ".tmp";
                auto shape = engine::model_shape(o);
                if (!shape) {
                    exit_code = fail(shape.error().message);
                    return;
                }
                auto vocab = engine::load_hf_tokenizer_json(
                    *tj,
                    fs::exists(dir + "tokenizer_config.json") ? dir + "tokenizer_config.json" : "",
                    static_cast<int32_t>(shape->n_vocab));
                if (!vocab) {
                    exit_code = fail(vocab.error().message);
                    return;
                }
                std::fprintf(stderr, "demo: making a %s model (random weights) at %s\n",
                             a->preset.c_str(), model.c_str());
                auto made = engine::make_model(o, *vocab);
                if (!made) {
                    exit_code = fail(made.error().message);
                    return;
                }
                fs::rename(model + ".tmp", model, ec);
            } else {
                std::fprintf(stderr, "demo: reusing %s\n", model.c_str());
            }
        }
        std::string root = a->dir;
        if (root.empty()) {
            root = LATENT_SOURCE_DIR;
            if (!fs::exists(root + "/agent")) root = fs::current_path().string();
        }
        root = fs::canonical(root, ec).string();
        const std::string log = a->log.empty() ? cache + "/lsp.log" : a->log;
        std::printf("Latent demo: %s backend, model %s\nworkspace %s (server log: %s)\n\n",
                    a->engine.c_str(), model.c_str(), root.c_str(), log.c_str());
        auto c = start_server(log);
        if (!c) {
            exit_code = fail("cannot start latent lsp");
            return;
        }
        const auto t_index = Clock::now();
        const json init = c->initialize(
            {{"backend", "local"},
             {"engine", a->engine},
             {"model", model},
             {"completion", {{"maxTokens", 24}}},
             {"index", {{"enabled", true}}}},
            path_to_uri(root),
            {{"window", {{"workDoneProgress", true}}},
             {"workspace", {{"didChangeWatchedFiles", {{"dynamicRegistration", true}}}}}});
        if (!init.contains("result")) {
            exit_code = fail("initialize failed");
            return;
        }
        std::printf("indexing %s ...\n", root.c_str());
        std::fflush(stdout);
        wait_for_index(*c, std::chrono::seconds(600));
        auto st = c->wait_response(c->request("latent/status", json::object()));
        if (st && (*st)["result"]["index"].size() > 0) {
            const json& ix = (*st)["result"]["index"][0];
            std::printf("index: %s, %lld files, %lld symbols (%.1f s)\n\n",
                        ix.value("state", "?").c_str(),
                        static_cast<long long>(ix.value("files", 0)),
                        static_cast<long long>(ix.value("symbols", 0)),
                        std::chrono::duration<double>(Clock::now() - t_index).count());
        }
        // A scratch document beside real sources (never written to disk).
        const std::string path = root + "/agent/latent_demo_scratch.cpp";
        const std::string uri = path_to_uri(path);
        std::string text =
            "// Scratch file of `latent demo`.\n#include <string>\n#include <vector>\n\n";
        c->notify("textDocument/didOpen",
                  {{"textDocument",
                    {{"uri", uri}, {"languageId", "cpp"}, {"version", 1}, {"text", text}}}});
        c->notify("latent/didFocus", {{"textDocument", {{"uri", uri}}},
                                      {"position", {{"line", 4}, {"character", 0}}}});
        int version = 1;
        std::vector<double> ms;
        long long cached = 0, computed = 0;
        int from_cache = 0, shown = 0, asked = 0;
        std::printf("%-4s %-34s %9s %7s %9s  %s\n", "#", "typed", "latency", "cached", "computed",
                    "suggestion");
        for (const char* chunk : kTyped) {
            const Position end = to_position(text, text.size(), PositionEncoding::kUtf16);
            c->notify("textDocument/didChange",
                      change_at(uri, ++version, end.line, end.character, chunk));
            text += chunk;
            const Position cur = to_position(text, text.size(), PositionEncoding::kUtf16);
            json params = completion_at(uri, cur.line, cur.character);
            params["context"]["triggerKind"] = 1;
            auto r = c->wait_response(c->request("textDocument/inlineCompletion", params),
                                      std::chrono::seconds(300));
            ++asked;
            if (!r || !r->contains("result")) {
                std::printf("%-4d %-34s  (error: %s)\n", asked, one_line(chunk, 34).c_str(),
                            r ? (*r)["error"].value("message", "?").c_str() : "no answer");
                continue;
            }
            const json& res = (*r)["result"];
            const json& l = res["latent"];
            ms.push_back(l.value("ms", 0.0));
            cached += l.value("cachedTokens", 0);
            computed += l.value("computedTokens", 0);
            if (l.value("fromCache", false)) ++from_cache;
            std::string sug =
                res["items"].empty() ? "(none)" : res["items"][0]["insertText"].get<std::string>();
            if (!res["items"].empty()) ++shown;
            std::printf("%-4d %-34s %7.1fms %7d %9d  %s\n", asked, one_line(chunk, 34).c_str(),
                        l.value("ms", 0.0), l.value("cachedTokens", 0),
                        l.value("computedTokens", 0), one_line(sug, 60).c_str());
            std::fflush(stdout);
        }
        auto fin = c->wait_response(c->request("latent/status", json::object()));
        std::printf(
            "\nsummary: %d completions (%d with a suggestion, %d from the suggestion cache); "
            "latency p50 %.1f ms, p90 %.1f ms, max %.1f ms; prompt tokens %lld cached / %lld "
            "computed (%.0f%% from the cache)\n",
            asked, shown, from_cache, pct(ms, 0.5), pct(ms, 0.9), pct(ms, 1.0), cached, computed,
            cached + computed ? 100.0 * cached / (cached + computed) : 0.0);
        if (fin) std::printf("backend: %s\n", (*fin)["result"].value("backend", "?").c_str());
        std::printf(
            "(the model has random weights: the suggestions are noise; the figures are real)\n");
        c->request("shutdown", nullptr);
        c->notify("exit", nullptr);
        c->wait_exit(std::chrono::seconds(5));
    });
}

void register_bench_lsp(CLI::App& app, int& exit_code) {
    CLI::App* bench = bench_command(app);
    auto* cmd = bench->add_subcommand(
        "lsp",
        "Server overhead per inline completion with an instant scripted backend: "
        "didChange + inlineCompletion round trips through `latent lsp`.");
    struct Args {
        int n = 500;
        std::string file;
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("-n,--requests", a->n, "Completions timed")
        ->capture_default_str()
        ->check(CLI::Range(10, 100000));
    cmd->add_option("--file", a->file, "Document to type into (default: agent/server.cpp)");
    cmd->callback([&exit_code, a] {
        std::string file =
            a->file.empty() ? std::string(LATENT_SOURCE_DIR) + "/agent/server.cpp" : a->file;
        auto text = read_file(file);
        if (!text) {
            text = std::string();
            for (int i = 0; i < 800; ++i)
                *text += "int f" + std::to_string(i) + "(int x) { return x + " + std::to_string(i) +
                         "; }\n";
        }
        auto c = start_server("/dev/null", /*test_backend=*/true);
        if (!c) {
            exit_code = fail("cannot start latent lsp");
            return;
        }
        c->initialize({{"backend", "scripted"},
                       {"script", {"return value;\n}", "x + 1", "call(a, b);"}},
                       {"index", {{"enabled", false}}}});
        // Wait until the backend is up.
        for (int i = 0; i < 100; ++i) {
            auto st = c->wait_response(c->request("latent/status", json::object()));
            if (st && (*st)["result"].value("backend", "") == "scripted") break;
            std::this_thread::sleep_for(milliseconds(10));
        }
        const std::string uri = "file:///bench/" + fs::path(file).filename().string();
        c->notify("textDocument/didOpen",
                  {{"textDocument",
                    {{"uri", uri}, {"languageId", "cpp"}, {"version", 1}, {"text", *text}}}});
        // Type at the middle of the file; every keystroke is a didChange then a request.
        Position at = to_position(*text, text->size() / 2, PositionEncoding::kUtf16);
        at.character = 0;
        std::vector<double> ms;
        int version = 1;
        const char* keys = "abcdefghijklmnopqrstuvwxyz";
        std::fprintf(stderr, "bench lsp: %d completions into %s (%zu bytes)\n", a->n, file.c_str(),
                     text->size());
        for (int i = 0; i < a->n; ++i) {
            if (i % 40 == 0 && i > 0) {  // a new line now and then
                c->notify("textDocument/didChange",
                          change_at(uri, ++version, at.line, at.character, "\n"));
                ++at.line;
                at.character = 0;
            }
            const auto t0 = Clock::now();
            c->notify("textDocument/didChange", change_at(uri, ++version, at.line, at.character,
                                                          std::string(1, keys[i % 26])));
            ++at.character;
            auto r = c->wait_response(c->request("textDocument/inlineCompletion",
                                                 completion_at(uri, at.line, at.character)),
                                      std::chrono::seconds(10));
            ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
            if (!r || !r->contains("result")) {
                exit_code = fail("bench lsp: a completion failed");
                return;
            }
            c->seen.clear();
        }
        c->request("shutdown", nullptr);
        c->notify("exit", nullptr);
        c->wait_exit(std::chrono::seconds(5));
        const json j = {
            {"bench", "lsp"},         {"requests", a->n},        {"doc_bytes", text->size()},
            {"p50_ms", pct(ms, 0.5)}, {"p99_ms", pct(ms, 0.99)}, {"max_ms", pct(ms, 1.0)}};
        std::printf("%s\n", j.dump().c_str());
    });
}

}  // namespace

void register_replay_command(CLI::App& app, int& exit_code);

void register_client_commands(CLI::App& app, int& exit_code) {
    register_complete(app, exit_code);
    register_demo(app, exit_code);
    register_bench_lsp(app, exit_code);
    register_replay_command(app, exit_code);
}

}  // namespace latent::agent

namespace latent::agent {
namespace {

void register_bench_replay(CLI::App& app, int& exit_code) {
    CLI::App* bench = app.get_subcommand("bench");
    auto* cmd = bench->add_subcommand(
        "replay",
        "Replay an editing trace (scripts/make-trace) through `latent lsp` as the "
        "editor sent it. Inline completions are not streamed: ttft is the answer's time less "
        "what the server spent after its first token (latent.firstTokenMs). "
        "engine_prefilled_share: the prompt rows the engine ran (warm-ups too) over every "
        "prompt asked for, answered or superseded (local backend).");
    struct Args {
        std::string trace, model, engine = "cpu", remote, log = "/dev/null", settings;
        bool no_prefix_cache = false, no_index = false, disk_cache = false;
        double speed = 1.0;
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("--trace", a->trace, "Trace file (JSON lines)")->required();
    cmd->add_option("--model,-m", a->model, "GGUF model");
    cmd->add_option("--remote", a->remote, "OpenAI-compatible server instead of --model");
    cmd->add_option("--engine", a->engine, "cpu | reference | cuda")->capture_default_str();
    cmd->add_flag("--no-prefix-cache", a->no_prefix_cache, "Recompute every prompt");
    cmd->add_flag("--no-index", a->no_index, "No workspace index (no retrieved context)");
    cmd->add_flag("--disk-cache", a->disk_cache,
                  "Keep the server's disk tier on (off by default: pages from an earlier run "
                  "would make the figures depend on it)");
    cmd->add_option("--speed", a->speed, "Replay speed factor (2 = twice as fast)")
        ->capture_default_str()
        ->check(CLI::Range(0.01, 1000.0));
    cmd->add_option("--log", a->log, "Server log file");
    cmd->add_option("--settings", a->settings,
                    "More server settings as a JSON object, merged into initializationOptions "
                    "(e.g. '{\"completion\":{\"suffixTokens\":128}}')");
    cmd->callback([&exit_code, a] {
        json extra = json::object();
        if (!a->settings.empty()) {
            extra = json::parse(a->settings, nullptr, false);
            if (!extra.is_object()) {
                exit_code = fail("--settings: not a JSON object");
                return;
            }
        }
        std::ifstream in(a->trace);
        if (!in) {
            exit_code = fail(a->trace + ": cannot open");
            return;
        }
        if (a->model.empty() == a->remote.empty()) {
            exit_code = fail("give --model GGUF or --remote URL");
            return;
        }
        std::vector<json> events;
        std::string line, root;
        while (std::getline(in, line)) {
            if (line.empty()) continue;
            json j = json::parse(line, nullptr, false);
            if (j.is_discarded()) {
                exit_code = fail(a->trace + ": a line is not JSON");
                return;
            }
            if (j.contains("root"))
                root = j["root"].get<std::string>();
            else
                events.push_back(std::move(j));
        }
        auto c = start_server(a->log);
        if (!c) {
            exit_code = fail("cannot start latent lsp");
            return;
        }
        json opts = {{"backend", a->remote.empty() ? "local" : "remote"},
                     {"engine", a->engine},
                     {"model", a->model},
                     {"remote", {{"url", a->remote}}},
                     {"prefixCache", !a->no_prefix_cache},
                     {"diskCache", {{"mb", a->disk_cache ? 4096 : 0}}},
                     {"index", {{"enabled", !a->no_index}}}};
        opts.merge_patch(extra);
        c->initialize(opts, root.empty() ? "" : path_to_uri(root),
                      {{"window", {{"workDoneProgress", true}}}});
        if (!a->no_index && !root.empty()) wait_for_index(*c, std::chrono::seconds(600));
        // The model loads before the clock starts: wait until the status names it.
        for (int i = 0; i < 6000; ++i) {
            auto st = c->wait_response(c->request("latent/status", json::object()));
            if (!st || (*st)["result"].value("backend", "loading") != "loading") break;
            std::this_thread::sleep_for(milliseconds(50));
        }
        std::map<int, Clock::time_point> sent;
        std::vector<double> total, first;
        long long cached = 0, computed = 0, superseded_prompt = 0;
        int superseded = 0, failed = 0, requests = 0;
        auto collect = [&](const json& m) {
            if (m.contains("method") || !m.contains("id") || !m["id"].is_number_integer()) return;
            auto it = sent.find(m["id"].get<int>());
            if (it == sent.end()) return;
            const double ms =
                std::chrono::duration<double, std::milli>(Clock::now() - it->second).count();
            sent.erase(it);
            if (m.contains("error")) {
                const json& e = m["error"];
                if (e.value("code", 0) != -32802) {
                    ++failed;
                    return;
                }
                ++superseded;
                if (e.contains("data") && e["data"].is_object())
                    superseded_prompt += e["data"].value("promptTokens", 0);
                return;
            }
            total.push_back(ms);
            const json& l = m["result"].value("latent", json::object());
            // Completions are not streamed: the first token came as long before the answer
            // as the server spent after it.
            const double after_first =
                l.value("ms", 0.0) - l.value("firstTokenMs", l.value("ms", 0.0));
            first.push_back(std::max(0.0, ms - after_first));
            cached += l.value("cachedTokens", 0);
            computed += l.value("computedTokens", 0);
        };
        std::fprintf(stderr, "bench replay: %zu events from %s\n", events.size(), a->trace.c_str());
        const auto t0 = Clock::now();
        for (const auto& e : events) {
            const auto at = t0 + std::chrono::microseconds(
                                     static_cast<int64_t>(e.value("t_ms", 0.0) * 1000 / a->speed));
            while (Clock::now() < at) {
                auto left = std::chrono::duration_cast<milliseconds>(at - Clock::now());
                if (auto m = c->next(std::max(milliseconds(1), left))) collect(*m);
            }
            json msg = e["message"];
            if (msg.value("method", "") == "textDocument/inlineCompletion") {
                const int id = c->request(msg["method"], msg["params"]);
                sent[id] = Clock::now();
                ++requests;
            } else {
                c->send(msg);
            }
        }
        const auto deadline = Clock::now() + std::chrono::seconds(600);
        while (!sent.empty() && Clock::now() < deadline)
            if (auto m = c->next(std::chrono::seconds(1))) collect(*m);
        c->seen.clear();
        // What the engine ran in all (warm-ups and superseded requests too), where the
        // backend counts it (local only).
        json engine_prefilled;
        if (auto st = c->wait_response(c->request("latent/status", json::object())))
            engine_prefilled = (*st)["result"]
                                   .value("cache", json::object())
                                   .value("prefilled_prompt_tokens", json());
        c->request("shutdown", nullptr);
        c->notify("exit", nullptr);
        c->wait_exit(std::chrono::seconds(5));
        json j = {{"bench", "replay"},
                  {"requests", requests},
                  {"answered", total.size()},
                  {"superseded", superseded},
                  {"failed", failed + static_cast<int>(sent.size())},
                  {"ttft_p50_ms", pct(first, 0.5)},
                  {"ttft_p95_ms", pct(first, 0.95)},
                  {"total_p50_ms", pct(total, 0.5)},
                  {"total_p95_ms", pct(total, 0.95)},
                  {"prompt_tokens", cached + computed},
                  {"cached_tokens", cached},
                  {"computed_tokens", computed},
                  {"prefix_cache", !a->no_prefix_cache}};
        if (superseded_prompt > 0) {
            // Every prompt asked for, answered or superseded, against what the engine ran:
            // the cost at typing speeds where few requests live long enough to be answered.
            j["all_prompt_tokens"] = cached + computed + superseded_prompt;
            if (engine_prefilled.is_number())
                j["engine_prefilled_share"] =
                    engine_prefilled.get<double>() /
                    static_cast<double>(cached + computed + superseded_prompt);
        }
        if (engine_prefilled.is_number()) j["engine_prefilled_tokens"] = engine_prefilled;
        std::printf("%s\n", j.dump().c_str());
    });
}

}  // namespace

void register_replay_command(CLI::App& app, int& exit_code) {
    register_bench_replay(app, exit_code);
}

}  // namespace latent::agent
