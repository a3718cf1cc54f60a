// RepackedWeights: the fast CPU pass's copy of a model's Q4_0 and Q8_0 matrices in the R16
// layout of kernels.h (rows interleaved in groups of 16), made once per model at load.
// - Which: every matrix the pass multiplies by (attention, feed-forward, experts, router,
//   output head, MTP projections) whose type the kernel table takes in R16 and whose shape
//   allows it (cpu::r16_shape); the token embedding (read one row at a time) and the rest
//   stay in the file's mapping. A matrix's copy is found by its address in the mapping.
// - Memory: the copies live in one anonymous mapping (transparent huge pages where the
//   system allows); after each tensor is copied its pages of the file mapping are dropped
//   (madvise MADV_DONTNEED: they stay in the page cache and fault back in if anything still
//   reads them there), so the process holds about the file's size, not twice it.
// - Not made when the copy would not fit in the memory the system has available
//   (MemAvailable: the file is then read in place, paged from disk as needed), when the
//   table has no R16 kernels, with the tile matmul (AMX: it reads the file's layout), in
//   precise mode, or with LATENT_CPU_REPACK=0 in the environment (in place from the mapping).
//
// Thread safety: build() once (it uses the pool), then find() from any thread.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "engine/cpu/kernels.h"
#include "engine/cpu/thread_pool.h"
#include "engine/model.h"

namespace latent::engine::cpu {

class RepackedWeights {
public:
    RepackedWeights() = default;
    ~RepackedWeights();
    RepackedWeights(const RepackedWeights&) = delete;
    RepackedWeights& operator=(const RepackedWeights&) = delete;

    // Whether a backend with this table and mode repacks at all (LATENT_CPU_REPACK=0: no).
    static bool wanted(const Kernels& k, bool precise);

    // Copies the model's eligible matrices (replacing what an earlier build made) when
    // they fit in 7/8 of `available` bytes (the system's MemAvailable, available_memory()); when
    // they do not, nothing is copied and the pass reads the file in place (skipped() true).
    void build(const Model& model, const Kernels& k, ThreadPool& pool, uint64_t available);
    // MemAvailable of /proc/meminfo in bytes (what can be had without swapping, the page
    // cache included); UINT64_MAX where it cannot be read.
    static uint64_t available_memory();

    // The R16 copy of the matrix that starts at `matrix` in the file's mapping, or null.
    const uint8_t* find(const uint8_t* matrix) const {
        if (of_.empty()) return nullptr;
        auto it = of_.find(matrix);
        return it == of_.end() ? nullptr : it->second;
    }

    uint64_t bytes() const { return bytes_; }
    int64_t matrices() const { return static_cast<int64_t>(of_.size()); }
    double seconds() const { return seconds_; }
    bool skipped() const { return skipped_; }

private:
    void release();
    uint8_t* base_ = nullptr;
    uint64_t bytes_ = 0;
    double seconds_ = 0;
    bool skipped_ = false;
    std::unordered_map<const uint8_t*, const uint8_t*> of_;
};

}  // namespace latent::engine::cpu
