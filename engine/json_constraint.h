// JSON output for `latent serve` (response_format json_object / json_schema): a
// TokenConstraint that lets a model sample only tokens whose bytes keep the output a
// prefix of a document the grammar accepts, and an end token only once the document is
// complete, finishing it before max_tokens runs out. Built from three shared, immutable
// parts: the vocabulary's bytes (token_bytes.h), per-vocabulary tables for JSON
// (JsonTokenTables), and a compiled grammar (json_schema.h). It does not parse requests,
// sample, or detokenize.
//
// The parts below the constraint are public for composing a JSON value inside a larger
// format (DeepSeek's tool-call tokens around a JSON arguments object):
//
//   JsonMatcher m(grammar);                  // the arguments' grammar
//   JsonMasker masker(tables, grammar);      // one per request
//   TokenSet allowed(n_vocab);
//   masker.allowed(m.state(), allowed);      // normal tokens that keep the value valid
//   bool done = m.is_closed();               // value complete, only whitespace may follow:
//                                            // now allow the tool-call end token instead
//   m.feed(token_bytes->bytes(token));       // after sampling
//
// Thread safety: JsonTokenTables is immutable and shared by any number of threads. A
// JsonMasker or JsonConstraint belongs to one request and is used by one thread at a time.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/json_matcher.h"
#include "engine/json_schema.h"
#include "engine/token_bytes.h"
#include "engine/token_constraint.h"

namespace latent::engine {

// Per vocabulary, built once: the tokens that are plain string content (no quote,
// backslash or control byte, whole valid UTF-8 characters only), which leave a matcher
// inside a string exactly where it was, and a trie over what the other text tokens write
// after their plain prefix (which changes nothing either). Inside a string a mask takes
// the first set whole and walks only the small trie.
class JsonTokenTables {
public:
    static std::shared_ptr<const JsonTokenTables> create(std::shared_ptr<const TokenBytes> tokens);

    const TokenBytes& tokens() const { return *tokens_; }
    const std::shared_ptr<const TokenBytes>& tokens_ptr() const { return tokens_; }
    const TokenSet& plain_string() const { return plain_string_; }
    // Keyed by each token's bytes after its longest plain prefix.
    const ByteTrie& not_plain_string() const { return not_plain_string_; }

private:
    std::shared_ptr<const TokenBytes> tokens_;
    TokenSet plain_string_;
    ByteTrie not_plain_string_;
};

// Computes the tokens a matcher state allows. Keeps per-request scratch (one matcher state
// per byte of the longest token) and a small cache of masks by state.
class JsonMasker {
public:
    static constexpr size_t kCacheEntries = 32;  // 16 KiB each on a 129k vocabulary

    JsonMasker(std::shared_ptr<const JsonTokenTables> tables,
               std::shared_ptr<const JsonGrammar> grammar);

    // out = the text tokens (never special ones, never end tokens) whose whole byte string
    // `state` accepts and after which the shortest completion is at most max_completion
    // bytes. out.size() must be the vocabulary's. A cached state answers at once unless
    // one of its tokens would pass the cap, which happens only near max_tokens.
    void allowed(const JsonMatcher::State& state, TokenSet& out,
                 uint32_t max_completion = UINT32_MAX);

    // out = the text tokens whose bytes are a non-empty prefix of `text`.
    void prefix_tokens(std::string_view text, TokenSet& out) const;
    // The text token with the longest bytes that are a prefix of `text` (-1 if none):
    // greedy steps along a completion, so that it takes few tokens.
    int32_t longest_prefix_token(std::string_view text) const;

    const JsonTokenTables& tables() const { return *tables_; }

    struct Stats {
        uint64_t masks = 0, cache_hits = 0, string_fast_path = 0, trie_steps = 0;
    };
    const Stats& stats() const { return stats_; }

private:
    // What a state allows with no cap, and the longest completion any of it leaves.
    struct Entry {
        TokenSet tokens;
        uint32_t longest_after = 0;
    };
    void walk(const ByteTrie& trie, uint32_t node, size_t level, Entry& raw, TokenSet& out,
              uint32_t max_completion);

    std::shared_ptr<const JsonTokenTables> tables_;
    std::shared_ptr<const JsonGrammar> grammar_;
    std::vector<JsonMatcher::State> levels_;  // levels_[k]: the state after k bytes
    std::string key_;
    std::unordered_map<std::string, Entry> cache_;
    std::deque<std::string> cache_order_;  // oldest first
    Stats stats_;
};

class JsonConstraint final : public TokenConstraint {
public:
    // Finishing starts when `remaining` is within this many tokens of the shortest
    // completion's length in bytes (+1 for the end token). From then on the constraint
    // allows only the longest token that follows that completion (its plan), then the end
    // token: the plan takes at most as many tokens as it has bytes, so it always fits.
    static constexpr uint32_t kFinishMargin = 2;

    // end_tokens: the ids that end generation (EOS, EOT); allowed once the document is
    // complete. tables and grammar must not be null.
    JsonConstraint(std::shared_ptr<const JsonTokenTables> tables,
                   std::shared_ptr<const JsonGrammar> grammar, std::vector<int32_t> end_tokens);

    void mask(float* logits, int32_t n_vocab, int32_t remaining) override;
    void accept(int32_t token) override;

    // The document so far (bytes of the accepted tokens).
    const std::string& text() const { return text_; }
    const JsonMatcher& matcher() const { return matcher_; }
    // An end token was accepted.
    bool ended() const { return ended_; }
    // A token the mask did not allow was accepted (the caller sampled past the mask);
    // from then on only end tokens are allowed.
    bool failed() const { return failed_; }
    // Finishing: the bytes of the shortest completion still to write.
    bool finishing() const { return finishing_; }
    // The set the last mask() allowed (end tokens included).
    const TokenSet& last_allowed() const { return allowed_; }
    const JsonMasker::Stats& stats() const { return masker_.stats(); }

private:
    void allow_end_only();

    JsonMasker masker_;
    JsonMatcher matcher_;
    std::vector<int32_t> end_tokens_;
    TokenSet allowed_;
    std::string text_;
    std::string plan_;  // while finishing_: the completion's bytes not yet written
    bool finishing_ = false;
    bool ended_ = false;
    bool failed_ = false;
};

}  // namespace latent::engine
