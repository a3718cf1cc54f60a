// LocalGenerator: the engine in this process behind the agent's Generator interface, through
// engine::Scheduler: one thread owns the model; inline completions run before chat and
// chat before cache warming; every step decodes one token of each running request and
// one prefill chunk of the most urgent prompt, so a long chat prompt or a warm-up delays
// a completion by at most one chunk. Prompts start from the prefix cache (a radix tree of
// latent-cache pages shared by all requests; RAM, then the disk tier), so a keystroke
// recomputes only the tokens after the edit. warm(owner) prefills an open document's
// stable prompt part and pins it for that document until release(owner).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "agent/generator.h"
#include "engine/prompt_format.h"
#include "engine/scheduler.h"
#include "engine/serve/output_constraint.h"

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
    // A warm-up chunk takes about this long at the measured prefill speed (16 tokens at
    // least): on a slow machine a completion waits for this much of a warm-up at most.
    double warm_chunk_ms = 250;
    // Prompt-lookup draft tokens verified per step for greedy requests (0: off); the
    // output is the same either way.
    int32_t draft_tokens = 4;
    // Drafts from the model's MTP block instead (where it has one), one token per step.
    bool mtp = false;
    // Measure prefill and decode speed at load (32 prompt tokens and 2 decode steps of a
    // scratch sequence), so that the first completion's prompt is sized by them.
    bool calibrate = true;
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
    // Tools and response formats as `latent serve`'s /v1/chat/completions honours them,
    // with its pieces (engine/serve): options.tools, tool_choice and response_format are
    // checked as a request body's are (an error names the field); the tools are described
    // in the system text (serve::tool_prompt); the output is held by
    // serve::OutputConstraints — tool_choice auto: text or calls in DeepSeek-V3's tool
    // tokens, each call well-formed; "required" or a named function: calls only; "none":
    // no call; response_format json_object / json_schema: JSON (to the schema). The answer
    // is split by serve::ToolCallStream: result.text (and on_text) get the content only,
    // result.tool_calls the calls (id from serve::new_call_id(), name, arguments as JSON
    // text) and finish_reason is "tool_calls" when there are any. A vocabulary without
    // tool tokens (Coder-V2) gets the tools in text and can be asked for none by force.
    // A chat with neither tools nor a JSON format runs unconstrained (any control token
    // ends it), so prompt-lookup drafts, which a constraint turns off, still apply.
    //
    // The prompt is chat_tokens' (engine/prompt_format.h), except where this owner's
    // previous chat is its start (see ChatMemory below): a conversation whose turns each
    // extend the last one is computed once, however the model's tokens of its answers
    // would re-tokenize.
    engine::Expected<GenerateResult> chat(const std::vector<ChatMessage>& messages,
                                          const GenerateOptions& options) override;
    // True with DeepSeek-V3's tool-call tokens in the vocabulary (calls are then always
    // well-formed); a vocabulary without them (Coder-V2) was never taught a call format,
    // so agent mode asks it plainly.
    bool supports_tools() const override { return tool_call_tokens_.size() == 5; }
    // kFirst (the focused place): the other owners' warm-ups stop (what they computed
    // stays cached) and start again once this one is done; kAlongside while one goes
    // first: it waits for it too.
    void warm(const std::string& owner, const FimPrompt& stable, WarmOrder order) override;
    void release(const std::string& owner) override;
    // The prompt's tokens; as computed, those past the longest start it shares with a
    // recent prompt or warm-up, as far as that one got (pages evicted since are not
    // known: an estimate); the scheduler's measured speeds (per decode step: one token).
    std::optional<PromptCost> prompt_cost(const FimPrompt& prompt) const override;
    nlohmann::json stats() const override;
    // Why the disk tier asked for could not be used (empty when it is in use or not asked).
    const std::string& disk_error() const { return disk_error_; }

    // The token ids of a chat prompt as chat() lays it out for `owner` (engine::chat_tokens
    // when the owner has no earlier chat to start from).
    std::vector<int32_t> chat_prompt_tokens(const std::vector<ChatMessage>& messages,
                                            const engine::ChatOptions& chat_options,
                                            const std::string& owner) const;
    // The token ids of a FIM prompt (see FimPrompt: the middle's tokens come last).
    std::vector<int32_t> fim_tokens(const FimPrompt& p) const;
    // Blocks until the scheduler has nothing queued or running (tests).
    void wait_idle();

