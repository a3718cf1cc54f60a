// JsonTokenTables, JsonMasker and JsonConstraint (see json_constraint.h).
#include "engine/json_constraint.h"

#include <algorithm>
#include <limits>

namespace latent::engine {

namespace {

// The length of the longest prefix of s made of whole, valid UTF-8 characters (RFC 3629)
// with no quote, backslash or control byte: bytes a JSON string takes as they are, in any
// state with nothing pending, and that leave that state as it was.
size_t plain_string_prefix(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        const uint8_t c = uint8_t(s[i]);
        if (c < 0x80) {
            if (c < 0x20 || c == '"' || c == '\\') return i;
            ++i;
            continue;
        }
        size_t need = 0;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            need = 1;
        else if (c == 0xE0)
            need = 2, lo = 0xA0;
        else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
            need = 2;
        else if (c == 0xED)
            need = 2, hi = 0x9F;
        else if (c == 0xF0)
            need = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3)
            need = 3;
        else if (c == 0xF4)
            need = 3, hi = 0x8F;
        else
            return i;
        if (i + need >= s.size()) return i;  // cut off inside the character
        for (size_t k = 1; k <= need; ++k) {
            const uint8_t b = uint8_t(s[i + k]);
            if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return i;
        }
        i += need + 1;
    }
    return i;
}

}  // namespace

// ---------------------------------------------------------------------------------------

std::shared_ptr<const JsonTokenTables> JsonTokenTables::create(
    std::shared_ptr<const TokenBytes> tokens) {
    auto t = std::make_shared<JsonTokenTables>();
    const int32_t n = tokens->n_vocab();
    t->plain_string_ = TokenSet(n);
    std::vector<std::pair<std::string_view, int32_t>> rest;
    for (int32_t id = 0; id < n; ++id) {
        if (!tokens->is_text(id)) continue;
        const std::string& b = tokens->bytes(id);
        const size_t plain = plain_string_prefix(b);
        if (plain == b.size())
            t->plain_string_.set(id);
        else  // from a plain string state its plain prefix changes nothing: keep the rest
            rest.emplace_back(std::string_view(b).substr(plain), id);
    }
    t->not_plain_string_ = ByteTrie::build(std::move(rest));
    t->tokens_ = std::move(tokens);
    return t;
}

// ---------------------------------------------------------------------------------------

JsonMasker::JsonMasker(std::shared_ptr<const JsonTokenTables> tables,
                       std::shared_ptr<const JsonGrammar> grammar)
    : tables_(std::move(tables)),
      grammar_(std::move(grammar)),
      levels_(tables_->tokens().max_token_bytes() + 1) {}

void JsonMasker::walk(const ByteTrie& trie, uint32_t node, size_t level, Entry& raw, TokenSet& out,
                      uint32_t max_completion) {
    const JsonGrammar& g = *grammar_;
    const ByteTrie::Node& n = trie.nodes[node];
    for (uint32_t i = 0; i < n.n_children; ++i) {
        const uint32_t child = n.first_child + i;
        ++stats_.trie_steps;
        if (!JsonMatcher::step(g, levels_[level], trie.byte[child], levels_[level + 1])) continue;
        const ByteTrie::Node& c = trie.nodes[child];
        if (c.n_tokens > 0) {
            const uint32_t after = JsonMatcher::completion_length(g, levels_[level + 1]);
            raw.longest_after = std::max(raw.longest_after, after);
            for (uint32_t k = 0; k < c.n_tokens; ++k) {
                raw.tokens.set(trie.tokens[c.first_token + k]);
                if (after <= max_completion) out.set(trie.tokens[c.first_token + k]);
            }
        }
        if (c.n_children > 0) walk(trie, child, level + 1, raw, out, max_completion);
    }
}

void JsonMasker::allowed(const JsonMatcher::State& state, TokenSet& out, uint32_t max_completion) {
    ++stats_.masks;
    key_.clear();
    state.append_key(key_);
    if (auto it = cache_.find(key_);
        it != cache_.end() && it->second.longest_after <= max_completion) {
        // No allowed token lengthens the completion past the cap: the whole set holds.
        ++stats_.cache_hits;
        out = it->second.tokens;
        return;
    }
    Entry raw{TokenSet(tables_->tokens().n_vocab()), 0};
    out.clear();
    levels_[0] = state;
    if (state.in_plain_string()) {
        // Plain content leaves the state as it is, so its completion length too; of the
        // other tokens only what follows their plain prefix needs walking.
        ++stats_.string_fast_path;
        const uint32_t now = JsonMatcher::completion_length(*grammar_, state);
        raw.tokens.add(tables_->plain_string());
        raw.longest_after = now;
        if (now <= max_completion) out.add(tables_->plain_string());
        walk(tables_->not_plain_string(), 0, 0, raw, out, max_completion);
    } else {
        walk(tables_->tokens().trie(), 0, 0, raw, out, max_completion);
    }
    if (!cache_.count(key_)) {
        if (cache_.size() >= kCacheEntries) {
            cache_.erase(cache_order_.front());
            cache_order_.pop_front();
        }
        cache_order_.push_back(key_);
    }
    cache_.insert_or_assign(key_, std::move(raw));
}

