// CpuBackend: the fast CPU forward pass (ENGINE_SPEC §3, the same math as reference.h).
// - Weights are read through the kernels of kernels.h (AVX-512 VNNI / AVX2 / portable,
//   chosen at run time), against activations quantized on the fly (Q8_0-style for
//   Q8_0/Q4_0 weights, Q8_K for K-quants, float for float weights): Q4_0/Q8_0 matrices
//   from their R16 copy made at prepare() (cpu/repacked_weights.h: rows interleaved in
//   16s, the file's pages dropped as they are copied), everything else in place from the
//   mmap.
// - Every matmul tiles tokens (a weight row is read once per tile of activation rows), and
//   several independent matmuls run as one parallel job list on one persistent pool.
// - MLA in the absorbed form for decode: W_UK folded into the query, scores against c_kv
//   and k_pe straight from the latent cache in one pass with an online softmax, W_UV
//   applied to the attended latent. Prompt chunks on the AMX tile matmul (kernels.h) that
//   are most of what they attend expand K and V per head instead (unabsorbed; see
//   MlaPrefill). Only c_kv + k_pe are cached.
// - MoE: the tokens of a batch are grouped by expert, so each routed expert's weights are
//   read once per batch; the shared experts run in the same job list as the routed ones.
// Legacy files with a single attn_kv_b get one float copy of W_UK^T per layer at first use
// (H·L·n floats); split-layout files (attn_k_b/attn_v_b) get no copy of anything.
//
// Files: backend.cpp (one call's orchestration), mla_attention.cpp, moe_ffn.cpp, logits.cpp
// (input rows and logits), pass.h (the job runner they share), repacked_weights.cpp (the
// R16 copies), kernels*.cpp.
//
// Thread safety: one forward() / forward_batch() at a time per CpuBackend (it owns the
// pool and scratch).
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "engine/backend.h"
#include "engine/cpu/kernels.h"
#include "engine/cpu/thread_pool.h"

namespace latent::engine {

class CpuBackend final : public Backend {
public:
    // threads <= 0: every CPU the process may use. kernels: nullptr = the best for this CPU.
    // precise: float activations for every weight type (see cpu::act_format); the default
    // quantizes activations to 8 bits for quantized weights, as llama.cpp does.
    // repack: copy Q4_0/Q8_0 matrices into the R16 layout at prepare() where the table
    // has kernels for it (cpu/repacked_weights.h); false reads every weight in place.
    explicit CpuBackend(int threads = 0, const cpu::Kernels* kernels = nullptr,
                        bool precise = false, bool repack = true);
    ~CpuBackend() override;

    std::string name() const override { return "cpu"; }
    int threads() const { return pool_.size(); }
    const cpu::Kernels& kernels() const { return k_; }

    Status forward(const Model& model, SeqCache& seq, std::span<const int32_t> tokens,
                   LogitsMode mode, std::vector<float>& logits) override;
    // One pass for several sequences: every matmul runs over all their tokens (weights
    // read once), attention per sequence over its own cache. All or nothing on error.
    Status forward_batch(const Model& model, std::span<const SeqBatch> batch) override;
    bool supports_mtp() const override { return true; }
    // The form of MLA for prompt chunks on the tile matmul: expanded (K and V of every
    // cache row per head, then attention with head size n + r and v), absorbed (as in
    // decode), or chosen per chunk (kAuto: expanded while the chunk is at least half of the
    // rows it attends — a prompt's start — absorbed for a chunk after a long cached prefix,
    // the edit in a file). Tables without the tile matmul take the absorbed form blocked
    // over the chunk's query rows (Kernels::mla_scores / mla_mix) for any of these.
    // kPerToken: prompt chunks attend one token at a time, as decode does (Kernels::attend),
    // on any table — the plain form the others are checked against. The default is kAuto,
    // or LATENT_MLA_PREFILL=expanded|absorbed|per-token.
    enum class MlaPrefill { kAuto, kExpanded, kAbsorbed, kPerToken };
    void set_mla_prefill(MlaPrefill form) { mla_prefill_ = form; }
    // The MTP block through the same pass as the trunk (one layer, the block's head).
    Status forward_mtp(const Model& model, std::span<const MtpBatch> batch) override;

    // Makes what this backend keeps per model — the R16 copies of its Q4_0/Q8_0 matrices
    // (cpu/repacked_weights.h) — now instead of in the first forward (which calls it too);
    // the copy stays for that model until another model is given.
    void prepare(const Model& model) override;
    struct Repacked {
        int64_t matrices = 0;
        uint64_t bytes = 0;
        double seconds = 0;
        bool skipped = false;  // the copy would not fit in the available memory
    };
    Repacked repacked() const;
    // The memory prepare() may count on for the copy (0: the system's MemAvailable); for
    // tests of the fallback.
    void set_available_memory_for_tests(uint64_t bytes) { available_ = bytes; }

private:
    // The trunk, or with mtp_hidden (one span per sequence) the first MTP block.
    Status run(const Model& model, std::span<const SeqBatch> batch,
               std::span<const std::span<const float>> mtp_hidden);
    struct Impl;
    ThreadPool pool_;
    const cpu::Kernels& k_;
    bool precise_;
    bool repack_;
    uint64_t available_ = 0;
    MlaPrefill mla_prefill_;
    std::unique_ptr<Impl> impl_;
};

}  // namespace latent::engine
