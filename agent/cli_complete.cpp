// `latent complete FILE:LINE:COL`: one inline completion through `latent lsp`, as an
// editor would ask for it.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "agent/cli_client.h"
#include "agent/commands.h"
#include "agent/documents.h"

namespace latent::agent {
namespace {

namespace fs = std::filesystem;
using lsp::Position;
using nlohmann::json;
using namespace cli;

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

}  // namespace

void register_complete_command(CLI::App& app, int& exit_code) { register_complete(app, exit_code); }

}  // namespace latent::agent
