// PrefixCache: the radix tree over latent-cache pages (see prefix_cache.h).
#include "engine/prefix_cache.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "engine/disk_cache.h"
#include "engine/session.h"

namespace latent::engine {

uint64_t page_chain_root(uint32_t page_tokens) {
    const uint64_t seed[2] = {0x6C6174656E746B76ull, page_tokens};  // "latentkv"
    return hash_bytes(seed, sizeof(seed));
}

uint64_t page_chain_hash(uint64_t parent, std::span<const int32_t> tokens) {
    return hash_bytes(tokens.data(), tokens.size_bytes(), parent);
}

uint64_t default_prefix_cache_budget() {
    uint64_t avail_kb = 0;
    std::ifstream in("/proc/meminfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("MemAvailable:", 0) == 0) {
            std::istringstream(line.substr(13)) >> avail_kb;
            break;
        }
    }
    return std::max<uint64_t>(avail_kb * 1024 / 4, 64ull << 20);
}

PrefixCache::PrefixCache(LatentCache& cache, Options options)
    : cache_(&cache),
      page_tokens_(cache.config().page_tokens),
      budget_(options.budget_bytes ? options.budget_bytes : default_prefix_cache_budget()),
      disk_(options.disk) {
    root_.key = page_chain_root(page_tokens_);
    cache_->reclaim = [this] { return evict_one(false) || evict_one(true); };
}

PrefixCache::~PrefixCache() {
    cache_->reclaim = nullptr;
    flush_to_disk();
    // Release every page, leaves first.
    while (!root_.children.empty()) {
        Node* n = root_.children.back().get();
        while (!n->children.empty()) n = n->children.back().get();
        remove_leaf(n);
    }
}

PrefixCache::Node* PrefixCache::add_child(Node* parent, std::span<const int32_t> tokens,
                                          int32_t page) {
    auto child = std::make_unique<Node>();
    child->parent = parent;
    child->tokens.assign(tokens.begin(), tokens.end());
    child->page = page;
    child->key = page_chain_hash(parent->key, tokens);
    child->last_use = ++clock_;
    cache_->retain(page);
    ++nodes_;
    parent->children.push_back(std::move(child));
    return parent->children.back().get();
}

PrefixCache::Match PrefixCache::attach(std::span<const int32_t> tokens, SeqCache& seq,
                                       int32_t max_tokens) {
    Match m;
    size_t limit = tokens.size();
    if (max_tokens >= 0) limit = std::min(limit, static_cast<size_t>(max_tokens));
    std::vector<int32_t> pages;  // each retained here while the walk may allocate
    Node* node = &root_;
    size_t pos = 0;
    const uint64_t now = ++clock_;
    while (pos < limit) {
        const auto rest = tokens.subspan(pos, limit - pos);
        Node* best = nullptr;
        int32_t best_len = 0;
        auto scan = [&] {
            best = nullptr, best_len = 0;
            for (const auto& c : node->children) {
                const int32_t len = common_prefix(c->tokens, rest);
                if (len > best_len) best = c.get(), best_len = len;
            }
        };
        scan();
        if (!(best && full(*best) && best_len == static_cast<int32_t>(page_tokens_)) && disk_ &&
            rest.size() >= page_tokens_) {
            // A whole page missing in RAM may be on disk.
            const auto want = rest.first(page_tokens_);
            const uint64_t key = page_chain_hash(node->key, want);
            if (disk_->contains(key)) {
                auto page = cache_->alloc_page();
                if (page) {
                    if (disk_->load(key, node->key, want, cache_->page_data(*page))) {
                        best = add_child(node, want, *page);
                        best->on_disk = true;
                        best_len = static_cast<int32_t>(page_tokens_);
                        ++counters_.disk_loads;
                        m.from_disk += best_len;
                    }
                    cache_->release(*page);  // the node holds its own reference
                }
                // The allocation may have evicted the leaf found above: look again.
                if (best_len < static_cast<int32_t>(page_tokens_)) scan();
            }
        }
        if (!best) break;
        best->last_use = now;
        cache_->retain(best->page);
        pages.push_back(best->page);
        pos += static_cast<size_t>(best_len);
        if (!full(*best) || best_len < static_cast<int32_t>(page_tokens_)) break;
        node = best;
    }
    seq.adopt(pages, static_cast<int32_t>(pos));
    for (int32_t p : pages) cache_->release(p);
    m.n_tokens = static_cast<int32_t>(pos);
    return m;
}

int32_t PrefixCache::peek(std::span<const int32_t> tokens) const {
    const Node* node = &root_;
    size_t pos = 0;
    while (pos < tokens.size()) {
        const auto rest = tokens.subspan(pos);
        const Node* best = nullptr;
        int32_t best_len = 0;
        for (const auto& c : node->children) {
            const int32_t len = common_prefix(c->tokens, rest);
            if (len > best_len) best = c.get(), best_len = len;
        }
        if (!best) break;
        pos += static_cast<size_t>(best_len);
        if (!full(*best) || best_len < static_cast<int32_t>(page_tokens_)) break;
        node = best;
    }
    return static_cast<int32_t>(pos);
}

