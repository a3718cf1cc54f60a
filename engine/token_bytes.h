// TokenBytes: what each token of a vocabulary writes, as bytes, for grammars that mask
// logits (json_constraint.h): every token's byte string, which tokens may never appear in
// generated text (special and control tokens, and tokens whose bytes spell one), and a
// byte trie over the others so that a mask walks shared prefixes once. Also TokenSet, a
// bitset over token ids, and ByteTrie. It does not tokenize or match grammars.
//
// Thread safety: immutable after create(); build one per Tokenizer and share it
// (std::shared_ptr<const TokenBytes>) between any number of threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace latent::engine {

class Tokenizer;

// A set of token ids in [0, size), one bit each.
class TokenSet {
public:
    explicit TokenSet(int32_t size = 0) : size_(size), words_((size_t(size) + 63) / 64, 0) {}
    int32_t size() const { return size_; }
    void clear() { std::fill(words_.begin(), words_.end(), 0); }
    void set(int32_t id) { words_[size_t(id) >> 6] |= uint64_t(1) << (id & 63); }
    bool test(int32_t id) const { return (words_[size_t(id) >> 6] >> (id & 63)) & 1; }
    bool any() const;
    size_t count() const;
    // this |= other (same size).
    void add(const TokenSet& other);
    bool operator==(const TokenSet& other) const { return words_ == other.words_; }
    const std::vector<uint64_t>& words() const { return words_; }

private:
    int32_t size_ = 0;
    std::vector<uint64_t> words_;
};

// Token ids by their bytes. Node 0 is the root (the empty string); a node's children are
// contiguous and sorted by byte; nodes are numbered in depth-first order.
struct ByteTrie {
    struct Node {
        uint32_t first_child = 0;  // index into nodes
        uint32_t n_children = 0;
        uint32_t first_token = 0;  // index into tokens: the ids whose bytes end here
        uint32_t n_tokens = 0;
    };
    std::vector<Node> nodes;
    std::vector<uint8_t> byte;  // byte[i]: the byte on the edge into node i
    std::vector<int32_t> tokens;

    // Builds from (bytes, id) pairs; empty byte strings are left out.
    static ByteTrie build(std::vector<std::pair<std::string_view, int32_t>> entries);
};

class TokenBytes {
public:
    // From a tokenizer: token_to_piece() of every id; special = CONTROL, USER_DEFINED or
    // UNKNOWN tokens, and any token whose bytes equal the text of one of those (it would
    // read back as that special token).
    static std::shared_ptr<const TokenBytes> create(const Tokenizer& tokenizer);
    // From explicit tables (tests): pieces[id], special[id].
    static std::shared_ptr<const TokenBytes> create(std::vector<std::string> pieces,
                                                    std::vector<bool> special);

    int32_t n_vocab() const { return int32_t(pieces_.size()); }
    const std::string& bytes(int32_t id) const { return pieces_[size_t(id)]; }
    bool is_special(int32_t id) const { return special_[size_t(id)]; }
    // May appear in generated text: not special, and writes at least one byte.
    bool is_text(int32_t id) const { return !special_[size_t(id)] && !pieces_[size_t(id)].empty(); }
    // Over the text tokens.
    const ByteTrie& trie() const { return trie_; }
    size_t max_token_bytes() const { return max_bytes_; }

private:
    std::vector<std::string> pieces_;
    std::vector<bool> special_;
    ByteTrie trie_;
    size_t max_bytes_ = 0;
};

}  // namespace latent::engine
