// Line arithmetic on plain text, shared by the agent's tools and its edit history.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace latent::agent {

// Byte offset where line `line` (0-based) starts; text.size() past the end.
inline size_t line_start(std::string_view text, size_t line) {
    size_t at = 0;
    for (size_t i = 0; i < line; ++i) {
        const size_t nl = text.find('\n', at);
        if (nl == std::string_view::npos) return text.size();
        at = nl + 1;
    }
    return at;
}

// The 0-based line holding byte `offset` (clamped to the text).
inline uint32_t line_of(std::string_view text, size_t offset) {
    offset = std::min(offset, text.size());
    return static_cast<uint32_t>(std::count(text.begin(), text.begin() + offset, '\n'));
}

}  // namespace latent::agent
