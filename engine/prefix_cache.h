// PrefixCache: a radix tree over pages of the latent cache, keyed by token ids from
// position 0 (SGLang's RadixAttention, page-granular). A request attaches the longest
// cached prefix of its prompt to its sequence (sharing the pages, no copy) and inserts
// its own pages when done, so the next prompt that starts the same way computes only
// what differs. It does not run the model: the scheduler (or a session) computes the
// rest and calls insert().
//
// Each node holds one page and the 1..page_tokens tokens whose rows that page holds;
// full nodes may have children, partial ones are leaves. A partial match of a node (the
// prompt shares only the first k tokens of its page) is attached too: the sequence's
// first write into that page copies it (SeqCache's copy-on-write).
//
// Eviction: a leaf whose page nobody else holds (ref count 1) may go, least recently
// used first, when the cached bytes pass the budget or when LatentCache runs out of
// pages (its `reclaim` hook); leaves pinned by an owner (an open document's URI) go
// only when nothing else can. An evicted full page is written to the DiskCache, when
// there is one, and found there again by a later lookup.
//
// Thread safety: none; the owner of the LatentCache (the scheduler's thread) calls in.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/kv_cache.h"

namespace latent::engine {

class DiskCache;

// The hash chain that names pages: a page's key is hash(parent key, its tokens), the
// root's key depends only on the page size. Equal keys mean equal token prefixes (up to
// a 64-bit collision, which the disk tier guards against by storing the page's tokens).
uint64_t page_chain_root(uint32_t page_tokens);
uint64_t page_chain_hash(uint64_t parent, std::span<const int32_t> tokens);

// A quarter of the memory the kernel says is available (MemAvailable), at least 64 MiB.
uint64_t default_prefix_cache_budget();

class PrefixCache {
public:
    struct Options {
        uint64_t budget_bytes = 0;  // RAM for cached pages; 0: default_prefix_cache_budget()
        DiskCache* disk = nullptr;  // spill tier (borrowed, outlives this); null: none
    };
    struct Stats {
        uint64_t nodes = 0;         // pages the tree holds
        uint64_t pinned_nodes = 0;  // of which pinned by some owner
        uint64_t bytes = 0;         // nodes x page bytes
        uint64_t evictions = 0;     // pages dropped from RAM
        uint64_t spills = 0;        // of which written to disk first
        uint64_t disk_loads = 0;    // pages read back from disk
    };
    struct Match {
        int32_t n_tokens = 0;   // tokens attached to the sequence
        int32_t from_disk = 0;  // of which loaded from the disk tier for this match
    };

    // Installs itself as cache.reclaim (removed again by the destructor).
    PrefixCache(LatentCache& cache, Options options);
    // Writes every full page not yet on disk (so a restart finds them) and gives all
    // pages back.
    ~PrefixCache();
    PrefixCache(const PrefixCache&) = delete;
    PrefixCache& operator=(const PrefixCache&) = delete;

    // Attaches to the empty `seq` the longest cached prefix of tokens[0, max_tokens)
    // (max_tokens < 0: all), from RAM or else from disk, and marks it recently used.
    Match attach(std::span<const int32_t> tokens, SeqCache& seq, int32_t max_tokens = -1);
    // The cached length of tokens' prefix in RAM, touching nothing (tests, warm-up).
    int32_t peek(std::span<const int32_t> tokens) const;

    // Records the rows of tokens[0, min(tokens.size(), seq.n_tokens())) that `seq` holds,
    // sharing its pages (no copy), then evicts down to the budget. `seq` must hold exactly
    // these tokens in order.
    void insert(std::span<const int32_t> tokens, const SeqCache& seq);

    // Pins the cached nodes on tokens' path for `owner`, replacing its previous pin, and
    // writes their whole pages to the disk tier at once (not only when evicted).
    // Returns the pinned length in tokens.
    int32_t pin(const std::string& owner, std::span<const int32_t> tokens);
    // Drops `owner`'s pin (unknown owners are ignored).
    void release(const std::string& owner);

    // Evicts least recently used unreferenced leaves until the cached bytes fit the
    // budget (unpinned first).
    void trim();
    // Evicts one leaf (unpinned first, pinned if allowed); false if none can go.
    bool evict_one(bool allow_pinned);
    // Writes every full page not yet on disk to the disk tier (no-op without one).
    void flush_to_disk();

    Stats stats() const;
    uint64_t budget_bytes() const { return budget_; }
    LatentCache& cache() const { return *cache_; }

private:
    struct Node {
        Node* parent = nullptr;
        std::vector<int32_t> tokens;  // 1..page_tokens (root: none)
        int32_t page = -1;
        uint64_t key = 0;  // hash chain through this node
        uint64_t last_use = 0;
        int32_t pins = 0;
        bool on_disk = false;
        std::vector<std::unique_ptr<Node>> children;
    };

    bool full(const Node& n) const { return n.tokens.size() == page_tokens_; }
    Node* add_child(Node* parent, std::span<const int32_t> tokens, int32_t page);
    void spill(Node& n);
    void remove_leaf(Node* n);
    // Collects the evictable leaves (ref count 1, no children).
    void leaves(Node* n, bool allow_pinned, std::vector<Node*>& out) const;

    LatentCache* cache_;
    uint32_t page_tokens_;
    uint64_t budget_;
    DiskCache* disk_;
    Node root_;
    uint64_t clock_ = 0;
    uint64_t nodes_ = 0;
    Stats counters_;
    std::map<std::string, std::vector<Node*>> pins_;
};

}  // namespace latent::engine
