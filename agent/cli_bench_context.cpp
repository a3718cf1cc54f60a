// `latent bench context --dir D`: how much of what a held-out piece of real code needs the
// completion prompt's context shows — Latent's, and beside it, at the same budget, the
// context other assistants send. The truth (context_bench.h) comes from ctags and a lexer,
// never from the index; Latent's prompt comes from the Agent itself, as `latent lsp`
// builds it: the document opened, the span deleted (the index sees the edit), an inline
// completion asked at the span's start with completion.contextTokens set to the budget, the
// prompt taken from a backend that records it and answers nothing. The others' blocks are
// laid out by the same layout_fim_prompt. Progress on stderr, one JSON line on stdout
// (shared/BENCHMARKS.md).
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/agent.h"
#include "agent/code_words.h"
#include "agent/commands.h"
#include "agent/context_bench.h"
#include "agent/data_files.h"
#include "agent/scratch_dir.h"
#include "agent/text_files.h"
#include "engine/tokenizer.h"
#include "engine/tokenizer_json.h"
#include "index/indexer.h"
#include "index/languages.h"

namespace latent::agent {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace context_bench;

struct Args {
    std::string dir, name, budgets = "256,512,1024,2048", tokenizer;
    size_t spans = 300;
    uint64_t seed = 1;
};

// The methods compared, in the order they are printed.
const std::vector<std::string> kMethods = {"latent", "none", "ring", "imports", "bm25"};

// Sums over spans, per (method, budget) and per group (a language or a span kind).
struct Sum {
    size_t spans = 0, needed = 0, found = 0, tokens = 0, needed_tokens = 0;
    void add(const Score& s) {
        ++spans;
        needed += s.needed;
        found += s.found;
        tokens += s.tokens;
        needed_tokens += s.needed_tokens;
    }
    double recall() const { return needed ? double(found) / needed : 0; }
    double share() const { return tokens ? double(needed_tokens) / tokens : 0.0; }
    nlohmann::json json() const {
        const auto r3 = [](double x) { return std::round(x * 1000) / 1000; };
        return {{"recall", r3(recall())},
                {"share", r3(share())},
                {"tokens", spans ? std::round(double(tokens) / spans) : 0.0},
                {"spans", spans},
                {"needed", needed},
                {"found", found}};
    }
};

std::vector<size_t> parse_budgets(const std::string& s) {
    std::vector<size_t> out;
    std::stringstream in(s);
    std::string part;
    while (std::getline(in, part, ','))
        if (!part.empty()) out.push_back(std::stoul(part));
    return out;
}

std::string language_of(const std::string& path) {
    const index::Language* l = index::language_for_path(path);
    return l ? std::string(l->name) : "";
}

void register_bench_context(CLI::App& app, int& exit_code) {
    CLI::App* bench = bench_command(app);
    auto* cmd = bench->add_subcommand(
        "context",
        "Recall of the definitions held-out code needs in the completion prompt's context "
        "(Latent's, built as latent lsp builds it), beside the context other assistants send "
        "at the same budget: none, a ring buffer of recently viewed chunks (llama.vscode), the "
        "imported files (Continue, Copilot), BM25 over chunks (Tabby).");
    auto a = std::make_shared<Args>();
    cmd->add_option("--dir", a->dir, "Folder of real code")->required();
    cmd->add_option("--spans", a->spans,
                    "Held-out spans (a third each: function bodies, "
                    "blocks of 3-6 lines, single lines)")
        ->capture_default_str()
        ->check(CLI::Range(1, 100000));
    cmd->add_option("--seed", a->seed, "Which spans are held out")->capture_default_str();
    cmd->add_option("--budgets", a->budgets,
                    "Context budgets in tokens (completion.contextTokens), comma-separated")
        ->capture_default_str();
    cmd->add_option("--name", a->name, "A name for the run, copied into the JSON");
    cmd->add_option("--tokenizer", a->tokenizer,
                    "tokenizer.json that counts the tokens (default: DeepSeek-V3's, from "
                    "scripts/setup)");
    cmd->callback([&exit_code, a] {
        std::vector<size_t> budgets;
        try {
            budgets = parse_budgets(a->budgets);
        } catch (const std::exception&) {
        }
        if (budgets.empty() || std::any_of(budgets.begin(), budgets.end(),
                                           [](size_t b) { return b == 0 || b > 32768; })) {
            exit_code = fail("--budgets: tokens from 1 to 32768, comma-separated");
            return;
        }
        std::error_code ec;
        if (!fs::is_directory(a->dir, ec)) {
            exit_code = fail(a->dir + ": not a directory");
            return;
        }
        // The tokenizer that counts the context (the one Latent's models use).
        std::string tok_path = a->tokenizer;
        if (tok_path.empty()) {
            auto found = find_data_file("deepseek-v3/tokenizer.json");
            if (!found) {
                exit_code = fail(
                    "the DeepSeek-V3 tokenizer was not found (run scripts/setup, or "
                    "pass --tokenizer PATH)");
                return;
            }
            tok_path = *found;
        }
        const std::string tok_dir = tok_path.substr(0, tok_path.rfind('/') + 1);
        const std::string config =
            fs::exists(tok_dir + "tokenizer_config.json") ? tok_dir + "tokenizer_config.json" : "";
        auto vocab = engine::load_hf_tokenizer_json(tok_path, config, 129280);
        if (!vocab) {
            exit_code = fail(vocab.error().message);
            return;
        }
        auto tok = engine::Tokenizer::create(*vocab);
        if (!tok) {
            exit_code = fail(tok.error().message);
            return;
        }
        const auto count = [&tok](std::string_view t) {
            return tok->encode(t, /*add_bos=*/false, /*parse_special=*/false).size();
        };

        // 1. The files (the index's own list) and ctags' definitions: the truth.
        Repo repo;
        repo.root = fs::canonical(a->dir, ec).string();
        for (const std::string& rel : index::list_workspace_files(repo.root, true)) {
            if (family_of(rel).empty()) continue;
            if (auto t = read_text_file(repo.root + "/" + rel, 1 << 20)) repo.texts[rel] = *t;
        }
        if (repo.texts.empty()) {
            exit_code = fail(repo.root + ": no source files of a known language");
            return;
        }
        const ScratchDir scratch("latent-bench-context");
        if (!scratch.ok()) {
            exit_code = fail("cannot create a temporary folder");
            return;
        }
        const char* tmp = scratch.path().c_str();
        {
            const std::string list = std::string(tmp) + "/files";
            std::string names;
            for (const auto& [rel, t] : repo.texts) names += repo.root + "/" + rel + "\n";
            FILE* f = std::fopen(list.c_str(), "w");
            if (f) {
                std::fwrite(names.data(), 1, names.size(), f);
                std::fclose(f);
            }
            const auto tags = index::run_program({"ctags", "-L", list, "--output-format=json",
                                                  "--fields=+nKeZ", "--fields=+{scopeKind}",
                                                  "--kinds-C=+p", "--kinds-C++=+p", "-f", "-"});
            if (!tags) {
                exit_code = fail("ctags (universal-ctags) is needed and failed");
                return;
            }
            repo.tags = parse_ctags(*tags, repo.root);
            repo.index_tags();
        }
        const Picked picked = pick_spans(repo, a->spans, a->seed);
        std::fprintf(stderr,
                     "bench context: %zu files, ctags: %zu definitions; %zu spans held out "
                     "(skipped without a definition from another file: %zu function, %zu "
                     "block, %zu line)\n",
                     repo.texts.size(), repo.tags.size(), picked.spans.size(),
                     picked.skipped.at("function"), picked.skipped.at("block"),
                     picked.skipped.at("line"));

        // 2. The Agent, as `latent lsp` runs it, over the folder, with a backend that records
        // the prompt and answers nothing (nothing is cached as a suggestion).
        auto backend = std::make_shared<ScriptedGenerator>(std::vector<std::string>{""});
        AgentOptions o;
        o.backend = backend;
        o.settings.index_db = std::string(tmp) + "/index.sqlite";
        o.settings.max_time_ms = 0;
        o.log = [](const std::string&) {};
        Agent agent(o);
        agent.workspaces().set_folders({path_to_uri(repo.root)});
        const auto t_index = Clock::now();
        agent.start();
        {
            std::promise<void> ready;
            agent.generators().when_ready([&](const GeneratorHost::Lease&) { ready.set_value(); });
            ready.get_future().wait();
        }
        auto ix = agent.workspaces().index_for(real_path(repo.root) + "/x");
        if (!ix) {
            exit_code = fail("the folder was not indexed");
            return;
        }
        ix->block_until_idle_for_test();
        std::fprintf(stderr, "bench context: indexed in %.1f s: %s\n",
                     std::chrono::duration<double>(Clock::now() - t_index).count(),
                     ix->stats().dump().c_str());

        // 3. Each span: Latent's prompt at every budget, then the others'.
        std::map<std::pair<std::string, size_t>, Sum> total;  // (method, budget)
        std::map<std::tuple<std::string, std::string, size_t>, Sum> by_lang, by_kind;
        const auto t_spans = Clock::now();
        for (size_t i = 0; i < picked.spans.size(); ++i) {
            const Span& sp = picked.spans[i];
            const std::vector<Needed> needed = needed_definitions(repo, sp);
            const std::string& full = repo.texts.at(sp.file);
            const std::string doc = full.substr(0, sp.begin) + full.substr(sp.end);
            const std::string abs = repo.root + "/" + sp.file;
            const std::string uri = path_to_uri(abs);
            const std::string lang = language_of(sp.file);
            const std::string marker = comment_marker(sp.file);
            agent.open_document({uri, lang, 1, full});
            // The user deleted the span (as if about to write it): a whole-text change.
            agent.change_document(uri, 2, {lsp::TextDocumentContentChangeEvent{{}, {}, doc}});
            agent.document_changed(uri);
            ix->block_until_idle_for_test();
            const lsp::Position at = to_position(doc, sp.begin, agent.documents().encoding());
            auto record = [&](const std::string& method, size_t budget, const Score& s) {
                total[{method, budget}].add(s);
                by_lang[{method, lang, budget}].add(s);
                by_kind[{method, kind_name(sp.kind), budget}].add(s);
            };
            for (size_t budget : budgets) {
                Settings s = agent.settings();
                s.context_tokens = static_cast<int>(budget);
                agent.set_settings(s);
                CompletionRequest req;
                req.uri = uri;
                req.position = at;
                const auto r = agent.complete(req, nullptr);
                const std::vector<ContextBlock> ours =
                    r ? parse_context(backend->last_prompt().context, repo)
                      : std::vector<ContextBlock>{};
                record("latent", budget, score(ours, needed, marker, count));

                // The others, laid out by the same function and budget.
                PromptBudget pb;
                pb.context_tokens = budget;
                pb.prefix_tokens = static_cast<size_t>(s.prefix_tokens);
                pb.suffix_tokens = static_cast<size_t>(s.suffix_tokens);
                const size_t bytes = budget * 4;  // layout_fim_prompt's 4 bytes a token
                auto laid_out = [&](std::vector<ContextBlock> blocks) {
                    const FimLayout l = layout_fim_prompt(doc, sp.begin, sp.file, blocks, pb);
                    return parse_context(l.prompt.context, repo);
                };
                record("none", budget, score(laid_out({}), needed, marker, count));
                record("ring", budget,
                       score(laid_out(ring_context(repo, sp.file, a->seed, bytes)), needed, marker,
                             count));
                record(
                    "imports", budget,
                    score(laid_out(imports_context(repo, sp.file, bytes)), needed, marker, count));
                std::vector<ContextBlock> hits;
                for (auto& h :
                     ix->search(bm25_query(std::string_view(doc).substr(0, sp.begin)), 32))
                    hits.push_back({h.path, h.start_line, h.end_line, std::move(h.text)});
                record("bm25", budget,
                       score(laid_out(fit(hits, bytes, sp.file, false)), needed, marker, count));
            }
            agent.close_document(uri);
            agent.document_closed(uri);  // back to the disk's text
            ix->block_until_idle_for_test();
            if ((i + 1) % 25 == 0 || i + 1 == picked.spans.size()) {
                std::fprintf(stderr, "bench context: %zu/%zu spans (%.1f s)", i + 1,
                             picked.spans.size(),
                             std::chrono::duration<double>(Clock::now() - t_spans).count());
                for (const std::string& m : kMethods)
                    std::fprintf(stderr, "  %s %.3f", m.c_str(),
                                 total[{m, budgets.back()}].recall());
                std::fprintf(stderr, " (recall at %zu)\n", budgets.back());
            }
        }

        // 4. The table on stderr, the JSON line on stdout.
        nlohmann::json methods = nlohmann::json::object();
        std::fprintf(stderr,
                     "bench context: recall (share of context that is needed definitions, "
                     "tokens) per budget\n%-8s",
                     "method");
        for (size_t b : budgets) std::fprintf(stderr, " %22zu", b);
        std::fprintf(stderr, "\n");
        for (const std::string& m : kMethods) {
            nlohmann::json rows = nlohmann::json::array();
            std::fprintf(stderr, "%-8s", m.c_str());
            for (size_t b : budgets) {
                const Sum& s = total[{m, b}];
                nlohmann::json row = s.json();
                row["budget"] = b;
                rows.push_back(row);
                std::fprintf(stderr, "  %.3f (%.3f, %6.0f)", s.recall(), row["share"].get<double>(),
                             row["tokens"].get<double>());
            }
            std::fprintf(stderr, "\n");
            methods[m] = rows;
        }
        auto groups = [&](const auto& sums, bool all_methods) {
            nlohmann::json out = nlohmann::json::object();
            for (const auto& [key, s] : sums) {
                const auto& [m, g, b] = key;
                if (!all_methods && m != "latent") continue;
                nlohmann::json row = s.json();
                row["budget"] = b;
                out[g][m].push_back(row);
            }
            return out;
        };
        const nlohmann::json out = {{"bench", "context"},
                                    {"name", a->name},
                                    {"dir", repo.root},
                                    {"seed", a->seed},
                                    {"files", repo.texts.size()},
                                    {"ctags_definitions", repo.tags.size()},
                                    {"spans", picked.spans.size()},
                                    {"skipped", picked.skipped},
                                    {"tokenizer", tok_path},
                                    {"budgets", budgets},
                                    {"methods", methods},
                                    {"by_lang", groups(by_lang, true)},
                                    {"by_kind", groups(by_kind, false)}};
        std::printf("%s\n",
                    out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    });
}

}  // namespace

void register_bench_context_command(CLI::App& app, int& exit_code) {
    register_bench_context(app, exit_code);
}

}  // namespace latent::agent