void PrefixCache::insert(std::span<const int32_t> tokens, const SeqCache& seq) {
    const size_t n = std::min(tokens.size(), static_cast<size_t>(seq.n_tokens()));
    Node* node = &root_;
    const uint64_t now = ++clock_;
    for (size_t at = 0, i = 0; at < n; at += page_tokens_, ++i) {
        const auto chunk = tokens.subspan(at, std::min<size_t>(page_tokens_, n - at));
        const int32_t page = seq.pages()[i];
        Node* next = nullptr;
        bool covered = false;
        for (const auto& c : node->children) {
            const size_t len = static_cast<size_t>(common_prefix(c->tokens, chunk));
            if (len == chunk.size() && len == c->tokens.size()) {
                next = c.get();  // the same page content is cached already
                break;
            }
            if (len == chunk.size()) covered = true;  // a longer node has all of chunk
            if (len == c->tokens.size() && !full(*c) && !next) next = c.get();  // to extend
        }
        if (next && next->tokens.size() < chunk.size()) {
            // A partial leaf whose tokens start this chunk: it grows into this page.
            cache_->retain(page);
            cache_->release(next->page);
            next->page = page;
            next->tokens.assign(chunk.begin(), chunk.end());
            next->key = page_chain_hash(node->key, chunk);
            next->on_disk = false;
        } else if (!next) {
            if (covered) break;
            next = add_child(node, chunk, page);
        }
        next->last_use = now;
        if (chunk.size() < page_tokens_) break;
        node = next;
    }
    trim();
}

int32_t PrefixCache::pin(const std::string& owner, std::span<const int32_t> tokens) {
    release(owner);
    std::vector<Node*>& list = pins_[owner];
    Node* node = &root_;
    size_t pos = 0;
    while (pos < tokens.size()) {
        const auto rest = tokens.subspan(pos);
        Node* best = nullptr;
        int32_t best_len = 0;
        for (const auto& c : node->children) {
            const int32_t len = common_prefix(c->tokens, rest);
            if (len > best_len) best = c.get(), best_len = len;
        }
        if (!best) break;
        ++best->pins;
        list.push_back(best);
        spill(*best);  // an open file's prefix survives a crash and a restart
        pos += static_cast<size_t>(best_len);
        if (!full(*best) || best_len < static_cast<int32_t>(page_tokens_)) break;
        node = best;
    }
    return static_cast<int32_t>(pos);
}

void PrefixCache::release(const std::string& owner) {
    auto it = pins_.find(owner);
    if (it == pins_.end()) return;
    for (Node* n : it->second) --n->pins;
    pins_.erase(it);
}

void PrefixCache::leaves(Node* n, bool allow_pinned, std::vector<Node*>& out) const {
    for (const auto& c : n->children) {
        if (!c->children.empty()) {
            leaves(c.get(), allow_pinned, out);
        } else if (cache_->ref_count(c->page) == 1 && (allow_pinned || c->pins == 0)) {
            out.push_back(c.get());
        }
    }
}

void PrefixCache::spill(Node& n) {
    if (!disk_ || n.on_disk || !full(n)) return;
    if (disk_->store(n.key, n.parent->key, n.tokens, cache_->page_data(n.page))) {
        n.on_disk = true;
        ++counters_.spills;
    }
}

void PrefixCache::remove_leaf(Node* n) {
    if (n->pins > 0) {
        for (auto& [owner, list] : pins_) std::erase(list, n);
    }
    cache_->release(n->page);
    --nodes_;
    auto& siblings = n->parent->children;
    for (auto it = siblings.begin(); it != siblings.end(); ++it) {
        if (it->get() == n) {
            siblings.erase(it);
            break;
        }
    }
}

bool PrefixCache::evict_one(bool allow_pinned) {
    std::vector<Node*> cand;
    leaves(&root_, allow_pinned, cand);
    if (cand.empty()) return false;
    // Unpinned before pinned, then least recently used.
    Node* victim = *std::min_element(cand.begin(), cand.end(), [](Node* a, Node* b) {
        return std::pair(a->pins > 0, a->last_use) < std::pair(b->pins > 0, b->last_use);
    });
    spill(*victim);
    remove_leaf(victim);
    ++counters_.evictions;
    return true;
}

void PrefixCache::trim() {
    while (nodes_ * cache_->page_bytes() > budget_) {
        if (!evict_one(false) && !evict_one(true)) break;
    }
}

void PrefixCache::flush_to_disk() {
    if (!disk_) return;
    std::vector<Node*> stack{&root_};
    while (!stack.empty()) {
        Node* n = stack.back();
        stack.pop_back();
        if (n != &root_) spill(*n);
        for (const auto& c : n->children) stack.push_back(c.get());
    }
}

PrefixCache::Stats PrefixCache::stats() const {
    Stats s = counters_;
    s.nodes = nodes_;
    s.bytes = nodes_ * cache_->page_bytes();
    std::vector<const Node*> stack{&root_};
    while (!stack.empty()) {
        const Node* n = stack.back();
        stack.pop_back();
        if (n->pins > 0) ++s.pinned_nodes;
        for (const auto& c : n->children) stack.push_back(c.get());
    }
    return s;
}

}  // namespace latent::engine
