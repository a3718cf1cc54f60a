// TokenBytes, ByteTrie and TokenSet (see token_bytes.h).
#include "engine/token_bytes.h"

#include <algorithm>
#include <bit>
#include <unordered_set>

#include "engine/tokenizer.h"

namespace latent::engine {

bool TokenSet::any() const {
    for (uint64_t w : words_)
        if (w) return true;
    return false;
}

size_t TokenSet::count() const {
    size_t n = 0;
    for (uint64_t w : words_) n += size_t(std::popcount(w));
    return n;
}

void TokenSet::add(const TokenSet& other) {
    for (size_t i = 0; i < words_.size() && i < other.words_.size(); ++i)
        words_[i] |= other.words_[i];
}

ByteTrie ByteTrie::build(std::vector<std::pair<std::string_view, int32_t>> entries) {
    // Sorted by bytes (as unsigned), every subtree is a contiguous run of entries, so the
    // depth-first numbering comes from one recursive pass over the runs.
    std::sort(entries.begin(), entries.end(), [](const auto& x, const auto& y) {
        const int c = x.first.compare(y.first);  // char_traits<char> compares as unsigned
        return c != 0 ? c < 0 : x.second < y.second;
    });
    entries.erase(std::remove_if(entries.begin(), entries.end(),
                                 [](const auto& e) { return e.first.empty(); }),
                  entries.end());
    ByteTrie t;
    t.nodes.emplace_back();
    t.byte.push_back(0);
    // Fills node `id` from entries [b, e), all of which share their first `depth` bytes.
    auto fill = [&](auto&& self, uint32_t id, size_t b, size_t e, size_t depth) -> void {
        t.nodes[id].first_token = uint32_t(t.tokens.size());
        while (b < e && entries[b].first.size() == depth) t.tokens.push_back(entries[b++].second);
        t.nodes[id].n_tokens = uint32_t(t.tokens.size()) - t.nodes[id].first_token;
        // Children: one per distinct next byte, allocated together so they are contiguous.
        std::vector<std::pair<size_t, size_t>> runs;
        for (size_t i = b; i < e;) {
            size_t j = i;
            const char c = entries[i].first[depth];
            while (j < e && entries[j].first[depth] == c) ++j;
            runs.emplace_back(i, j);
            i = j;
        }
        const uint32_t first = uint32_t(t.nodes.size());
        t.nodes[id].first_child = first;
        t.nodes[id].n_children = uint32_t(runs.size());
        for (const auto& r : runs) {
            t.nodes.emplace_back();
            t.byte.push_back(uint8_t(entries[r.first].first[depth]));
        }
        for (size_t k = 0; k < runs.size(); ++k)
            self(self, first + uint32_t(k), runs[k].first, runs[k].second, depth + 1);
    };
    fill(fill, 0, 0, entries.size(), 0);
    return t;
}

std::shared_ptr<const TokenBytes> TokenBytes::create(std::vector<std::string> pieces,
                                                     std::vector<bool> special) {
    auto t = std::make_shared<TokenBytes>();
    special.resize(pieces.size(), false);
    t->pieces_ = std::move(pieces);
    t->special_ = std::move(special);
    std::vector<std::pair<std::string_view, int32_t>> entries;
    for (int32_t id = 0; id < t->n_vocab(); ++id) {
        if (!t->is_text(id)) continue;
        entries.emplace_back(t->pieces_[size_t(id)], id);
        t->max_bytes_ = std::max(t->max_bytes_, t->pieces_[size_t(id)].size());
    }
    t->trie_ = ByteTrie::build(std::move(entries));
    return t;
}

std::shared_ptr<const TokenBytes> TokenBytes::create(const Tokenizer& tokenizer) {
    const int32_t n = tokenizer.n_vocab();
    std::vector<std::string> pieces(static_cast<size_t>(n));
    std::vector<bool> special(static_cast<size_t>(n), false);
    std::unordered_set<std::string> special_texts;
    for (int32_t id = 0; id < n; ++id) {
        pieces[size_t(id)] = tokenizer.token_to_piece(id);
        const TokenType type = tokenizer.token_type(id);
        if (type == TokenType::kControl || type == TokenType::kUserDefined ||
            type == TokenType::kUnknown) {
            special[size_t(id)] = true;
            if (!pieces[size_t(id)].empty()) special_texts.insert(pieces[size_t(id)]);
        }
    }
    // A normal token that spells a special one would read back as it.
    for (int32_t id = 0; id < n; ++id) {
        if (!special[size_t(id)] && special_texts.count(pieces[size_t(id)]))
            special[size_t(id)] = true;
    }
    return create(std::move(pieces), std::move(special));
}

}  // namespace latent::engine
