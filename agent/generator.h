// The agent's model backend: one interface for "fill in the middle" and "chat", with two
// real implementations (LocalGenerator: the engine in this process; RemoteGenerator: an
// OpenAI-compatible server) and a scripted one for tests and `latent bench lsp`.
// Prompts arrive as text; tokenization, templates and sampling are the backend's business.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/expected.h"
#include "engine/prompt_format.h"

namespace latent::agent {

// A fill-in-the-middle prompt, laid out for the prefix cache: `context` (retrieved
// snippets and the file's path header) comes first, then `prefix` (the file from a stable
// line up to the start of a line at or a few lines before the cursor's), then `suffix`
// (from the cursor on), and last `middle`: the lines from there up to the cursor, the
// start of the middle the model writes (after the FIM middle marker: the model continues
// it as its own text). All but the middle stay the same while the user types, so a
// keystroke recomputes only the typed tokens, not the suffix as the prefix-hole-suffix
// order with everything before the cursor in the prefix would.
struct FimPrompt {
    std::string context;
    std::string prefix;
    std::string suffix;
    std::string middle;
};

// A model family's FIM markers, for servers that take the prompt as plain text (the
// remote backend's "raw" mode): the markers are sent as their spelling and the server's
// tokenizer must turn each into its one special token. PSM order, as DeepSeek trained it
// (ENGINE_SPEC §4.3):
//   {prefix marker}{context}{prefix}{suffix marker}{suffix}{middle marker}{middle}
// No BOS: completion servers add it themselves (vLLM, llama.cpp, `latent serve`).
// Defaults: DeepSeek's markers, the only family Latent runs.
struct FimTemplate {
    std::string prefix = "<｜fim▁begin｜>";
    std::string suffix = "<｜fim▁hole｜>";
    std::string middle = "<｜fim▁end｜>";

