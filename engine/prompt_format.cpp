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

std::vector<PromptPiece> chat_pieces(ChatFamily family, const std::vector<ChatMessage>& messages,
                                     const ChatOptions& options) {
    std::vector<PromptPiece> out;
    auto special = [&](const char* s) { out.push_back({true, s}); };
    auto text = [&](std::string s) {
        if (!s.empty()) out.push_back({false, std::move(s)});
    };
    // Coder-V2 has no tool tokens: their spellings go in as text.
    const bool v3 = family == ChatFamily::kDeepSeekV3;
    auto marker = [&](const char* s) { v3 ? special(s) : text(s); };
    auto calls = [&](const ChatMessage& m) {
        marker(kToolCallsBegin);
        for (size_t i = 0; i < m.tool_calls.size(); ++i) {
            if (i > 0) text("\n");
            marker(kToolCallBegin);
            text("function");
            marker(kToolSep);
            text(m.tool_calls[i].name + "\n```json\n" + m.tool_calls[i].arguments + "\n```");
            marker(kToolCallEnd);
        }
        marker(kToolCallsEnd);
    };
    special(kBos);
    std::string system;
    for (const auto& m : messages)
        if (m.role == "system") system += (system.empty() ? "" : "\n\n") + m.content;
    if (!options.tool_prompt.empty())
        system += (system.empty() ? "" : "\n\n") + options.tool_prompt;
    const size_t last = messages.empty() ? 0 : messages.size() - 1;
    const bool prefix = options.prefix && !messages.empty() && messages[last].role == "assistant";
    bool in_outputs = false;  // inside a run of tool results
    auto close_outputs = [&] {
        if (in_outputs) marker(kToolOutputsEnd);
        in_outputs = false;
    };
    if (v3) {
        text(system);
    } else if (!system.empty()) {
        text(system + "\n\n");
    }
    for (size_t i = 0; i < messages.size(); ++i) {
        const auto& m = messages[i];
        const bool continued = prefix && i == last;
        if (m.role == "user") {
            close_outputs();
            if (v3) {
                special(kUser);
                text(m.content);
            } else {
                text("User: " + m.content + "\n\n");
            }
        } else if (m.role == "assistant") {
            // After tool results the answer follows the outputs-end marker directly.
            const bool after_tools = in_outputs;
            close_outputs();
            if (v3) {
                if (!after_tools) special(kAssistant);
                text(m.content);
            } else {
                text((after_tools ? "" : "Assistant: ") + m.content);
            }
            if (!m.tool_calls.empty()) calls(m);
            if (!continued) special(kEos);
        } else if (m.role == "tool") {
            if (!in_outputs) {
                marker(kToolOutputsBegin);
                in_outputs = true;
            } else {
                text("\n");
            }
            marker(kToolOutputBegin);
            text(m.content);
            marker(kToolOutputEnd);
        }
    }
    if (prefix) return out;
    if (in_outputs) {
        close_outputs();
        return out;
    }
    v3 ? special(kAssistant) : text("Assistant:");
    return out;
}

std::string render(const std::vector<PromptPiece>& pieces) {
    std::string s;
    for (const auto& p : pieces) s += p.text;
    return s;
}

std::vector<int32_t> piece_tokens(const Tokenizer& tokenizer, const PromptPiece& piece) {
    if (piece.special) {
        // BOS and EOS by the vocabulary's ids (their spellings differ between families).
        if (piece.text == kBos) return {tokenizer.bos()};
        if (piece.text == kEos) return {tokenizer.eos()};
        if (auto id = tokenizer.find_token(piece.text)) return {*id};
    }
    return tokenizer.encode(piece.text, false, false);
}

std::vector<int32_t> chat_tokens(const Tokenizer& tokenizer,
                                 const std::vector<ChatMessage>& messages,
                                 const ChatOptions& options) {
    std::vector<int32_t> ids;
    for (const auto& piece : chat_pieces(chat_family(tokenizer), messages, options)) {
        const auto p = piece_tokens(tokenizer, piece);
        ids.insert(ids.end(), p.begin(), p.end());
    }
    return ids;
}

Expected<std::vector<int32_t>> fim_tokens(const Tokenizer& tokenizer, std::string_view prefix,
                                          std::string_view suffix, std::string_view middle,
                                          bool parse_special) {
    const auto fim = tokenizer.fim();
    if (!fim)
        return make_error(
            "this model's vocabulary has no fill-in-the-middle tokens (<｜fim▁begin｜>, "
            "<｜fim▁hole｜>, <｜fim▁end｜>), so it cannot complete code between a prefix and a "
            "suffix; use a FIM-trained model such as DeepSeek-Coder-V2-Lite-Base or DeepSeek-V3");
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
