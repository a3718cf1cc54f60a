// `latent bench lsp`: the server's own overhead per inline completion, with the instant
// scripted backend in a `latent lsp` child.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "agent/cli_client.h"
#include "agent/commands.h"
#include "agent/documents.h"

namespace latent::agent {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using lsp::Position;
using std::chrono::milliseconds;
using namespace cli;

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
    cmd->add_option("--file", a->file, "Document to type into (default: agent/agent.cpp)");
    cmd->callback([&exit_code, a] {
        std::string file =
            a->file.empty() ? std::string(LATENT_SOURCE_DIR) + "/agent/agent.cpp" : a->file;
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

void register_bench_lsp_command(CLI::App& app, int& exit_code) {
    register_bench_lsp(app, exit_code);
}

}  // namespace latent::agent
