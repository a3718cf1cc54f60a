// `latent make-model`, `latent generate`, `latent tokenize`.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>

#include "agent/commands.h"
#include "agent/data_files.h"
#include "engine/backends.h"
#include "engine/make_model.h"
#include "engine/model.h"
#include "engine/prompt_format.h"
#include "engine/reference.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "engine/tokenizer.h"
#include "engine/tokenizer_json.h"

namespace latent::agent {

using namespace latent::engine;

int fail(const std::string& message) {
    std::fprintf(stderr, "latent: error: %s\n", message.c_str());
    return 2;
}

namespace {

// Caps on text read from a file or stdin: a prompt larger than this is a mistake
// (DeepSeek's context is 163840 tokens, a few MB of text at most).
constexpr size_t kMaxPromptBytes = 64u << 20;

bool read_text(std::istream& in, std::string& out) {
    out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return out.size() <= kMaxPromptBytes;
}

void progress_line(const char* what, uint64_t done, uint64_t total, const std::string& item) {
    std::fprintf(stderr, "\r%s: %7.1f / %.1f MB (%3.0f%%) %-40s", what, done / 1e6, total / 1e6,
                 total ? 100.0 * done / total : 100.0, item.c_str());
    if (item.empty()) std::fprintf(stderr, "\n");
    std::fflush(stderr);
}

struct LoadedModel {
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tokenizer;
};

Expected<LoadedModel> load_model(const std::string& path) {
    LoadedModel lm;
    auto m = Model::load(path);
    if (!m) return m.error();
    lm.model = std::move(*m);
    auto t = Tokenizer::create(lm.model->vocab());
    if (!t) return make_error(path + ": tokenizer: " + t.error().message);
    lm.tokenizer = std::make_unique<Tokenizer>(std::move(*t));
    return lm;
}

// The tokenizer of any GGUF's vocabulary (no tensors needed); its Vocab into *vocab_out.
Expected<Tokenizer> load_vocab_tokenizer(const std::string& path, Vocab* vocab_out) {
    auto vocab = load_gguf_vocab(path);
    if (!vocab) return vocab.error();
    auto t = Tokenizer::create(*vocab);
    if (!t) return make_error(path + ": tokenizer: " + t.error().message);
    if (vocab_out) *vocab_out = std::move(*vocab);
    return t;
}

void register_make_model(CLI::App& app, int& exit_code) {
    auto* cmd = app.add_subcommand(
        "make-model",
        "Write a seeded random-weight DeepSeek GGUF (arch deepseek2) with a real DeepSeek "
        "tokenizer (V3's, or with --vocab Coder-V2-Lite's), for tests and benchmarks.");
    auto o = std::make_shared<MakeModelOptions>();
    auto quant = std::make_shared<std::string>("f16");
    auto gating = std::make_shared<std::string>();
    auto layout = std::make_shared<std::string>("split");
    auto q_lora = std::make_shared<int>(-1);
    auto mtp = std::make_shared<bool>(false);
    auto vocab_path = std::make_shared<std::string>();
    cmd->add_option("--preset", o->preset, "tiny | small | lite | tiny-v2 | v3-tiny")
        ->capture_default_str();
    cmd->add_option("--quant", *quant, "f32 | f16 | bf16 | q8_0 | q4_0 | q4_k | q5_k | q6_k")
        ->capture_default_str();
    cmd->add_option("--gating", *gating,
                    "v2 (softmax) | v3 (sigmoid + bias + group-limited top-k); default: the "
                    "preset's");
    cmd->add_flag("--q-lora,!--no-q-lora", *q_lora,
                  "Low-rank query projection (default: the preset's)");
    cmd->add_flag("--mtp", *mtp, "Add one multi-token-prediction (NextN) block");
    cmd->add_option("--kv-layout", *layout, "split (attn_k_b/attn_v_b) | single (attn_kv_b)")
        ->capture_default_str();
    cmd->add_option("--seed", o->seed, "Random seed")->capture_default_str();
    cmd->add_option("--out", o->out, "Output GGUF path")->required();
    auto* tj = cmd->add_option("--tokenizer", o->tokenizer_json,
                               "HF tokenizer.json (default: DeepSeek-V3's, which scripts/setup "
                               "extracted)");
    cmd->add_option("--vocab", *vocab_path,
                    "Take the vocabulary from a GGUF instead (any architecture, e.g. llama.cpp's "
                    "vocabulary-only files). DeepSeek LLM's 102,400-id one (pre deepseek-llm) "
                    "becomes Coder-V2-Lite's: its FIM tokens at 100002-100004")
        ->excludes(tj);
    cmd->callback([&exit_code, o, quant, gating, layout, q_lora, mtp, vocab_path, cmd] {
        auto qt = parse_type_name(*quant);
        if (!qt) {
            exit_code = fail("--quant: unknown type '" + *quant + "'");
            return;
        }
        o->quant = *qt;
        if (!gating->empty()) {
            if (*gating != "v2" && *gating != "v3") {
                exit_code = fail("--gating must be v2 or v3");
                return;
            }
            o->v3_gating = *gating == "v3";
        }
        if (*layout != "split" && *layout != "single") {
            exit_code = fail("--kv-layout must be split or single");
            return;
        }
        o->split_kv = *layout == "split";
        if (cmd->count("--q-lora") || cmd->count("--no-q-lora")) o->q_lora = *q_lora > 0;
        if (*mtp) o->mtp = true;
        if (o->tokenizer_json.empty() && vocab_path->empty()) {
            auto found = find_data_file("deepseek-v3/tokenizer.json");
            if (!found) {
                exit_code = fail(
                    "the DeepSeek-V3 tokenizer was not found (run scripts/setup, or pass "
                    "--tokenizer PATH)");
                return;
            }
            o->tokenizer_json = *found;
        }
        if (o->tokenizer_config.empty()) {
            const auto dir = o->tokenizer_json.substr(0, o->tokenizer_json.rfind('/') + 1);
            if (std::ifstream(dir + "tokenizer_config.json"))
                o->tokenizer_config = dir + "tokenizer_config.json";
        }
        auto shape = model_shape(*o);
        if (!shape) {
            exit_code = fail(shape.error().message);
            return;
        }
        Expected<Vocab> vocab = make_error("no vocabulary");
        if (!vocab_path->empty()) {
            vocab = load_gguf_vocab(*vocab_path);
            if (vocab && vocab->pre == "deepseek-llm" && vocab->tokens.size() == 102400) {
                vocab = coder_v2_lite_vocab(std::move(*vocab));
                std::fprintf(stderr,
                             "make-model: DeepSeek LLM's vocabulary as Coder-V2-Lite's: FIM "
                             "tokens at 100002-100004\n");
            }
            if (vocab) {
                if (auto t = Tokenizer::create(*vocab); !t)
                    vocab = make_error(*vocab_path + ": tokenizer: " + t.error().message);
            }
        } else {
            vocab = load_hf_tokenizer_json(o->tokenizer_json, o->tokenizer_config,
                                           static_cast<int32_t>(shape->n_vocab));
        }
        if (!vocab) {
            exit_code = fail(vocab.error().message);
            return;
        }
        const bool tty = isatty(STDERR_FILENO);
        // A live line on a terminal; one line every ten seconds into a log.
        auto calls = std::make_shared<int>(0);
        o->progress = [tty, calls](uint64_t done, uint64_t total, const std::string& name) {
            if (tty || name.empty()) {
                progress_line("make-model", done, total, name);
            } else if (++*calls % 10 == 0) {
                std::fprintf(stderr, "make-model: %.1f / %.1f MB (%.0f%%) %s\n", done / 1e6,
                             total / 1e6, 100.0 * done / total, name.c_str());
            }
        };
        std::fprintf(stderr, "make-model: preset %s, %s, seed %llu -> %s\n", o->preset.c_str(),
                     traits(o->quant).name, static_cast<unsigned long long>(o->seed),
                     o->out.c_str());
        auto bytes = make_model(*o, *vocab);
        if (!bytes) {
            exit_code = fail(bytes.error().message);
            return;
        }
        std::fprintf(stderr, "make-model: wrote %s (%.1f MB)\n", o->out.c_str(), *bytes / 1e6);
    });
}

struct SamplingFlags {
    SamplingParams p;
    std::vector<std::string> stop;
};

void add_sampling_flags(CLI::App* cmd, SamplingFlags& f) {
    cmd->add_option("--temp", f.p.temperature, "Temperature; 0 = greedy")->capture_default_str();
    cmd->add_option("--top-k", f.p.top_k, "Keep the k most likely tokens; 0 = off")
        ->capture_default_str();
    cmd->add_option("--top-p", f.p.top_p, "Nucleus sampling; 1 = off")->capture_default_str();
    cmd->add_option("--min-p", f.p.min_p, "Drop tokens below min-p x the best; 0 = off")
        ->capture_default_str();
    cmd->add_option("--repeat-penalty", f.p.repeat_penalty, "1 = off")->capture_default_str();
    cmd->add_option("--repeat-last-n", f.p.repeat_last_n, "Window of the penalty")
        ->capture_default_str();
    cmd->add_option("--seed", f.p.seed, "Sampling seed")->capture_default_str();
    cmd->add_option("--stop", f.stop, "Stop string (repeatable)");
}

void register_generate(CLI::App& app, int& exit_code) {
    auto* cmd = app.add_subcommand("generate", "Generate text from a prompt (streams to stdout).");
    struct Args {
        std::string model, prompt, file, suffix, backend = "cpu";
        int n = 32, top_logits = 0, threads = 0;
        bool special = false, ids = false;
        SamplingFlags s;
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("--model,-m", a->model, "GGUF model file")->required();
    auto* p = cmd->add_option("--prompt,-p", a->prompt, "Prompt text");
    auto* f = cmd->add_option("--file,-f", a->file, "Read the prompt from a file (- = stdin)");
    p->excludes(f);
    cmd->add_option("--suffix", a->suffix, "Text after the cursor: fill-in-the-middle (PSM)");
    cmd->add_option("-n,--n-predict", a->n, "Tokens to generate")->capture_default_str();
    cmd->add_option("--backend", a->backend, "cpu (fast), reference (the plain float pass) or cuda")
        ->capture_default_str();
    cmd->add_option("--threads,-t", a->threads, "CPU threads (0: every CPU this process may use)")
        ->capture_default_str()
        ->check(CLI::Range(0, 1024));
    cmd->add_flag("--special", a->special, "Recognise special tokens spelled in the prompt");
    cmd->add_flag("--ids", a->ids, "Print token ids (one per line) instead of text");
    cmd->add_option("--top-logits", a->top_logits,
                    "Print one JSON line per step instead of text: the chosen token and the K "
                    "highest logits (for comparing engines)")
        ->check(CLI::Range(0, 1000));
    a->s.p.temperature = 0.0f;  // greedy unless asked
    add_sampling_flags(cmd, a->s);
    cmd->callback([&exit_code, a, cmd] {
        auto chosen = make_backend({a->backend, a->threads});
        if (!chosen) {
            exit_code = fail(chosen.error().message);
            return;
        }
        if (!chosen->note.empty()) std::fprintf(stderr, "generate: %s\n", chosen->note.c_str());
        Backend& backend = *chosen->backend;
        if (a->file.empty() && !cmd->count("--prompt")) {
            exit_code = fail("give --prompt TEXT or --file PATH");
            return;
        }
        if (!a->file.empty()) {
            std::ifstream in;
            std::istream* src = &std::cin;
            if (a->file != "-") {
                in.open(a->file, std::ios::binary);
                if (!in) {
                    exit_code = fail(a->file + ": cannot open");
                    return;
                }
                src = &in;
            }
            if (!read_text(*src, a->prompt)) {
                exit_code = fail(a->file + ": prompt larger than 64 MiB");
                return;
            }
        }
        if (Status st = a->s.p.validate(); !st) {
            exit_code = fail(st.error().message);
            return;
        }
        if (a->n < 0) {
            exit_code = fail("-n must be >= 0");
            return;
        }
        auto lm = load_model(a->model);
        if (!lm) {
            exit_code = fail(lm.error().message);
            return;
        }
        const Tokenizer& tok = *lm->tokenizer;
        std::vector<int32_t> prompt;
        if (cmd->count("--suffix")) {
            auto ids = fim_tokens(tok, a->prompt, a->suffix, {}, a->special);
            if (!ids) {
                exit_code = fail(a->model + ": " + ids.error().message);
                return;
            }
            prompt = std::move(*ids);
        } else {
            prompt = tok.encode(a->prompt, lm->model->vocab().add_bos, a->special);
        }
        if (prompt.empty()) {
            exit_code = fail("the prompt is empty");
            return;
        }
        const HParams& hp = lm->model->hparams();
        if (prompt.size() + static_cast<size_t>(a->n) > hp.n_ctx_train) {
            exit_code = fail("prompt + -n exceeds the model's context of " +
                             std::to_string(hp.n_ctx_train));
            return;
        }
        LatentCache::Config cc{hp.n_layer, hp.kv_lora_rank, hp.n_rot};
        LatentCache cache(cc);
        Session session(*lm->model, backend, cache);
        Sampler sampler(a->s.p);
        for (int32_t id : prompt) sampler.accept(id);
        auto stop_or = StopMatcher::create(a->s.stop);
        if (!stop_or) {
            exit_code = fail(stop_or.error().message);
            return;
        }
        StopMatcher stop = std::move(*stop_or);

        using Clock = std::chrono::steady_clock;
        const auto t0 = Clock::now();
        // Progress on stderr once a prompt pass has taken more than a second.
        bool shown = false;
        auto* reference = dynamic_cast<ReferenceBackend*>(&backend);
        if (reference)
            reference->on_layer = [&](uint32_t layer, uint32_t n_layer) {
                if (Clock::now() - t0 < std::chrono::seconds(1)) return;
                std::fprintf(stderr, "\rgenerate: prompt of %zu tokens: layer %u/%u", prompt.size(),
                             layer, n_layer);
                shown = true;
            };
        auto pre = session.prefill(prompt);
        if (reference) reference->on_layer = nullptr;
        if (shown) std::fprintf(stderr, "\n");
        if (!pre) {
            exit_code = fail(pre.error().message);
            return;
        }
        const auto t1 = Clock::now();
        std::vector<float> logits = std::move(pre->logits);
        int generated = 0;
        for (; generated < a->n; ++generated) {
            const int32_t id = sampler.sample(logits.data(), static_cast<int32_t>(hp.n_vocab));
            sampler.accept(id);
            if (a->top_logits > 0) {
                std::vector<int32_t> order(logits.size());
                for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
                const auto k = std::min<size_t>(static_cast<size_t>(a->top_logits), order.size());
                std::partial_sort(order.begin(), order.begin() + static_cast<long>(k), order.end(),
                                  [&](int32_t x, int32_t y) {
                                      return logits[x] > logits[y] ||
                                             (logits[x] == logits[y] && x < y);
                                  });
                std::printf("{\"step\":%d,\"token\":%d,\"top\":[", generated, id);
                for (size_t i = 0; i < k; ++i)
                    std::printf("%s[%d,%.9g]", i ? "," : "", order[i], logits[order[i]]);
                std::printf("]}\n");
            }
            if (tok.is_eog(id)) break;
            if (a->top_logits > 0) {
                // The JSON line above is the whole output of this step.
            } else if (a->ids) {
                std::printf("%d\n", id);
            } else {
                const auto step = stop.push(tok.token_to_piece(id));
                std::fwrite(step.emit.data(), 1, step.emit.size(), stdout);
                if (step.stopped) {
                    ++generated;
                    break;
                }
            }
            std::fflush(stdout);
            if (generated + 1 == a->n) {
                ++generated;
                break;
            }
            auto next = session.decode(id);
            if (!next) {
                exit_code = fail(next.error().message);
                return;
            }
            logits = std::move(*next);
        }
        if (!a->ids && a->top_logits == 0) {
            const std::string rest = stop.flush();
            std::fwrite(rest.data(), 1, rest.size(), stdout);
            std::printf("\n");
        }
        std::fflush(stdout);
        const auto t2 = Clock::now();
        const double pre_s = std::chrono::duration<double>(t1 - t0).count();
        const double gen_s = std::chrono::duration<double>(t2 - t1).count();
        std::fprintf(
            stderr,
            "generate: prompt %zu tokens (%.1f tok/s), generated %d (%.1f tok/s), backend %s\n",
            prompt.size(), prompt.size() / std::max(pre_s, 1e-9), generated,
            generated / std::max(gen_s, 1e-9), backend.name().c_str());
    });
}

void register_tokenize(CLI::App& app, int& exit_code) {
    auto* cmd =
        app.add_subcommand("tokenize", "Print the token ids of a text under a model's tokenizer.");
    struct Args {
        std::string model, vocab, text;
        bool ids = false, stdin_ = false, special = false, no_bos = false;
    };
    auto a = std::make_shared<Args>();
    auto* m = cmd->add_option("--model,-m", a->model, "GGUF model file");
    auto* v = cmd->add_option("--vocab", a->vocab,
                              "Any GGUF's vocabulary alone, of any architecture (e.g. llama.cpp's "
                              "vocabulary-only ggml-vocab-*.gguf); instead of --model");
    m->excludes(v);
    cmd->add_option("text", a->text, "Text to tokenize");
    cmd->add_flag("--stdin", a->stdin_, "Read the text from stdin");
    cmd->add_flag("--ids", a->ids, "Print only the ids, space-separated, on one line");
    cmd->add_flag("--special", a->special, "Recognise special tokens spelled in the text");
    cmd->add_flag("--no-bos", a->no_bos, "Do not prepend BOS");
    cmd->callback([&exit_code, a] {
        if (a->model.empty() == a->vocab.empty()) {
            exit_code = fail("give --model FILE or --vocab FILE");
            return;
        }
        if (a->stdin_ && !read_text(std::cin, a->text)) {
            exit_code = fail("stdin: text larger than 64 MiB");
            return;
        }
        std::unique_ptr<Tokenizer> tokenizer;
        bool add_bos = true;
        if (!a->vocab.empty()) {
            Vocab vocab;
            auto t = load_vocab_tokenizer(a->vocab, &vocab);
            if (!t) {
                exit_code = fail(t.error().message);
                return;
            }
            tokenizer = std::make_unique<Tokenizer>(std::move(*t));
            add_bos = vocab.add_bos;
        } else {
            auto lm = load_model(a->model);
            if (!lm) {
                exit_code = fail(lm.error().message);
                return;
            }
            tokenizer = std::move(lm->tokenizer);
            add_bos = lm->model->vocab().add_bos;
        }
        const bool bos = !a->no_bos && add_bos;
        const auto ids = tokenizer->encode(a->text, bos, a->special);
        if (a->ids) {
            for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %d" : "%d", ids[i]);
            std::printf("\n");
            return;
        }
        for (int32_t id : ids) {
            std::string piece = tokenizer->token_to_piece(id), shown;
            for (unsigned char c : piece) {
                if (c == '\n')
                    shown += "\\n";
                else if (c == '\t')
                    shown += "\\t";
                else if (c == '\r')
                    shown += "\\r";
                else
                    shown += static_cast<char>(c);
            }
            std::printf("%6d '%s'\n", id, shown.c_str());
        }
    });
}

}  // namespace

void register_model_commands(CLI::App& app, int& exit_code) {
    register_make_model(app, exit_code);
    register_generate(app, exit_code);
    register_tokenize(app, exit_code);
}

}  // namespace latent::agent
