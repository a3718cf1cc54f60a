// Chat templates (see chat_template.h). The spellings follow the tokenizer_config.json
// chat_template of each model family.
#include "agent/chat_template.h"

namespace latent::agent {

namespace {
constexpr const char* kBos = "<｜begin▁of▁sentence｜>";
constexpr const char* kEos = "<｜end▁of▁sentence｜>";
constexpr const char* kUser = "<｜User｜>";
constexpr const char* kAssistant = "<｜Assistant｜>";
}  // namespace

std::vector<PromptPiece> apply_chat_template(ChatFamily family,
                                             const std::vector<ChatMessage>& messages) {
    std::vector<PromptPiece> out;
    auto special = [&](const char* s) { out.push_back({true, s}); };
    auto text = [&](std::string s) {
        if (!s.empty()) out.push_back({false, std::move(s)});
    };
    special(kBos);
    std::string system;
    for (const auto& m : messages)
        if (m.role == "system") system += (system.empty() ? "" : "\n\n") + m.content;
    if (family == ChatFamily::kDeepSeekV3) {
        text(system);
        for (const auto& m : messages) {
            if (m.role == "user") {
                special(kUser);
                text(m.content);
            } else if (m.role == "assistant") {
                special(kAssistant);
                text(m.content);
                special(kEos);
            }
        }
        special(kAssistant);
        return out;
    }
    if (!system.empty()) text(system + "\n\n");
    bool after_assistant = false;
    for (const auto& m : messages) {
        if (m.role == "user") {
            text("User: " + m.content + "\n\n");
            after_assistant = false;
        } else if (m.role == "assistant") {
            text("Assistant: " + m.content);
            special(kEos);
            after_assistant = true;
        }
    }
    (void)after_assistant;
    text("Assistant:");
    return out;
}

std::string render(const std::vector<PromptPiece>& pieces) {
    std::string s;
    for (const auto& p : pieces) s += p.text;
    return s;
}

}  // namespace latent::agent
