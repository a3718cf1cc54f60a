// LocalGenerator: the engine in this process behind the agent's Generator interface, through
// engine::Scheduler: one thread owns the model; inline completions run before chat and
// chat before cache warming; every step decodes one token of each running request and
// one prefill chunk of the most urgent prompt, so a long chat prompt or a warm-up delays
// a completion by at most one chunk. Prompts start from the prefix cache (a radix tree of
// latent-cache pages shared by all requests; RAM, then the disk tier), so a keystroke
// recomputes only the tokens after the edit. warm(owner) prefills an open document's
// stable prompt part and pins it for that document until release(owner).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "agent/generator.h"
#include "engine/scheduler.h"

namespace latent::engine {
class Model;
class Tokenizer;
class Generator;
}  // namespace latent::engine

namespace latent::agent {

struct LocalGeneratorOptions {
    std::string model_path;
    std::string engine = "cpu";  // make_generator name: cpu | reference | cuda
    int threads = 0;             // 0: all cores
    // Latent-cache memory for running requests and cached prefixes together. Default 1 GiB.
    uint64_t cache_bytes = 1ull << 30;
    // False: every prompt is computed from scratch (to measure what the reuse saves).
    bool prefix_cache = true;
    // Disk tier for evicted and pinned prefix pages: a folder, "default"
    // ($XDG_CACHE_HOME/latent/kv/<model id>/), or empty for none.
    std::string disk_dir;
    uint64_t disk_bytes = 4ull << 30;
    // Prompt tokens per scheduler step for completion and chat prompts, and for warm-ups
    // (smaller: a completion that arrives during a warm-up waits for at most one chunk).
    int32_t prefill_chunk = 256;
    int32_t warm_chunk = 64;
    // Prompt-lookup draft tokens verified per step for greedy requests (0: off); the
    // output is the same either way.
    int32_t draft_tokens = 4;
    // Drafts from the model's MTP block instead (where it has one), one token per step.
    bool mtp = false;
};

// Thread safety: all public methods may be called from any thread; fim and chat block
// their caller until done (streaming through on_text on the caller's thread), warm and
// release return at once.
class LocalGenerator : public Generator {
public:
    static engine::Expected<std::unique_ptr<LocalGenerator>> create(
        const LocalGeneratorOptions& options);
    ~LocalGenerator() override;

    std::string describe() const override;
    engine::Expected<GenerateResult> fim(const FimPrompt& prompt,
                                         const GenerateOptions& options) override;
    // Tools and response formats are not in the engine yet: `tools` with tool_choice
    // absent, "auto" or "none" are ignored (the model answers in text, as a model that
    // chose no tool would); tool_choice "required" or a named function, and a
    // response_format other than {type: "text"}, are errors, since the answer could not
    // honour them.
    engine::Expected<GenerateResult> chat(const std::vector<ChatMessage>& messages,
                                          const GenerateOptions& options) override;
    void warm(const std::string& owner, const FimPrompt& stable) override;
    void release(const std::string& owner) override;
    nlohmann::json stats() const override;
    // Why the disk tier asked for could not be used (empty when it is in use or not asked).
    const std::string& disk_error() const { return disk_error_; }

    // The token ids of a FIM prompt (see FimPrompt: the middle's tokens come last).
    std::vector<int32_t> fim_tokens(const FimPrompt& p) const;
    // Blocks until the scheduler has nothing queued or running (tests).
    void wait_idle();

private:
    LocalGenerator() = default;
    engine::Expected<GenerateResult> generate(std::vector<int32_t> prompt,
                                              engine::Priority priority,
                                              const GenerateOptions& options);

    LocalGeneratorOptions options_;
    std::unique_ptr<engine::Model> model_;
    std::unique_ptr<engine::Tokenizer> tokenizer_;
    std::unique_ptr<engine::Backend> engine_;
    std::unique_ptr<engine::Scheduler> scheduler_;
    std::string engine_name_;
    std::string disk_error_;  // why the disk tier is off, when it was asked for

    mutable std::mutex mu_;
    std::map<std::string, engine::Scheduler::Handle> warming_;  // owner -> latest warm-up
};

}  // namespace latent::agent
