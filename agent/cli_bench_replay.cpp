// `latent bench replay`: an editing trace (scripts/make-trace) replayed through a
// `latent lsp` child exactly as the editor sent it.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "agent/cli_client.h"
#include "agent/commands.h"
#include "agent/documents.h"

namespace latent::agent {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using namespace cli;

void register_bench_replay(CLI::App& app, int& exit_code) {
    CLI::App* bench = bench_command(app);
    auto* cmd = bench->add_subcommand(
        "replay",
        "Replay an editing trace (scripts/make-trace) through `latent lsp` as the "
        "editor sent it. Inline completions are not streamed: ttft is the answer's time less "
        "what the server spent after its first token (latent.firstTokenMs). "
        "engine_prefilled_share: the prompt rows the engine ran (warm-ups too) over every "
        "prompt asked for, answered or superseded (local backend). new_place_answer: at each "
        "place the trace opens or focuses, from the first completion asked there to the "
        "first answer.");
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
        // A new place (a document opened or focused): from the first completion asked there
        // to the first answer after it — what the user waits for at a place not yet warm.
        std::vector<double> new_place;
        bool at_new_place = false;
        std::optional<Clock::time_point> place_asked;
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
            if (at_new_place && place_asked) {
                new_place.push_back(
                    std::chrono::duration<double, std::milli>(Clock::now() - *place_asked).count());
                at_new_place = false;
                place_asked.reset();
            }
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
            const std::string method = msg.value("method", "");
            if (method == "textDocument/didOpen" || method == "latent/didFocus") {
                at_new_place = true;
                place_asked.reset();
            }
            if (method == "textDocument/inlineCompletion") {
                const int id = c->request(msg["method"], msg["params"]);
                sent[id] = Clock::now();
                if (at_new_place && !place_asked) place_asked = sent[id];
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
                  {"new_places", new_place.size()},
                  {"new_place_answer_p50_ms", pct(new_place, 0.5)},
                  {"new_place_answer_max_ms", pct(new_place, 1.0)},
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

void register_bench_replay_command(CLI::App& app, int& exit_code) {
    register_bench_replay(app, exit_code);
}

}  // namespace latent::agent
