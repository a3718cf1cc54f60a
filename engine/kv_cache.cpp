// Page pool and per-sequence page tables of the latent cache (see kv_cache.h).
#include "engine/kv_cache.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <string>

namespace latent::engine {

namespace {
std::atomic<uint64_t> next_cache_id{1};
}

LatentCache::LatentCache(const Config& config)
    : cfg_(config),
      page_floats_(static_cast<uint64_t>(config.n_layer) * config.page_tokens *
                   (config.kv_lora_rank + config.n_rot)),
      id_(next_cache_id.fetch_add(1)) {}

Expected<int32_t> LatentCache::alloc_page() {
    if (!free_.empty()) {
        const int32_t p = free_.back();
        free_.pop_back();
        refs_[p] = 1;
        touch(p);
        ++in_use_;
        return p;
    }
    if ((pages_.size() + 1) * page_bytes() > cfg_.max_bytes) {
        // Pages another owner holds only as a cache can be given back for this one.
        if (reclaim && reclaim() && !free_.empty()) return alloc_page();
    }
    if ((pages_.size() + 1) * page_bytes() > cfg_.max_bytes)
        return make_error("latent cache is full (" + std::to_string(cfg_.max_bytes >> 20) +
                          " MiB budget, " + std::to_string(pages_.size()) + " pages)");
    pages_.push_back(std::make_unique<float[]>(page_floats_));
    refs_.push_back(1);
    gens_.push_back(++last_gen_);
    ++in_use_;
    return static_cast<int32_t>(pages_.size() - 1);
}

Expected<int32_t> LatentCache::copy_page(int32_t page) {
    auto p = alloc_page();
    if (!p) return p;
    std::copy_n(pages_[page].get(), page_floats_, pages_[*p].get());
    return p;
}

void LatentCache::retain(int32_t page) {
    assert(refs_[page] > 0);
    ++refs_[page];
}

void LatentCache::release(int32_t page) {
    assert(refs_[page] > 0);
    if (--refs_[page] == 0) {
        free_.push_back(page);
        --in_use_;
    }
}

SeqCache::~SeqCache() { truncate(0); }

Status SeqCache::reserve(int32_t n) {
    const int32_t pt = static_cast<int32_t>(cache_->config().page_tokens);
    if (n > 0 && n_tokens_ % pt != 0) {
        int32_t& last = pages_[static_cast<size_t>(n_tokens_ / pt)];
        if (cache_->ref_count(last) > 1) {
            auto copy = cache_->copy_page(last);
            if (!copy) return copy.error();
            cache_->release(last);
            last = *copy;
        }
    }
    const int32_t need = (n_tokens_ + n + pt - 1) / pt;
    while (static_cast<int32_t>(pages_.size()) < need) {
        auto p = cache_->alloc_page();
        if (!p) return p.error();
        pages_.push_back(*p);
    }
    return Status::success();
}

void SeqCache::adopt(std::span<const int32_t> pages, int32_t n_tokens) {
    assert(n_tokens_ == 0 && pages_.empty());
    const int32_t pt = static_cast<int32_t>(cache_->config().page_tokens);
    const size_t need = static_cast<size_t>((n_tokens + pt - 1) / pt);
    assert(pages.size() >= need);
    for (size_t i = 0; i < need; ++i) {
        cache_->retain(pages[i]);
        pages_.push_back(pages[i]);
    }
    n_tokens_ = n_tokens;
}

void SeqCache::truncate(int32_t n) {
    n = std::max(n, 0);
    const int32_t pt = static_cast<int32_t>(cache_->config().page_tokens);
    if (n < n_tokens_) {
        n_tokens_ = n;
        // The kept part of a page cut inside will be written over: its copies are stale.
        if (n % pt != 0) cache_->touch(pages_[static_cast<size_t>(n / pt)]);
    }
    const size_t keep = static_cast<size_t>((n_tokens_ + pt - 1) / pt);
    while (pages_.size() > keep) {
        cache_->release(pages_.back());
        pages_.pop_back();
    }
}

}  // namespace latent::engine
