// `latent bench chat-cache`: how much of each chat turn's prompt the local engine serves
// from its prefix cache, through LocalGenerator::chat as the chat view and agent mode drive
// it: a system prompt, user turns, each answer appended verbatim before the next turn; with
// --tools agent mode's tool list (WorkspaceTools::definitions), forced calls and their
// results as turns. The same conversation runs twice (each with its own system text, so
// they share no cache): once as the agent sends it (one owner: each turn extends the last
// and reuses its tokens), once with every turn a new owner (each prompt tokenized afresh),
// to show what the reuse is for. Progress on stderr, one JSON line on stdout
// (shared/BENCHMARKS.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/commands.h"
#include "agent/local_generator.h"
#include "agent/workspace_tools.h"
#include "engine/backends.h"

namespace latent::agent {
namespace {

using Clock = std::chrono::steady_clock;

const char* kSystem =
    "You are Latent, a coding assistant inside the user's editor. Answer briefly and "
    "precisely; quote code in fenced blocks. The user's open file follows.\n\n"
    "// src/util/math.ts\n"
    "export function clamp(v: number, lo: number, hi: number): number {\n"
    "  return Math.min(hi, Math.max(lo, v));\n}\n\n"
    "export function lerp(a: number, b: number, t: number): number {\n"
    "  return a + (b - a) * t;\n}\n\n"
    "export function smoothstep(e0: number, e1: number, x: number): number {\n"
    "  const t = clamp((x - e0) / (e1 - e0), 0, 1);\n  return t * t * (3 - 2 * t);\n}\n";

const char* kQuestions[] = {
    "What does smoothstep do, and where would I use it?",
    "Can clamp be wrong when lo > hi? Suggest a fix.",
    "Write a unit test for lerp with three cases.",
    "Rename lerp to mix everywhere: what has to change?",
    "Summarise the file in two sentences.",
    "Is there a faster way to write smoothstep?",
    "Add doc comments to the three functions.",
    "What would an inverse of lerp look like?",
};

// What a tool would send back: a few dozen lines of a file, as read_file answers.
std::string tool_result(const std::string& name, int turn) {
    std::string s = "// " + name + " (turn " + std::to_string(turn) + ")\n";
    for (int i = 1; i <= 24; ++i)
        s += std::to_string(40 + i) + ": export const table" + std::to_string(i) + " = [" +
             std::to_string(i * 3) + ", " + std::to_string(i * 7) + "];\n";
    return s;
}

struct Turn {
    int32_t prompt = 0, cached = 0, computed = 0, generated = 0, calls = 0;
    std::string finish;
    double ms = 0;
};

struct Args {
    std::string model, backend = "cpu";
    int threads = 0, turns = 5, gen = 64;
    bool tools = false;
};

// One conversation of `turns` model turns. `tag` starts the system text (runs share no
// cache); `one_owner` false: a fresh owner per turn (every prompt tokenized afresh).
engine::Expected<std::vector<Turn>> converse(LocalGenerator& g, const Args& a,
                                             const std::string& tag, bool one_owner) {
    std::vector<ChatMessage> messages = {{"system", tag + kSystem}, {"user", kQuestions[0]}};
    const nlohmann::json& tools = WorkspaceTools::definitions();
    std::vector<Turn> out;
    size_t next_question = 1;
    for (int turn = 1; turn <= a.turns; ++turn) {
        GenerateOptions o;
        o.max_tokens = a.gen;
        o.temperature = 0;
        o.owner = one_owner ? tag : tag + "/" + std::to_string(turn);
        if (a.tools) {
            o.tools = tools;
            // Random weights seldom choose a call: odd turns must make one, so that calls
            // and their results are turns of the conversation as in agent mode.
            o.tool_choice = turn % 2 == 1 ? "required" : "auto";
        }
        const auto t0 = Clock::now();
        auto r = g.chat(messages, o);
        if (!r) return r.error();
        Turn t;
        t.prompt = r->prompt_tokens;
        t.cached = r->cached_tokens;
        t.computed = r->computed_tokens;
        t.generated = r->generated_tokens;
        t.calls = static_cast<int32_t>(r->tool_calls.size());
        t.finish = r->finish_reason;
        t.ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        std::fprintf(stderr,
                     "bench chat-cache: %s turn %d: prompt %d = cached %d + computed %d "
                     "(%.1f%% cached), generated %d, %d calls, %s, %.0f ms\n",
                     one_owner ? "reused " : "retokenized", turn, t.prompt, t.cached, t.computed,
                     t.prompt ? 100.0 * t.cached / t.prompt : 0.0, t.generated, t.calls,
                     t.finish.c_str(), t.ms);
        out.push_back(t);
        // The answer verbatim, its calls as the agent writes them back, then the results
        // (the model's turn follows them) or the next question.
        ChatMessage answer{"assistant", r->text};
        for (const auto& c : r->tool_calls)
            answer.tool_calls.push_back({c.id, c.name, c.arguments});
        messages.push_back(std::move(answer));
        if (!r->tool_calls.empty()) {
            for (const auto& c : r->tool_calls) {
                ChatMessage res{"tool", tool_result(c.name, turn)};
                res.tool_call_id = c.id;
                messages.push_back(std::move(res));
            }
        } else {
            messages.push_back({"user", kQuestions[next_question++ % std::size(kQuestions)]});
        }
    }
    return out;
}

nlohmann::json summary(const std::vector<Turn>& turns) {
    nlohmann::json rows = nlohmann::json::array();
    int64_t prompt = 0, cached = 0, seen = 0;
    double lowest = 1;
    for (size_t i = 0; i < turns.size(); ++i) {
        const Turn& t = turns[i];
        const double share = t.prompt ? double(t.cached) / t.prompt : 0;
        // What the previous turn ran through the model (its prompt and answer): all the
        // cache can hold of this prompt; the rest (a question, tool results) is new.
        const int32_t before =
            i ? std::min(t.prompt, turns[i - 1].prompt + turns[i - 1].generated) : 0;
        rows.push_back({{"turn", i + 1},
                        {"prompt_tokens", t.prompt},
                        {"cached_tokens", t.cached},
                        {"computed_tokens", t.computed},
                        {"previous_turn_tokens", before},
                        {"generated_tokens", t.generated},
                        {"tool_calls", t.calls},
                        {"finish", t.finish},
                        {"cached_share", share},
                        {"ms", t.ms}});
        if (i == 0) continue;  // the first turn's prompt is new by design
        prompt += t.prompt;
        cached += t.cached;
        seen += before;
        lowest = std::min(lowest, share);
    }
    return {{"cached_share_2_n", prompt ? double(cached) / prompt : 0.0},
            {"lowest_turn_share_2_n", turns.size() > 1 ? lowest : 0.0},
            // Of the tokens the previous turns had already run, the share found cached
            // (about 1: a turn computes only what is new in it).
            {"cached_of_previous_2_n", seen ? double(cached) / seen : 0.0},
            {"rows", rows}};
}

void register_bench_chat_cache(CLI::App& app, int& exit_code) {
    CLI::App* bench = bench_command(app);
    auto* cmd = bench->add_subcommand(
        "chat-cache",
        "Prefix-cache share of each chat turn's prompt with the local engine (turns 2..n), "
        "the conversation laid out as the chat view and agent mode send it.");
    auto a = std::make_shared<Args>();
    cmd->add_option("--model,-m", a->model, "GGUF model file")->required();
    cmd->add_option("--backend", a->backend, std::string("Backend: ") + engine::backend_names())
        ->capture_default_str();
    cmd->add_option("--threads,-t", a->threads, "CPU threads (0: all)")->capture_default_str();
    cmd->add_option("--turns", a->turns, "Model turns in the conversation")
        ->capture_default_str()
        ->check(CLI::Range(2, 64));
    cmd->add_option("--gen", a->gen, "Tokens per answer (at most)")
        ->capture_default_str()
        ->check(CLI::Range(1, 4096));
    cmd->add_flag("--tools", a->tools,
                  "Agent mode: the tool list, calls (forced on odd turns) and their results");
    cmd->callback([&exit_code, a] {
        LocalGeneratorOptions lo;
        lo.model_path = a->model;
        lo.engine = a->backend;
        lo.threads = a->threads;
        lo.disk_dir = "";  // RAM only: the figure is the conversation's own reuse
        auto g = LocalGenerator::create(lo);
        if (!g) {
            exit_code = fail(g.error().message);
            return;
        }
        const nlohmann::json st = (*g)->stats();
        std::fprintf(stderr, "bench chat-cache: %s, kernels %s\n", (*g)->describe().c_str(),
                     st.value("kernels", std::string("-")).c_str());
        auto reused = converse(**g, *a, "[A] ", true);
        if (!reused) {
            exit_code = fail(reused.error().message);
            return;
        }
        auto fresh = converse(**g, *a, "[B] ", false);
        if (!fresh) {
            exit_code = fail(fresh.error().message);
            return;
        }
        nlohmann::json out = {{"bench", "chat-cache"},
                              {"model", a->model},
                              {"backend", st.value("engine", std::string())},
                              {"kernels", st.value("kernels", std::string("-"))},
                              {"threads", st.value("threads", a->threads)},
                              {"turns", a->turns},
                              {"tools", a->tools},
                              {"gen", a->gen}};
        const nlohmann::json r = summary(*reused), f = summary(*fresh);
        out["cached_share_2_n"] = r["cached_share_2_n"];
        out["lowest_turn_share_2_n"] = r["lowest_turn_share_2_n"];
        out["cached_of_previous_2_n"] = r["cached_of_previous_2_n"];
        out["rows"] = r["rows"];
        out["retokenized"] = f;
        std::fprintf(stderr,
                     "bench chat-cache: turns 2..%d: %.1f%% of prompt tokens cached (lowest "
                     "turn %.1f%%; %.1f%% of what earlier turns ran); tokenized afresh each "
                     "turn: %.1f%% (%.1f%%)\n",
                     a->turns, 100 * r["cached_share_2_n"].get<double>(),
                     100 * r["lowest_turn_share_2_n"].get<double>(),
                     100 * r["cached_of_previous_2_n"].get<double>(),
                     100 * f["cached_share_2_n"].get<double>(),
                     100 * f["cached_of_previous_2_n"].get<double>());
        std::printf("%s\n", out.dump().c_str());
    });
}

}  // namespace

void register_bench_chat_cache_command(CLI::App& app, int& exit_code) {
    register_bench_chat_cache(app, exit_code);
}

}  // namespace latent::agent
