// The job runner of the fast CPU forward pass (CpuBackend): activation rows quantized
// for a weight type (Acts), matmuls as jobs (Job) run together over the pool with the
// tile matmul where it applies (Pass), and the small float helpers every part uses.
// Internal to engine/cpu/: the forward pass's parts (forward_pass.cpp, mla_attention.cpp,
// moe_ffn.cpp, logits.cpp) share it. Buffers are row-major [tokens][width] floats.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/cpu/kernels.h"
#include "engine/cpu/repacked_weights.h"
#include "engine/cpu/thread_pool.h"
#include "engine/model.h"
#include "engine/reference.h"

namespace latent::engine::cpu {

inline const float* f32(const Tensor& t) { return reinterpret_cast<const float*>(t.data); }

// Rows of a float matrix quantized into one activation format.
// With the tile matmul, rows of tokens whose sequence has 16+ tokens in the step are float
// rows for it and the others are in the type's format (see Pass::set_tiled_tokens): all of
// one kind (`tiled` says which), or mixed — then `rows` holds every row in the type's
// format and `tiled_rows[i]` the float copy of row i where it is a tiled one (else null).
struct Acts {
    ActFormat format = ActFormat::kF32;
    int64_t n = 0;
    bool tiled = false;  // float rows meant for the tile matmul (Kernels::matmul_packed)
    uint64_t row_bytes = 0;
    std::vector<uint8_t> buf;
    std::vector<const uint8_t*> rows;
    std::vector<uint8_t> tiled_buf;  // mixed: the float rows
    std::vector<const uint8_t*> tiled_rows;
    std::vector<int64_t> token;  // row -> the token it belongs to
    bool mixed() const { return !tiled_rows.empty(); }
};

// One matmul of a job list: y[t * y_stride + r] = W[r] · acts[t] for r < rows, t < n_act.
struct Job {
    const uint8_t* w;
    GgmlType type;
    ActFormat format;
    uint64_t row_bytes;
    int64_t rows;
    int64_t n;
    const uint8_t* const* acts;
    int64_t n_act;
    float* y;
    int64_t y_stride;
    bool tiled;       // acts are float rows for the tile matmul
    const Acts* src;  // where acts point into (mixed sources are split in Pass::run)
};

inline Job job_for(const Tensor& t, int64_t index, const Acts& a, const uint8_t* const* acts,
                   int64_t n_act, float* y, int64_t y_stride) {
    return Job{t.matrix(index), t.type, a.format, t.row_size(), t.ne[1], t.ne[0], acts,
               n_act,           y,      y_stride, a.tiled,      &a};
}

class Pass {
public:
    // repacked: the model's R16 copies (null: none), used for every job whose weights have
    // one and whose activations are in the type's format.
    Pass(ThreadPool& pool, const cpu::Kernels& k, bool precise,
         const RepackedWeights* repacked = nullptr)
        : pool_(pool), k_(k), precise_(precise), repacked_(repacked) {}

    // Which tokens of this pass take the tile matmul: those of sequences with at least
    // kTiledMinTokens tokens in it that want only the last logits (prompt chunks; not
    // speculative verification, LogitsMode::kAll, which must round as the one-token steps
    // it replaces), so that a sequence's arithmetic never depends on what else shares its
    // batch. A prompt's rounding does depend on how it is cut into chunks (a prefix-cache
    // hit leaves a shorter one), as llama.cpp's on its batch size. Call once per pass.
    // seq: each token's sequence (a sequence's rows in a job choose tiles or int8 dots by
    // their own count).
    void set_tiled_tokens(std::vector<char> tiled, std::vector<int32_t> seq) {
        tok_tiled_ = std::move(tiled);
        tok_seq_ = std::move(seq);
    }

    // Whether token t's attention takes the tile matmul too (as its rows do).
    bool tiled_attention(int64_t t) const { return k_.matmul_packed && !precise_ && tok_tiled_[t]; }

    // Whether token t's attention takes the blocked absorbed form (MlaAttention): tokens
    // that would take the tile matmul on a table that has none, or in precise mode (float
    // attention like the per-token form: the same values, summed in another order).
    bool blocked_attention(int64_t t) const {
        return (!k_.matmul_packed || precise_) && tok_tiled_[t];
    }

    // Whether activations for weights of types a and b are quantized alike.
    bool same_acts(GgmlType a, GgmlType b) const {
        return cpu::act_format(a, precise_) == cpu::act_format(b, precise_) && tiles(a) == tiles(b);
    }

