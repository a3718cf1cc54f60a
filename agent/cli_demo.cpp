// `latent demo`: makes a small model, indexes this repository and drives `latent lsp`
// (a child of this binary) through a scripted editing session, as an editor would.

#include <chrono>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "agent/cli_client.h"
#include "agent/commands.h"
#include "agent/data_files.h"
#include "agent/documents.h"
#include "engine/make_model.h"
#include "engine/tokenizer_json.h"

namespace latent::agent {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using lsp::Position;
using namespace cli;

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

}  // namespace

void register_demo_command(CLI::App& app, int& exit_code) { register_demo(app, exit_code); }

}  // namespace latent::agent
