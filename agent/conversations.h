// Conversations: what was really sent to the model in each chat conversation — the
// system prompt, gathered context, tool calls and results — kept so that the next turn
// is built on it instead of on the client's shorter history (the view keeps only the
// user's and the assistant's text). The next turn's prompt then extends the previous
// one token for token, and the backend's prefix cache serves all of it.
#pragma once

#include <cstddef>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/generator.h"

namespace latent::agent {

// Thread safety: every method locks.
class Conversations {
public:
    static constexpr size_t kMaxConversations = 16;
    static constexpr size_t kMaxBytes = 1u << 20;  // per conversation; larger: not kept

    // The stored transcript of `id` when what the client shows of it (`shown`: its
    // messages before the new user turn) is exactly what was shown last time; else nullopt.
    std::optional<std::vector<ChatMessage>> transcript(const std::string& id,
                                                       const std::vector<ChatMessage>& shown) const;
    // After a turn: `shown` = the client's messages and the answer; `transcript` = what
    // was sent, ending with the answer. Marks it most recently used; the least recently
    // used conversation goes beyond kMaxConversations.
    void store(const std::string& id, std::vector<ChatMessage> shown,
               std::vector<ChatMessage> transcript);
    size_t size() const;

private:
    struct Entry {
        std::string id;
        std::vector<ChatMessage> shown, transcript;
    };
    mutable std::mutex mu_;
    std::list<Entry> entries_;  // most recent first
};

}  // namespace latent::agent
