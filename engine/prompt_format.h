// Prompt formats: how a fill-in-the-middle request and a chat become a model's tokens, for
// the model families Latent runs (DeepSeek-V3, DeepSeek-Coder-V2). The one place for them:
// `latent lsp` (agent/local_backend), `latent serve` (http_server) and the CLI all call it.
// Not a Jinja interpreter, and no sampling or tokenizing rules of its own (tokenizer.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/expected.h"
#include "engine/tokenizer.h"

namespace latent::engine {

// One call of a function by the assistant, as the chat format writes it back.
struct ToolCallText {
    std::string id;
    std::string name;
    std::string arguments;  // JSON text
};

struct ChatMessage {
    std::string role;  // system | user | assistant | tool (others are the caller's to refuse)
    std::string content;
    std::vector<ToolCallText> tool_calls;  // assistant: the calls it made
    std::string tool_call_id;              // tool: the call this result answers
};

enum class ChatFamily { kDeepSeekV3, kDeepSeekCoderV2 };
// DeepSeek-V3 when the vocabulary has <｜User｜> and <｜Assistant｜>, else Coder-V2's form.
ChatFamily chat_family(const Tokenizer& tokenizer);

struct PromptPiece {
    bool special = false;  // `text` is the spelling of one special token
    std::string text;
};

// DeepSeek-V3's tool-call tokens (ENGINE_SPEC §4.4). A call is written
//   <｜tool▁call▁begin｜>function<｜tool▁sep｜>{name}\n```json\n{arguments}\n```<｜tool▁call▁end｜>
// and the calls of one turn (joined by "\n") sit between calls-begin and calls-end.
inline constexpr const char* kToolCallsBegin = "<｜tool▁calls▁begin｜>";
inline constexpr const char* kToolCallsEnd = "<｜tool▁calls▁end｜>";
inline constexpr const char* kToolCallBegin = "<｜tool▁call▁begin｜>";
inline constexpr const char* kToolCallEnd = "<｜tool▁call▁end｜>";
inline constexpr const char* kToolSep = "<｜tool▁sep｜>";
inline constexpr const char* kToolOutputsBegin = "<｜tool▁outputs▁begin｜>";
inline constexpr const char* kToolOutputsEnd = "<｜tool▁outputs▁end｜>";
inline constexpr const char* kToolOutputBegin = "<｜tool▁output▁begin｜>";
inline constexpr const char* kToolOutputEnd = "<｜tool▁output▁end｜>";

struct ChatOptions {
    // Appended to the system text (after a blank line): the tools' descriptions, written
    // by the caller (tool_prompt in serve/tool_calls.h).
    std::string tool_prompt;
    // The last message is an assistant's that the answer continues (DeepSeek's chat prefix
    // completion): it gets no end-of-sentence, and no new assistant turn follows.
    bool prefix = false;
};

// The chat prompt, ending where the assistant's next answer starts. System messages are
// joined with a blank line and come first, wherever they were.
// DeepSeek-V3:       BOS {system} <｜User｜>{u1}<｜Assistant｜>{a1}EOS<｜User｜>{u2}<｜Assistant｜>
// DeepSeek-Coder-V2: BOS {system}\n\nUser: {u1}\n\nAssistant: {a1}EOS User: {u2}\n\nAssistant:
// Tool calls and results, DeepSeek-V3 (its chat_template, with two of its slips mended: every
// assistant turn with calls opens its own calls-begin, and a user turn after tool results
// closes them with outputs-end first):
//   <｜Assistant｜>{content}<｜tool▁calls▁begin｜>{call}\n{call}<｜tool▁calls▁end｜>EOS
//   <｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>{result}<｜tool▁output▁end｜>\n<｜tool▁output▁begin｜>...
//   <｜tool▁outputs▁end｜> -- and the answer follows with no new <｜Assistant｜>.
// Coder-V2 has no tool tokens: calls and results are written as text in the same shape
// (the markers spelled out), which its tokenizer reads as ordinary text.
std::vector<PromptPiece> chat_pieces(ChatFamily family, const std::vector<ChatMessage>& messages,
                                     const ChatOptions& options = {});
// The pieces as one string (specials spelled out): for logs and tests.
std::string render(const std::vector<PromptPiece>& pieces);
// One piece's ids: a special piece as its one id (BOS and EOS by the vocabulary's own),
// text (or a special the vocabulary lacks) tokenized without special tokens.
std::vector<int32_t> piece_tokens(const Tokenizer& tokenizer, const PromptPiece& piece);
// chat_pieces as ids, piece_tokens of each in order: text tokenized without special
// tokens (so a user's text cannot smuggle one in), each special piece as its one id.
std::vector<int32_t> chat_tokens(const Tokenizer& tokenizer,
                                 const std::vector<ChatMessage>& messages,
                                 const ChatOptions& options = {});

// Fill in the middle, DeepSeek's order:
//   BOS <｜fim▁begin｜> prefix <｜fim▁hole｜> suffix <｜fim▁end｜> middle
// `middle` is the start of the middle the model continues ("" for the plain form).
// `parse_special`: text may spell special tokens (the CLI's --special); never for text
// from a client. Error when the vocabulary has no FIM tokens.
Expected<std::vector<int32_t>> fim_tokens(const Tokenizer& tokenizer, std::string_view prefix,
                                          std::string_view suffix, std::string_view middle = {},
                                          bool parse_special = false);

}  // namespace latent::engine
