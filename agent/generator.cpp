// ScriptedGenerator (see backend.h).
#include "agent/generator.h"

#include <algorithm>
#include <chrono>
#include <thread>

namespace latent::agent {

engine::Expected<GenerateResult> ScriptedGenerator::fim(const FimPrompt& prompt,
                                                        const GenerateOptions& options) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        last_ = prompt;
    }
    auto r = reply(options);
    // No tokenizer here: a byte is a token.
    if (r)
        r->prompt_tokens = static_cast<int32_t>(prompt.context.size() + prompt.prefix.size() +
                                                prompt.suffix.size() + prompt.middle.size());
    return r;
}

engine::Expected<GenerateResult> ScriptedGenerator::chat(const std::vector<ChatMessage>& messages,
                                                         const GenerateOptions& options) {
    (void)messages;
    return reply(options);
}

void ScriptedGenerator::warm(const std::string& owner, const FimPrompt& stable, WarmOrder order) {
    std::lock_guard<std::mutex> lock(mu_);
    warms_.push_back(owner + ":" +
                     std::to_string(std::count(stable.prefix.begin(), stable.prefix.end(), '\n') +
                                    std::count(stable.middle.begin(), stable.middle.end(), '\n')) +
                     (order == WarmOrder::kFirst ? " first" : ""));
}

nlohmann::json ScriptedGenerator::stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return {{"warms", warms_}, {"running", running_}, {"calls", next_}};
}

FimPrompt ScriptedGenerator::last_prompt() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_;
}

engine::Expected<GenerateResult> ScriptedGenerator::reply(const GenerateOptions& options) {
    GenerateResult r;
    std::string text;
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (!replies_.empty()) text = replies_[next_++ % replies_.size()];
        ++running_;
    }
    struct Done {
        ScriptedGenerator* b;
        ~Done() {
            std::lock_guard<std::mutex> lock(b->mu_);
            --b->running_;
        }
    } done{this};
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms_);
    while (std::chrono::steady_clock::now() < deadline) {
        if (options.cancelled && options.cancelled()) {
            r.cancelled = true;
            return r;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    // Stream word by word, as a model would token by token.
    size_t pos = 0;
    while (pos < text.size()) {
        if (options.cancelled && options.cancelled()) {
            r.cancelled = true;
            return r;
        }
        size_t next = text.find(' ', pos + 1);
        if (next == std::string::npos) next = text.size();
        const std::string_view piece(text.data() + pos, next - pos);
        r.text += piece;
        ++r.generated_tokens;
        if (options.on_text) options.on_text(piece);
        pos = next;
        if (options.enough && pos < text.size() && options.enough(r.text)) {
            r.ended_early = true;
            break;
        }
    }
    return r;
}

}  // namespace latent::agent
