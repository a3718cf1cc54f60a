// Prompt formats (see prompt_format.h). The spellings follow each model family's
// tokenizer_config.json chat_template.
#include "engine/prompt_format.h"

namespace latent::engine {

namespace {
constexpr const char* kBos = "<｜begin▁of▁sentence｜>";
constexpr const char* kEos = "<｜end▁of▁sentence｜>";
constexpr const char* kUser = "<｜User｜>";
constexpr const char* kAssistant = "<｜Assistant｜>";
}  // namespace

ChatFamily chat_family(const Tokenizer& tokenizer) {
    return tokenizer.find_token(kUser) && tokenizer.find_token(kAssistant)
               ? ChatFamily::kDeepSeekV3
               : ChatFamily::kDeepSeekCoderV2;
}

std::vector<PromptPiece> chat_pieces(ChatFamily family, const std::vector<ChatMessage>& messages) {
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
    for (const auto& m : messages) {
        if (m.role == "user") {
            text("User: " + m.content + "\n\n");
        } else if (m.role == "assistant") {
            text("Assistant: " + m.content);
            special(kEos);
        }
    }
    text("Assistant:");
    return out;
}

std::string render(const std::vector<PromptPiece>& pieces) {
    std::string s;
    for (const auto& p : pieces) s += p.text;
    return s;
}

std::vector<int32_t> chat_tokens(const Tokenizer& tokenizer,
                                 const std::vector<ChatMessage>& messages) {
    std::vector<int32_t> ids;
    for (const auto& piece : chat_pieces(chat_family(tokenizer), messages)) {
        if (piece.special) {
            // BOS and EOS by the vocabulary's ids (their spellings differ between families).
            if (piece.text == kBos) {
                ids.push_back(tokenizer.bos());
                continue;
            }
            if (piece.text == kEos) {
                ids.push_back(tokenizer.eos());
                continue;
            }
            if (auto id = tokenizer.find_token(piece.text)) {
                ids.push_back(*id);
                continue;
            }
        }
        for (int32_t id : tokenizer.encode(piece.text, false, false)) ids.push_back(id);
    }
    return ids;
}

Expected<std::vector<int32_t>> fim_tokens(const Tokenizer& tokenizer, std::string_view prefix,
                                          std::string_view suffix, std::string_view middle,
                                          bool parse_special) {
    const auto fim = tokenizer.fim();
    if (!fim) return make_error("this model has no fill-in-the-middle tokens");
    std::vector<int32_t> ids = {tokenizer.bos(), fim->pre};
    auto add = [&](std::string_view text) {
        for (int32_t id : tokenizer.encode(text, false, parse_special)) ids.push_back(id);
    };
    add(prefix);
    ids.push_back(fim->suf);
    add(suffix);
    ids.push_back(fim->mid);
    add(middle);
    return ids;
}

}  // namespace latent::engine
