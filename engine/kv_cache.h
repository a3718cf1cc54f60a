// LatentCache: MLA's compressed attention cache in fixed-size pages. Per token and
// layer it keeps only c_kv (kv_lora_rank values, after kv_a_norm) and k_pe (n_rot
// values, already rotated for the token's absolute position) — 576 values for
// DeepSeek's shapes, instead of H x (n + r + v) for a decompressed cache.
// Pages are reference-counted so that the prefix cache (a radix tree over pages) can
// share a prompt's pages between sessions; this file does not know about prefixes.
//
// Page layout (float32): [layer][slot in page][c_kv (L) | k_pe (r)].
//
// Thread safety: none; the owner (one session, or the scheduler) serializes access.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "engine/expected.h"

namespace latent::engine {

class LatentCache {
public:
    struct Config {
        uint32_t n_layer = 0;
        uint32_t kv_lora_rank = 0;        // L
        uint32_t n_rot = 0;               // r
        uint32_t page_tokens = 64;        // tokens per page
        uint64_t max_bytes = 8ull << 30;  // page memory budget; alloc fails past it
    };
    explicit LatentCache(const Config& config);

    const Config& config() const { return cfg_; }
    uint32_t row_width() const { return cfg_.kv_lora_rank + cfg_.n_rot; }
    uint64_t page_bytes() const { return page_floats_ * sizeof(float); }
    uint64_t pages_in_use() const { return in_use_; }
    uint64_t bytes_in_use() const { return in_use_ * page_bytes(); }
    // Page memory allocated: pages in use and free pages kept for reuse.
    uint64_t pool_bytes() const { return pages_.size() * page_bytes(); }
    // No free page and no room for another under the budget (as alloc_page found it last:
    // the reclaim hook is not asked).
    bool full() const {
        return free_.empty() && (pages_.size() + 1) * page_bytes() > cfg_.max_bytes;
    }

    // A fresh page with reference count 1, or an error when the budget is spent (after
    // asking `reclaim`, when set, to free pages: the prefix cache evicts unused ones).
    Expected<int32_t> alloc_page();
    // A fresh page holding a copy of `page` (copy-on-write of a shared page).
    Expected<int32_t> copy_page(int32_t page);
    void retain(int32_t page);
    void release(int32_t page);  // frees the page when the count reaches 0
    uint32_t ref_count(int32_t page) const { return refs_[page]; }

    // Copies of pages kept elsewhere (the CUDA backend's device pages) are named by
    // (cache id, page, generation). The id is unique per LatentCache in the process; a
    // page's generation changes whenever rows it held may be overwritten: when it is
    // allocated (or copied into) and when a sequence is cut back to inside it. Rows
    // written into empty slots leave it as it is.
    uint64_t id() const { return id_; }
    uint64_t generation(int32_t page) const { return gens_[page]; }
    void touch(int32_t page) { gens_[page] = ++last_gen_; }

    // The whole page, F32 [n_layer][page_tokens][row_width()], for export and import
    // (the prefix cache's disk tier).
    uint64_t page_floats() const { return page_floats_; }
    float* page_data(int32_t page) { return pages_[page].get(); }
    const float* page_data(int32_t page) const { return pages_[page].get(); }

    // Called by alloc_page() when the budget is spent: frees at least one page and returns
    // true, or returns false when nothing can be freed. It must not allocate pages.
    std::function<bool()> reclaim;

    // The cache row (c_kv | k_pe) of one token slot in a page for one layer.
    float* row(int32_t page, uint32_t slot, uint32_t layer) {
        return pages_[page].get() +
               (static_cast<uint64_t>(layer) * cfg_.page_tokens + slot) * row_width();
    }
    const float* row(int32_t page, uint32_t slot, uint32_t layer) const {
        return const_cast<LatentCache*>(this)->row(page, slot, layer);
    }

private:
    Config cfg_;
    uint64_t page_floats_;
    std::vector<std::unique_ptr<float[]>> pages_;
    std::vector<uint32_t> refs_;
    std::vector<uint64_t> gens_;
    std::vector<int32_t> free_;
    uint64_t in_use_ = 0;
    uint64_t id_;
    uint64_t last_gen_ = 0;
};

// One sequence's view of the cache: its page table and how many tokens it holds.
// Owns one reference on each page it lists.
class SeqCache {
public:
    explicit SeqCache(LatentCache& cache) : cache_(&cache) {}
    ~SeqCache();
    SeqCache(const SeqCache&) = delete;
    SeqCache& operator=(const SeqCache&) = delete;

    LatentCache& cache() const { return *cache_; }
    int32_t n_tokens() const { return n_tokens_; }
    const std::vector<int32_t>& pages() const { return pages_; }

    // Makes room for `n` more tokens (allocating pages); positions n_tokens()..+n. A
    // partly filled last page that others share (ref count > 1) is copied first, so
    // writing never changes another sequence's rows (copy-on-write).
    Status reserve(int32_t n);
    // Starts an empty sequence from shared pages holding `n_tokens` tokens (the prefix
    // cache's match); takes one reference on each page. Requires n_tokens() == 0 and
    // enough pages for n_tokens.
    void adopt(std::span<const int32_t> pages, int32_t n_tokens);
    // Marks `n` more tokens as written (after the forward pass filled their rows).
    void commit(int32_t n) { n_tokens_ += n; }
    // Drops tokens at positions >= n; releases pages no longer needed.
    void truncate(int32_t n);

    float* row(int32_t pos, uint32_t layer) {
        const uint32_t pt = cache_->config().page_tokens;
        return cache_->row(pages_[pos / pt], pos % pt, layer);
    }
    const float* row(int32_t pos, uint32_t layer) const {
        return const_cast<SeqCache*>(this)->row(pos, layer);
    }

private:
    LatentCache* cache_;
    std::vector<int32_t> pages_;
    int32_t n_tokens_ = 0;
};

}  // namespace latent::engine