void JsonMasker::prefix_tokens(std::string_view text, TokenSet& out) const {
    out.clear();
    const ByteTrie& t = tables_->tokens().trie();
    uint32_t node = 0;
    for (char ch : text) {
        const ByteTrie::Node& n = t.nodes[node];
        const auto begin = t.byte.begin() + n.first_child;
        const auto end = begin + n.n_children;
        const auto it = std::lower_bound(begin, end, uint8_t(ch));
        if (it == end || *it != uint8_t(ch)) return;
        node = uint32_t(it - t.byte.begin());
        const ByteTrie::Node& c = t.nodes[node];
        for (uint32_t k = 0; k < c.n_tokens; ++k) out.set(t.tokens[c.first_token + k]);
    }
}

int32_t JsonMasker::longest_prefix_token(std::string_view text) const {
    const ByteTrie& t = tables_->tokens().trie();
    uint32_t node = 0;
    int32_t best = -1;
    for (char ch : text) {
        const ByteTrie::Node& n = t.nodes[node];
        const auto begin = t.byte.begin() + n.first_child;
        const auto end = begin + n.n_children;
        const auto it = std::lower_bound(begin, end, uint8_t(ch));
        if (it == end || *it != uint8_t(ch)) break;
        node = uint32_t(it - t.byte.begin());
        if (t.nodes[node].n_tokens > 0) best = t.tokens[t.nodes[node].first_token];
    }
    return best;
}

// ---------------------------------------------------------------------------------------

JsonConstraint::JsonConstraint(std::shared_ptr<const JsonTokenTables> tables,
                               std::shared_ptr<const JsonGrammar> grammar,
                               std::vector<int32_t> end_tokens)
    : masker_(tables, grammar),
      matcher_(grammar),
      end_tokens_(std::move(end_tokens)),
      allowed_(tables->tokens().n_vocab()) {}

void JsonConstraint::allow_end_only() {
    allowed_.clear();
    for (int32_t id : end_tokens_)
        if (id >= 0 && id < allowed_.size()) allowed_.set(id);
}

void JsonConstraint::mask(float* logits, int32_t n_vocab, int32_t remaining) {
    remaining = std::max<int32_t>(remaining, 1);
    const JsonGrammar& g = matcher_.grammar();
    const JsonMatcher::State& st = matcher_.state();
    if (failed_ || ended_ || JsonMatcher::is_closed(st)) {
        allow_end_only();
    } else {
        const uint64_t left = finishing_ ? 0 : JsonMatcher::completion_length(g, st);
        const uint64_t budget = uint64_t(remaining);
        if (!finishing_ && budget <= left + 1 + kFinishMargin) {
            finishing_ = true;
            plan_ = matcher_.shortest_completion();
        }
        if (finishing_) {
            // Only the plan, in the fewest tokens, so that it fits before max_tokens.
            const int32_t next = masker_.longest_prefix_token(plan_);
            if (plan_.empty() || next < 0) {
                allow_end_only();
            } else {
                allowed_.clear();
                allowed_.set(next);
            }
        } else {
            // A token may lengthen the completion only as far as the tokens left after it
            // can still write it and the end token: completion after <= remaining - 2.
            const uint32_t cap = uint32_t(std::min<uint64_t>(budget - 2, UINT32_MAX));
            masker_.allowed(st, allowed_, cap);
            if (JsonMatcher::is_complete(g, st))
                for (int32_t id : end_tokens_)
                    if (id >= 0 && id < allowed_.size()) allowed_.set(id);
        }
        if (!allowed_.any()) allow_end_only();  // cannot happen; never leave nothing
    }
    // No end token given and nothing allowed: leave the row alone rather than mask it all.
    if (!allowed_.any()) return;
    const int32_t n = std::min(n_vocab, allowed_.size());
    const float kNegInf = -std::numeric_limits<float>::infinity();
    const std::vector<uint64_t>& w = allowed_.words();
    for (int32_t base = 0; base < n; base += 64) {
        const uint64_t bits = w[size_t(base) >> 6];
        if (bits == ~uint64_t(0)) continue;
        const int32_t top = std::min(n, base + 64);
        if (bits == 0) {  // the usual word outside strings: a plain fill, vectorized
            std::fill(logits + base, logits + top, kNegInf);
            continue;
        }
        for (int32_t i = base; i < top; ++i)
            if (!((bits >> (i - base)) & 1)) logits[i] = kNegInf;
    }
    for (int32_t i = n; i < n_vocab; ++i) logits[i] = kNegInf;
}

void JsonConstraint::accept(int32_t token) {
    if (std::find(end_tokens_.begin(), end_tokens_.end(), token) != end_tokens_.end()) {
        ended_ = true;
        return;
    }
    const TokenBytes& tb = masker_.tables().tokens();
    if (failed_ || ended_ || token < 0 || token >= tb.n_vocab() || !tb.is_text(token) ||
        !matcher_.feed(tb.bytes(token))) {
        failed_ = true;
        return;
    }
    text_ += tb.bytes(token);
    if (finishing_) {
        const std::string& b = tb.bytes(token);
        if (plan_.compare(0, b.size(), b) == 0)
            plan_.erase(0, b.size());
        else
            plan_ = matcher_.shortest_completion();  // off the plan (a forced token)
    }
}

}  // namespace latent::engine