private:
    // A prompt piece (engine::chat_pieces) or a run of answer tokens, with the ids it had.
    struct Segment {
        engine::PromptPiece piece;
        std::vector<int32_t> ids;
    };
    // ChatMemory: per owner, the last chat's prompt and answer as segments — the prompt's
    // pieces with their ids, then the answer's tokens: each run of ordinary tokens one
    // text segment (their decoded text), each other token (a tool-call marker) one special
    // segment. A later prompt whose pieces start with the same segments (text equal byte
    // for byte, specials equal) takes those ids instead of tokenizing again, so the
    // answer's own tokens, which the model generated and the cache holds, are what the
    // next turn sees; the rest is tokenized as chat_tokens does. Ordinary text never gets
    // a special id this way (a text segment holds ordinary tokens only).
    struct ChatMemory {
        std::vector<Segment> segments;
        uint64_t used = 0;  // for dropping the least recently used owner
    };
    static constexpr size_t kMaxChatMemories = 16;
    // What generate() does for a chat beyond a plain completion.
    struct ChatSetup {
        std::shared_ptr<engine::TokenConstraint> constraint;  // null: free text
        bool tools = false;  // split the answer into content and tool calls
    };

    // A warm-up submitted to the scheduler (its prompt, to start again if it is put off)
    // or put off until the one going first is done.
    struct Warming {
        engine::Scheduler::Handle handle = 0;
        std::vector<int32_t> ids;
        std::shared_ptr<std::atomic<int32_t>> progress;
    };
    // A prompt the engine ran or is running, and how far (for prompt_cost).
    struct Known {
        std::vector<int32_t> ids;
        std::shared_ptr<std::atomic<int32_t>> progress;
    };
    static constexpr size_t kMaxKnown = 16;
    static constexpr size_t kCalibrationTokens = 32;

    LocalGenerator() = default;
    // mu_ held. Submits a warm-up and records it in warming_ and known_.
    void submit_warm(const std::string& owner, std::vector<int32_t> ids);
    // The scheduler's thread: a warm-up ended.
    void warm_done(const std::string& owner, const std::shared_ptr<std::atomic<int32_t>>& progress);
    // mu_ held. The warm-up going first is done (or gone): the others go on.
    void resume_deferred();
    // mu_ held. Remembers a prompt for prompt_cost.
    std::shared_ptr<std::atomic<int32_t>> know(const std::vector<int32_t>& ids);
    engine::Expected<GenerateResult> generate(std::vector<int32_t> prompt,
                                              engine::Priority priority,
                                              const GenerateOptions& options,
                                              const ChatSetup* chat = nullptr,
                                              std::vector<int32_t>* answer_ids = nullptr);
    std::vector<Segment> chat_segments(const std::vector<ChatMessage>& messages,
                                       const engine::ChatOptions& chat_options,
                                       const std::string& owner) const;
    void remember(const std::string& owner, std::vector<Segment> prompt,
                  const std::vector<int32_t>& answer_ids);

    LocalGeneratorOptions options_;
    std::unique_ptr<engine::Model> model_;
    std::unique_ptr<engine::Tokenizer> tokenizer_;
    std::unique_ptr<engine::Backend> engine_;
    std::unique_ptr<engine::Scheduler> scheduler_;
    std::string engine_name_;
    std::string kernels_ = "-";  // the CPU engine's kernel table (AVX-512 VNNI, AVX2, ...)
    int threads_ = 0;            // the CPU engine's threads
    std::string disk_error_;     // why the disk tier is off, when it was asked for

    mutable std::mutex mu_;
    std::map<std::string, Warming> warming_;                // owner -> latest warm-up
    std::map<std::string, std::vector<int32_t>> deferred_;  // owner -> warm-up put off
    std::string first_;     // the owner whose warm-up goes first; empty: none
    bool closing_ = false;  // the destructor runs: nothing more is submitted
    std::deque<Known> known_;
    std::map<std::string, ChatMemory> memories_;  // owner -> last chat
    uint64_t memory_clock_ = 0;
    // Set once in create(): the end-of-generation ids, the tool-call markers an answer with
    // tools may hold, and the output constraints of chat requests (their tables are built
    // on first use).
    std::vector<int32_t> end_tokens_;
    std::vector<int32_t> tool_call_tokens_;
    std::unique_ptr<serve::OutputConstraints> constraints_;
};

}  // namespace latent::agent