    std::string render(const FimPrompt& p) const {
        return prefix + p.context + p.prefix + suffix + p.suffix + middle + p.middle;
    }
    bool operator==(const FimTemplate&) const = default;
};

// {role, content}: the engine's type (engine/prompt_format.h), the one chat format.
using ChatMessage = engine::ChatMessage;

// Per-call options. Callbacks run on the backend's thread and must be short.
struct GenerateOptions {
    int32_t max_tokens = 64;
    std::vector<std::string> stop;
    float temperature = 0.0f;
    // Owner of the cached prefix (a document URI, "chat"): requests of one owner reuse
    // each other's cache.
    std::string owner;
    // Polled between tokens; true ends the generation early (result.cancelled).
    std::function<bool()> cancelled;
    // Streamed text pieces (chat); may be null.
    std::function<void(std::string_view)> on_text;
    // Asked after each piece of text with all the text so far: true ends the generation
    // there, as a stop string would (result.ended_early; not a cancellation). May be null.
    std::function<bool(std::string_view text)> enough;
    // Chat only (fim ignores them); each null = absent, else sent as given in OpenAI's
    // shape: `tools` (an array of {type: "function", function: {name, description,
    // parameters}}), `tool_choice` ("none" | "auto" | "required" | {type: "function",
    // function: {name}}), `response_format` ({type: "text" | "json_object" |
    // "json_schema", ...}). The remote backend passes them through; the local one
    // constrains its output as `latent serve` does (local_generator.h).
    nlohmann::json tools;
    nlohmann::json tool_choice;
    nlohmann::json response_format;
};

// A function call the model asked for (chat with tools).
struct ToolCall {
    std::string id;         // the server's id for it, echoed back with the tool's result
    std::string name;       // the function's name
    std::string arguments;  // its arguments as the model wrote them: JSON text, unchecked
};

struct GenerateResult {
    std::string text;
    // The prompt's length where the backend knows it (the local engine: also when the
    // request was cancelled before or during its prefill; remote: 0 then).
    int32_t prompt_tokens = 0;
    int32_t cached_tokens = 0;    // prompt tokens served from the cache
    int32_t computed_tokens = 0;  // prompt tokens run through the model
    int32_t generated_tokens = 0;
    bool cancelled = false;
    bool ended_early = false;  // options.enough said so
    // From the call to the first generated token (-1: none): what a streaming client
    // would wait before text appears.
    double first_token_ms = -1;
    // The calls the model asked for, in the order of their index (chat with tools).
    std::vector<ToolCall> tool_calls;
    // Why the generation ended, as the backend said it: "stop", "length", "tool_calls",
    // "content_filter", the local engine's "cancelled" / "deadline"; "" when not said.
    std::string finish_reason;
};

// What a FIM prompt would cost a backend now, as far as it can tell: its tokens, how many
// it would compute (the rest its prefix cache holds), and the speeds it measured.
struct PromptCost {
    int32_t prompt_tokens = 0;
    int32_t computed_tokens = 0;
    double prefill_ms_per_token = 0;  // 0: not measured yet
    double decode_ms_per_token = 0;
    double wait_ms = 0;  // before its prefill starts (a warm-up chunk under way)
    // Waiting, prefill and `generated` tokens of decode, in milliseconds.
    double ms(int32_t generated) const {
        return wait_ms + computed_tokens * prefill_ms_per_token + generated * decode_ms_per_token;
    }
};

// Whether a warm-up goes before the others (the place the user looks at) or beside them.
enum class WarmOrder { kFirst, kAlongside };

// Thread safety: every method may be called from any thread at any time; implementations
// serialise the model work themselves.
class Generator {
public:
    virtual ~Generator() = default;
    // "local cpu /path/model.gguf", "remote https://host (model)", "scripted".
    virtual std::string describe() const = 0;
    virtual engine::Expected<GenerateResult> fim(const FimPrompt& prompt,
                                                 const GenerateOptions& options) = 0;
    virtual engine::Expected<GenerateResult> chat(const std::vector<ChatMessage>& messages,
                                                  const GenerateOptions& options) = 0;
    // Warm the cache with the start of a prompt — a completion's at a place, with the
    // middle only up to the cursor's line — at low priority when the backend is idle;
    // `owner` keeps it until release(owner). kFirst: the focused place — other owners'
    // warm-ups wait until it is done. Default: nothing.
    virtual void warm(const std::string& owner, const FimPrompt& stable, WarmOrder order) {
        (void)owner;
        (void)stable;
        (void)order;
    }
    // What `prompt` would cost now (PromptCost), for choosing a prompt that arrives within
    // a latency target; nullopt: the backend cannot tell (remote servers). Default: nullopt.
    virtual std::optional<PromptCost> prompt_cost(const FimPrompt& prompt) const {
        (void)prompt;
        return std::nullopt;
    }
    virtual void release(const std::string& owner) { (void)owner; }
    // Whether chat() honours GenerateOptions.tools (agent mode needs it; without, agent
    // mode answers as repository-aware chat). Default: no.
    virtual bool supports_tools() const { return false; }
    // Figures for latent/status (cache bytes, sessions, ...).
    virtual nlohmann::json stats() const { return nlohmann::json::object(); }
};

// Replies from a list, in turn (cycling), after an optional delay that honours
// cancellation: tests script the model's output to check post-processing and
// cancellation; `latent bench lsp` measures the server's own overhead with it.
class ScriptedGenerator : public Generator {
public:
    explicit ScriptedGenerator(std::vector<std::string> replies, int delay_ms = 0)
        : replies_(std::move(replies)), delay_ms_(delay_ms) {}
    std::string describe() const override { return "scripted"; }
    engine::Expected<GenerateResult> fim(const FimPrompt& prompt,
                                         const GenerateOptions& options) override;
    engine::Expected<GenerateResult> chat(const std::vector<ChatMessage>& messages,
                                          const GenerateOptions& options) override;
    // The last FIM prompt seen (tests check the layout).
    FimPrompt last_prompt() const;
    // Each warm() as "owner:lines", lines = the line breaks in its prefix and middle
    // (where it ends), and " first" for WarmOrder::kFirst;
    // stats()["warms"] lists them for tests of the server's warming; stats()["running"]
    // counts the generations in progress and ["calls"] those begun, so a test can wait for
    // a request to reach the backend instead of sleeping.
    void warm(const std::string& owner, const FimPrompt& stable, WarmOrder order) override;
    nlohmann::json stats() const override;

private:
    engine::Expected<GenerateResult> reply(const GenerateOptions& options);
    std::vector<std::string> replies_;
    int delay_ms_;
    mutable std::mutex mu_;
    size_t next_ = 0;
    int running_ = 0;
    FimPrompt last_;
    std::vector<std::string> warms_;
};

}  // namespace latent::agent
