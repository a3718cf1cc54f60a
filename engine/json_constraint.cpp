// JsonTokenTables, JsonMasker and JsonConstraint (see json_constraint.h).
#include "engine/json_constraint.h"

#include <algorithm>
#include <limits>

namespace latent::engine {

namespace {

// Whole, valid UTF-8 characters (RFC 3629) with no quote, backslash or control byte:
// bytes a JSON string takes as they are, in any state with nothing pending.
bool plain_string_content(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const uint8_t c = uint8_t(s[i]);
        if (c < 0x80) {
            if (c < 0x20 || c == '"' || c == '\\') return false;
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
            return false;
        if (i + need >= s.size()) return false;  // cut off inside the character
        for (size_t k = 1; k <= need; ++k) {
            const uint8_t b = uint8_t(s[i + k]);
            if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return false;
        }
        i += need + 1;
    }
    return true;
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
        if (plain_string_content(tokens->bytes(id)))
            t->plain_string_.set(id);
        else
            rest.emplace_back(tokens->bytes(id), id);
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

void JsonMasker::walk(const ByteTrie& trie, uint32_t node, size_t level, TokenSet& out,
                      uint32_t max_completion) {
    const JsonGrammar& g = *grammar_;
    const ByteTrie::Node& n = trie.nodes[node];
    for (uint32_t i = 0; i < n.n_children; ++i) {
        const uint32_t child = n.first_child + i;
        ++stats_.trie_steps;
        if (!JsonMatcher::step(g, levels_[level], trie.byte[child], levels_[level + 1])) continue;
        const ByteTrie::Node& c = trie.nodes[child];
        if (c.n_tokens > 0 &&
            (max_completion == UINT32_MAX ||
             JsonMatcher::completion_length(g, levels_[level + 1]) <= max_completion)) {
            for (uint32_t k = 0; k < c.n_tokens; ++k) out.set(trie.tokens[c.first_token + k]);
        }
        if (c.n_children > 0) walk(trie, child, level + 1, out, max_completion);
    }
}

void JsonMasker::allowed(const JsonMatcher::State& state, TokenSet& out, uint32_t max_completion) {
    ++stats_.masks;
    const bool cacheable = max_completion == UINT32_MAX;
    if (cacheable) {
        key_.clear();
        state.append_key(key_);
        if (auto it = cache_.find(key_); it != cache_.end()) {
            ++stats_.cache_hits;
            out = it->second;
            return;
        }
    }
    out.clear();
    levels_[0] = state;
    if (state.in_plain_string()) {
        // Plain content leaves the state as it is, so its completion length too.
        ++stats_.string_fast_path;
        if (max_completion == UINT32_MAX ||
            JsonMatcher::completion_length(*grammar_, state) <= max_completion)
            out.add(tables_->plain_string());
        walk(tables_->not_plain_string(), 0, 0, out, max_completion);
    } else {
        walk(tables_->tokens().trie(), 0, 0, out, max_completion);
    }
    if (cacheable) {
        if (cache_.size() >= kCacheEntries) {
            cache_.erase(cache_order_.front());
            cache_order_.pop_front();
        }
        cache_.emplace(key_, out);
        cache_order_.push_back(key_);
    }
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

namespace {

// A bound on how much one byte can lengthen the shortest completion: opening a value
// whose shortest form is the longest, a property key with its value, an escape. Used to
// skip the per-token completion check while far from max_tokens.
uint64_t growth_per_byte(const JsonGrammar& g) {
    uint64_t most = 0;
    for (size_t i = 0; i < g.size(); ++i) {
        const JsonGrammar::Node& n = g.node(uint32_t(i));
        most = std::max<uint64_t>(most, n.fin_len);
        for (const std::string& l : n.literals) most = std::max<uint64_t>(most, l.size());
        uint64_t key = 0;
        for (const auto& p : n.props) key = std::max<uint64_t>(key, p.key_json.size());
        most = std::max<uint64_t>(most, key + n.fin_len);
    }
    return 2 * most + 8;
}

}  // namespace

JsonConstraint::JsonConstraint(std::shared_ptr<const JsonTokenTables> tables,
                               std::shared_ptr<const JsonGrammar> grammar,
                               std::vector<int32_t> end_tokens)
    : masker_(tables, grammar),
      matcher_(grammar),
      end_tokens_(std::move(end_tokens)),
      allowed_(tables->tokens().n_vocab()) {
    precise_window_ =
        growth_per_byte(*grammar) * std::max<size_t>(1, tables->tokens().max_token_bytes());
}

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
            const uint32_t cap =
                budget - 2 < left + precise_window_ ? uint32_t(budget - 2) : UINT32_MAX;
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
