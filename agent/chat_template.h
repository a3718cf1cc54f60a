// Chat templates: a list of messages -> the model's prompt, as pieces that are either
// plain text (tokenized without special tokens, so user text cannot smuggle any in) or
// one special token by its spelling. Only the families Latent runs: DeepSeek-V3 and
// DeepSeek-Coder-V2. Not a Jinja interpreter.
#pragma once

#include <string>
#include <vector>

#include "agent/backend.h"

namespace latent::agent {

enum class ChatFamily { kDeepSeekV3, kDeepSeekCoderV2 };

struct PromptPiece {
    bool special = false;  // `text` is the spelling of one special token
    std::string text;
};

// The prompt for `messages`, ending where the assistant's next answer starts.
// DeepSeek-V3:       BOS {system} <｜User｜>{u1}<｜Assistant｜>{a1}EOS<｜User｜>{u2}<｜Assistant｜>
// DeepSeek-Coder-V2: BOS {system}\n\nUser: {u1}\n\nAssistant: {a1}EOS User: {u2}\n\nAssistant:
std::vector<PromptPiece> apply_chat_template(ChatFamily family,
                                             const std::vector<ChatMessage>& messages);
// The whole prompt as one string (specials spelled out): for logs and tests.
std::string render(const std::vector<PromptPiece>& pieces);

}  // namespace latent::agent
