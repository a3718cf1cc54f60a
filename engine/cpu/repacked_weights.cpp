// RepackedWeights (see repacked_weights.h).
#include "engine/cpu/repacked_weights.h"

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace latent::engine::cpu {

bool RepackedWeights::wanted(const Kernels& k, bool precise) {
    const char* e = std::getenv("LATENT_CPU_REPACK");
    if (e && std::strcmp(e, "0") == 0) return false;
    return k.matmul_r16 && !k.matmul_packed && !precise;
}

RepackedWeights::~RepackedWeights() { release(); }

void RepackedWeights::release() {
    if (base_) munmap(base_, bytes_);
    base_ = nullptr;
    bytes_ = 0;
    of_.clear();
}

uint64_t RepackedWeights::available_memory() {
    std::FILE* f = std::fopen("/proc/meminfo", "r");
    if (!f) return UINT64_MAX;
    char line[256];
    uint64_t kb = 0;
    bool found = false;
    while (!found && std::fgets(line, sizeof line, f))
        found = std::sscanf(line, "MemAvailable: %" SCNu64 " kB", &kb) == 1;
    std::fclose(f);
    return found ? kb * 1024 : UINT64_MAX;
}

void RepackedWeights::build(const Model& model, const Kernels& k, ThreadPool& pool,
                            uint64_t available) {
    release();
    skipped_ = false;
    const auto start = std::chrono::steady_clock::now();
    // The matrices the pass multiplies by (see the header), each eligible one once.
    std::vector<const Tensor*> tensors;
    auto add = [&](const Tensor& t) {
        if (!t || !k.takes_r16(t.type) || !cpu::r16_shape(t.type, t.ne[1], t.ne[0])) return;
        for (const Tensor* seen : tensors)
            if (seen->data == t.data) return;  // a head shared by two names
        tensors.push_back(&t);
    };
    const Weights& w = model.weights();
    add(w.output);
    for (const LayerWeights& l : w.layers) {
        for (const Tensor* t :
             {&l.attn_q,        &l.attn_q_a,       &l.attn_q_b,      &l.attn_kv_a_mqa,
              &l.attn_kv_b,     &l.attn_k_b,       &l.attn_v_b,      &l.attn_output,
              &l.ffn_gate,      &l.ffn_up,         &l.ffn_down,      &l.ffn_gate_inp,
              &l.ffn_gate_exps, &l.ffn_up_exps,    &l.ffn_down_exps, &l.ffn_gate_shexp,
              &l.ffn_up_shexp,  &l.ffn_down_shexp, &l.nextn_eh_proj, &l.nextn_shared_head_head})
            add(*t);
    }
    uint64_t total = 0;
    for (const Tensor* t : tensors) total += t->row_size() * static_cast<uint64_t>(t->rows());
    if (total == 0) return;
    if (total > available - available / 8) {  // an eighth left for everything else
        // The file's pages stay where they are, read in place.
        skipped_ = true;
        return;
    }
    void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;  // no memory for the copy: the pass reads the file in place
    madvise(p, total, MADV_HUGEPAGE);
    base_ = static_cast<uint8_t*>(p);
    bytes_ = total;
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    uint64_t at = 0;
    for (const Tensor* t : tensors) {
        const uint64_t rb = t->row_size();
        const int64_t rows = t->ne[1], mats = t->ne[2] * t->ne[3];
        uint8_t* dst = base_ + at;
        // Matrices split over the pool, groups of 16 rows within them.
        const int64_t groups = rows / 16;
        pool.parallel_chunks(mats * groups, 16, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) {
                const int64_t m = i / groups, g = i % groups;
                const uint64_t off = (static_cast<uint64_t>(m) * rows + g * 16) * rb;
                repack_r16(t->type, t->data + off, rb, 16, t->ne[0], dst + off);
            }
        });
        for (int64_t m = 0; m < mats; ++m)
            of_[t->matrix(m)] = dst + static_cast<uint64_t>(m) * rows * rb;
        // The file's pages of this tensor, whole pages only.
        const uint64_t size = rb * static_cast<uint64_t>(t->rows());
        const uint64_t from = (reinterpret_cast<uint64_t>(t->data) + page - 1) & ~(page - 1);
        const uint64_t to = (reinterpret_cast<uint64_t>(t->data) + size) & ~(page - 1);
        if (to > from) madvise(reinterpret_cast<void*>(from), to - from, MADV_DONTNEED);
        at += size;
    }
    mprotect(base_, bytes_, PROT_READ);
    seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace latent::engine::cpu
