// Conversations (see conversations.h).
#include "agent/conversations.h"

namespace latent::agent {

namespace {

bool same_text(const std::vector<ChatMessage>& a, const std::vector<ChatMessage>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (a[i].role != b[i].role || a[i].content != b[i].content) return false;
    return true;
}

size_t bytes(const std::vector<ChatMessage>& ms) {
    size_t n = 0;
    for (const auto& m : ms) {
        n += m.content.size() + m.tool_call_id.size();
        for (const auto& c : m.tool_calls) n += c.id.size() + c.name.size() + c.arguments.size();
    }
    return n;
}

}  // namespace

std::optional<std::vector<ChatMessage>> Conversations::transcript(
    const std::string& id, const std::vector<ChatMessage>& shown) const {
    if (id.empty()) return std::nullopt;
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& e : entries_)
        if (e.id == id) {
            if (same_text(e.shown, shown)) return e.transcript;
            return std::nullopt;
        }
    return std::nullopt;
}

void Conversations::store(const std::string& id, std::vector<ChatMessage> shown,
                          std::vector<ChatMessage> transcript) {
    if (id.empty()) return;
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
        if (it->id == id) {
            entries_.erase(it);
            break;
        }
    if (bytes(shown) + bytes(transcript) > kMaxBytes) return;
    entries_.push_front({id, std::move(shown), std::move(transcript)});
    if (entries_.size() > kMaxConversations) entries_.pop_back();
}

size_t Conversations::size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.size();
}

}  // namespace latent::agent