    // Quantizes R rows of n values (row i at x + i * stride, of token token_of(i)) into `a`
    // for weights of `type`.
    template <class TokenOf>
    void quantize(GgmlType type, const float* x, int64_t stride, int64_t R, int64_t n, Acts& a,
                  TokenOf token_of) {
        int64_t n_tiled = 0;
        std::vector<char> row_tiled(static_cast<size_t>(R), 0);
        if (tiles(type))
            for (int64_t i = 0; i < R; ++i) n_tiled += row_tiled[i] = tok_tiled_[token_of(i)];
        a.tiled = R > 0 && n_tiled == R;
        a.format = a.tiled ? ActFormat::kF32 : cpu::act_format(type, precise_);
        a.n = n;
        a.row_bytes = cpu::act_row_bytes(a.format, n);
        a.buf.resize(a.row_bytes * static_cast<uint64_t>(R));
        a.rows.resize(static_cast<size_t>(R));
        a.token.resize(static_cast<size_t>(R));
        for (int64_t i = 0; i < R; ++i) {
            a.rows[i] = a.buf.data() + a.row_bytes * i;
            a.token[i] = token_of(i);
        }
        for_rows(R, [&](int64_t i) {
            k_.quantize(a.format, x + i * stride, n, a.buf.data() + a.row_bytes * i);
        });
        a.tiled_rows.clear();
        if (n_tiled == 0 || a.tiled) return;
        const uint64_t fb = cpu::act_row_bytes(ActFormat::kF32, n);
        a.tiled_buf.resize(fb * static_cast<uint64_t>(R));
        a.tiled_rows.assign(static_cast<size_t>(R), nullptr);
        for (int64_t i = 0; i < R; ++i)
            if (row_tiled[i]) {
                uint8_t* dst = a.tiled_buf.data() + fb * i;
                k_.quantize(ActFormat::kF32, x + i * stride, n, dst);
                a.tiled_rows[i] = dst;
            }
    }
    void quantize(GgmlType type, const float* x, int64_t stride, int64_t T, int64_t n, Acts& a) {
        quantize(type, x, stride, T, n, a, [](int64_t i) { return i; });
    }

    // Runs every job of the list, their rows split in chunks over the pool. Jobs in the
    // tile matmul's form first have their activation rows packed (once per distinct row
    // list: the gate and up matrices of an expert share theirs).
    void run(const std::vector<Job>& given);

    // fn(i) for i < n, split over the pool when there is enough to split.
    template <class F>
    void for_rows(int64_t n, F&& fn) {
        if (n < 2 || pool_.size() == 1) {
            for (int64_t i = 0; i < n; ++i) fn(i);
            return;
        }
        pool_.parallel_chunks(n, std::max<int64_t>(1, n / (4 * pool_.size())),
                              [&](int64_t b, int64_t e) {
                                  for (int64_t i = b; i < e; ++i) fn(i);
                              });
    }

    ThreadPool& pool() { return pool_; }
    const cpu::Kernels& k() const { return k_; }

    // The tile matmul takes sequences with at least kTiledMinTokens tokens in the pass
    // (below, the int8 dots are as fast and round less), any weight type but F32 (kept
    // exact), not in precise mode.
    static constexpr int64_t kTiledMinTokens = 16;
    // Within such a pass, the fewest rows of one sequence in one job that take the tiles
    // (measured with 0 / 4 / 8 / 16: a 32-token prompt on the lite preset 1,675 / 1,196 /
    // 1,104 ms, 128 tokens 2,286 / - / 2,260 / 2,841 ms).
    static constexpr int64_t kTiledMinJobRows = 8;

private:
    bool tiles(GgmlType type) const {
        return k_.matmul_packed && !precise_ && type != GgmlType::kF32;
    }
    // (Jobs are tiled only where tiles(type) allowed it, or for attention.)
    static bool packs(const Job& j) { return j.tiled && j.n % 32 == 0; }

    ThreadPool& pool_;
    const cpu::Kernels& k_;
    bool precise_;
    const RepackedWeights* repacked_;
    std::vector<uint8_t> packed_;
    std::vector<char> tok_tiled_;
    std::vector<int32_t> tok_seq_;
};

// x / sqrt(mean(x^2) + eps) * w, in place (as ref::rms_norm: the sum in double).
inline void rms_norm(float* x, const float* w, int64_t n, float eps) {
    ref::rms_norm(x, w, n, eps);
}

// Rotates x[0..r) by the precomputed cos/sin pairs of its position (as rope_apply).
inline void rope_cs(const double* c, const double* s, int64_t r, float* x) {
    for (int64_t i = 0; i < r / 2; ++i) {
        const double x0 = x[2 * i], x1 = x[2 * i + 1];
        x[2 * i] = static_cast<float>(x0 * c[i] - x1 * s[i]);
        x[2 * i + 1] = static_cast<float>(x0 * s[i] + x1 * c[i]);
    }
}

}  // namespace latent::engine::cpu
