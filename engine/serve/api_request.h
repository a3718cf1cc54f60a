// ApiRequest: the body of an OpenAI/DeepSeek-shaped request turned into a typed, validated
// value before anything else looks at it. A body nested deeper than kMaxJsonDepth is
// refused by a scan of its bytes before it is parsed (no recursive copy or destructor ever
// sees a hostile depth), and every field is checked for its type and range here, so the
// service that runs the request meets no surprise. It does not tokenize, render prompts
// or compile schemas (the service does, with the model's tokenizer).
//
// Thread safety: free functions over values; no shared state.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/expected.h"
#include "engine/prompt_format.h"
#include "engine/sampler.h"

namespace latent::serve {

// Deeper bodies are refused; no request of this API nests past a dozen levels except a
// JSON schema, and 64 leaves room for any real one.
constexpr int kMaxJsonDepth = 64;
// Caps on what one request may ask for.
constexpr size_t kMaxMessages = 4096;
constexpr size_t kMaxTools = 128;
constexpr int32_t kMaxLogprobs = 20;
constexpr int32_t kMaxChoices = 8;

// Whether `text`'s arrays and objects nest at most max_depth deep (strings skipped with
// their escapes). Linear, no allocation; not a validator.
bool json_nesting_within(std::string_view text, int max_depth);
// Bodies keep their object keys in the client's order (ordered_json), so a schema's
// properties are generated in the order it declares them, as OpenAI's are.
// The body parsed, or an error for bad JSON, a non-object or too deep a nesting.
engine::Expected<nlohmann::ordered_json> parse_json_body(std::string_view body);

struct ToolFunction {
    std::string name, description;
    nlohmann::ordered_json parameters = nlohmann::ordered_json::object();  // a JSON schema
    bool strict = false;  // arguments constrained to `parameters` by the grammar
};

enum class ToolChoice { kNone, kAuto, kRequired, kFunction };

struct ResponseFormat {
    enum class Kind { kText, kJsonObject, kJsonSchema } kind = Kind::kText;
    std::string name;               // json_schema.name
    nlohmann::ordered_json schema;  // json_schema.schema (key order kept)
    bool strict = false;
};

struct ApiRequest {
    bool chat = false;

    // /completions: a text prompt (or token ids), an optional suffix (fill in the middle).
    std::string prompt;
    std::vector<int32_t> prompt_ids;
    std::optional<std::string> suffix;
    bool echo = false;
    int32_t logprobs = -1;  // completions: top alternatives per token (0..20); -1: none

    // /chat/completions. The last message may be an assistant's with prefix: true (DeepSeek's
    // chat prefix completion): the answer continues it.
    std::vector<engine::ChatMessage> messages;
    bool prefix = false;  // the last message is an assistant prefix
    std::vector<ToolFunction> tools;
    ToolChoice tool_choice = ToolChoice::kAuto;  // kNone when there are no tools
    std::string tool_choice_name;                // for kFunction
    bool parallel_tool_calls = true;
    ResponseFormat response_format;
    bool chat_logprobs = false;
    int32_t top_logprobs = 0;

    // Both.
    std::optional<int32_t> max_tokens;
    engine::SamplingParams sampling;
    float frequency_penalty = 0, presence_penalty = 0;  // [-2, 2]
    std::vector<std::string> stop;
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage
    int32_t n = 1;
    bool warm = false;  // priority: "warm" (Latent's own: a cache warm-up)
};

// The body of POST /v1/completions (or /beta/completions): validated, or an error whose
// message names the field.
engine::Expected<ApiRequest> parse_completion_request(const nlohmann::ordered_json& body);
// The body of POST /v1/chat/completions.
engine::Expected<ApiRequest> parse_chat_request(const nlohmann::ordered_json& body);
// Only the fields that shape a chat's output — tools, tool_choice, parallel_tool_calls,
// response_format — checked as parse_chat_request checks them, into `r` (whose messages
// and prefix are the caller's): for callers that hold the messages typed already (the
// agent's local backend).
engine::Status parse_chat_output_options(const nlohmann::ordered_json& body, ApiRequest& r);

}  // namespace latent::serve
