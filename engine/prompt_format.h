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

struct ChatMessage {
    std::string role;  // system | user | assistant (others are the caller's to refuse)
    std::string content;
};

enum class ChatFamily { kDeepSeekV3, kDeepSeekCoderV2 };
// DeepSeek-V3 when the vocabulary has <｜User｜> and <｜Assistant｜>, else Coder-V2's form.
ChatFamily chat_family(const Tokenizer& tokenizer);

struct PromptPiece {
    bool special = false;  // `text` is the spelling of one special token
    std::string text;
};

// The chat prompt, ending where the assistant's next answer starts. System messages are
// joined with a blank line and come first, wherever they were.
// DeepSeek-V3:       BOS {system} <｜User｜>{u1}<｜Assistant｜>{a1}EOS<｜User｜>{u2}<｜Assistant｜>
// DeepSeek-Coder-V2: BOS {system}\n\nUser: {u1}\n\nAssistant: {a1}EOS User: {u2}\n\nAssistant:
std::vector<PromptPiece> chat_pieces(ChatFamily family, const std::vector<ChatMessage>& messages);
// The pieces as one string (specials spelled out): for logs and tests.
std::string render(const std::vector<PromptPiece>& pieces);
// chat_pieces as ids: text tokenized without special tokens (so a user's text cannot
// smuggle one in), each special piece as its one id.
std::vector<int32_t> chat_tokens(const Tokenizer& tokenizer,
                                 const std::vector<ChatMessage>& messages);

// Fill in the middle, DeepSeek's order:
//   BOS <｜fim▁begin｜> prefix <｜fim▁hole｜> suffix <｜fim▁end｜> middle
// `middle` is the start of the middle the model continues ("" for the plain form).
// `parse_special`: text may spell special tokens (the CLI's --special); never for text
// from a client. Error when the vocabulary has no FIM tokens.
Expected<std::vector<int32_t>> fim_tokens(const Tokenizer& tokenizer, std::string_view prefix,
                                          std::string_view suffix, std::string_view middle = {},
                                          bool parse_special = false);

}  // namespace latent::engine
