// The fast CPU backend's kernels: dot products of weight rows (any of the eight computable
// types, read in place from the mmap) with activation rows that were quantized on the fly,
// and the float helpers of attention. One implementation is written once
// (kernels_impl.h) and compiled three times — portable scalar, AVX2 (+FMA, F16C) and
// AVX-512 (F, BW, VL, VNNI) — plus an AMX-BF16 tile matmul for batches of tokens
// (kernels_amx.cpp), and the best one the CPU supports is picked at run time,
// so the binary runs on any x86-64 and uses more where the CPU has it. The scalar table is
// also the kernels' own reference in tests.
//
// Activation formats (ActFormat), one per weight type family:
//   kF32   F32 / F16 / BF16 weights: the float row itself (no rounding at all).
//   kQ8_0  Q8_0 / Q4_0 weights: per 32 values, int8 q = round(x / d), d = max|x| / 127, as a
//          float; the row also carries forms of q and d the SIMD loops load as they are
//          (layout in kernels_impl.h).
//   kQ8_K  K-quant weights: ggml's Q8_K (engine/quant_blocks.h BlockQ8_K) blocks of 256.
//
// Thread safety: the functions are pure; the tables are immutable.
#pragma once

#include <cstdint>

#include "engine/quant.h"

namespace latent::engine::cpu {

enum class ActFormat { kF32, kQ8_0, kQ8_K };

// The activation format for a weight type; `precise` keeps float activations for every
// type (the weights are then widened to float block by block: slower, but the only
// rounding left is float summation — the mode the whole-model tests check exactly).
ActFormat act_format(GgmlType weight_type, bool precise = false);
// Bytes of one activation row of n values in a format (rounded up to 64 for alignment).
uint64_t act_row_bytes(ActFormat format, int64_t n);

// The most activation rows one matmul_rows call pairs with each weight row.
constexpr int kTileTokens = 4;
// The most query rows one attend call takes.
constexpr int kAttendRows = 8;

struct Kernels {
    const char* name;  // "scalar", "avx2", "avx512", "amx"

    // Writes act_row_bytes(format, n) bytes: x (n floats) in the activation format.
    void (*quantize)(ActFormat format, const float* x, int64_t n, uint8_t* dst);

    // y[t * y_stride + r] = dot(weight row r, activation row t) for r in [r0, r1), t < n_act;
    // weight rows are row_bytes apart from w, activation rows are acts[t], each n values in
    // `format`: act_format(type) or kF32. Works through tokens in tiles of kTileTokens, so a weight
    // row is read once per tile.
    void (*matmul_rows)(GgmlType type, ActFormat format, const uint8_t* w, uint64_t row_bytes,
                        int64_t r0, int64_t r1, const uint8_t* const* acts, int64_t n_act,
                        int64_t n, float* y, int64_t y_stride);

    // Float helpers for attention.
    float (*dot_f32)(const float* a, const float* b, int64_t n);
    void (*axpy)(float a, const float* x, float* y, int64_t n);  // y += a x
    void (*scale)(float a, float* y, int64_t n);                 // y *= a

    // MLA attention (absorbed form) of nq <= kAttendRows query rows of one sequence, in one
    // pass with an online softmax: query i is q_lat[i] (L values, W_UK folded in) and
    // q_pe[i] (r values) and sees cache rows 0..last[i], rows[j] = c_kv (L) then k_pe (r);
    // out[i] (L values) = Σ_j softmax_j(scale (q_lat·c_kv_j + q_pe·k_pe_j)) c_kv_j.
    void (*attend)(const float* const* q_lat, const float* const* q_pe, int nq, const int64_t* last,
                   const float* const* rows, int64_t L, int64_t r, float scale, float* const* out);
    // s[0..valid) = softmax(scale s[0..valid)) in place (max subtracted first), and
    // s[valid..n) = 0: one row of attention probabilities for the tile matmul's form.
    void (*softmax)(float* s, int64_t valid, int64_t n, float scale);

    // Tile matrix multiply (AMX-BF16; null in every table but "amx"), for batches of
    // tokens: the activation rows (kF32, n values, n a multiple of 32) are packed once per
    // matmul into BF16 tiles of 16 tokens; each call then dequantizes 32 weight rows at a
    // time into BF16 (any type but F32) and multiplies them with every token tile, summing
    // in float. Rounding: weights and activations to BF16 (8-bit mantissa, about the error
    // of the Q8 activations of the int8 path). pack_tokens writes packed_bytes(n_act, n).
    void (*pack_tokens)(const uint8_t* const* acts, int64_t n_act, int64_t n, uint8_t* dst);
    void (*matmul_packed)(GgmlType type, const uint8_t* w, uint64_t row_bytes, int64_t r0,
                          int64_t r1, const uint8_t* packed, int64_t n_act, int64_t n, float* y,
                          int64_t y_stride);

    // matmul_rows for weights repacked by repack_r16 (null where the table has none; the
    // types it takes: takes_r16), against kQ8_0 activations: r0 and r1 multiples of 16,
    // row_bytes the original row's bytes. A block of 16 rows is one register of int32
    // lanes (one row each) that takes every activation value by broadcast: the weights are
    // unpacked once per block for a tile of tokens, and no per-row sum across lanes is left.
    void (*matmul_r16)(GgmlType type, const uint8_t* w, uint64_t row_bytes, int64_t r0, int64_t r1,
                       const uint8_t* const* acts, int64_t n_act, int64_t n, float* y,
                       int64_t y_stride);
    bool (*takes_r16)(GgmlType type);

    // MLA attention (absorbed form) of many query rows at once — a prompt chunk's tokens
    // times heads — in two passes with a plain softmax between (rows, q_lat, q_pe as in
    // attend), register-blocked so that each cache value loaded serves several query rows:
    // mla_scores: s[i * s_stride + j] = q_lat[i]·c_kv_j + q_pe[i]·k_pe_j, i < nq, j < nr;
    // mla_mix: out[i][c0..c1) = Σ_{j < nr} p[i * p_stride + j] c_kv_j[c0..c1), i < nq.
    void (*mla_scores)(const float* const* q_lat, const float* const* q_pe, int64_t nq,
                       const float* const* rows, int64_t nr, int64_t L, int64_t r, float* s,
                       int64_t s_stride);
    void (*mla_mix)(const float* p, int64_t p_stride, int64_t nq, const float* const* rows,
                    int64_t nr, int64_t c0, int64_t c1, float* const* out);

    // g[i] = silu(g[i]) u[i] for i < n (SwiGLU; silu(x) = x σ(x), σ with exp_neg's ~1e-7
    // relative error).
    void (*swiglu)(float* g, const float* u, int64_t n);
};

// The R16 layout of a Q4_0 or Q8_0 matrix (rows a multiple of 16, the same bytes as the
// original): per group of 16 rows, per block of 32 values, the 16 rows' scales (16 halves),
// then their quants in 4-byte pieces, piece j of all 16 rows before piece j + 1 — Q4_0 the
// 16 qs bytes of its block as stored (4 pieces: low nibbles values 4j..4j+3, high ones
// 16+4j..), Q8_0 its 32 quants plus 128 as unsigned bytes (8 pieces).
void repack_r16(GgmlType type, const uint8_t* src, uint64_t row_bytes, int64_t rows, int64_t n,
                uint8_t* dst);
// Whether a matrix of this type and shape can be repacked (any table's check).
bool r16_shape(GgmlType type, int64_t rows, int64_t n);

// Bytes pack_tokens writes for n_act rows of n values.
uint64_t packed_bytes(int64_t n_act, int64_t n);
// Weight rows one matmul_packed call should be given at least (its tile height).
constexpr int64_t kPackedRows = 32;

const Kernels& scalar_kernels();
// nullptr where the build or the CPU lacks the instructions.
const Kernels* avx2_kernels();
const Kernels* avx512_kernels();
// The avx512 table plus the AMX-BF16 tile matmul, where the CPU has AMX and the kernel
// grants this process the tile state (arch_prctl ARCH_REQ_XCOMP_PERM).
const Kernels* amx_kernels();

// `base` with a tile matmul in plain C++ (kernels_tiles_portable.cpp: the AMX table's
// rounding — BF16 weights and activations, float sums — on any CPU): the forward pass's
// tile path checked where there is no AMX. Slow; for tests, never the best table.
const Kernels& with_portable_tiles(const Kernels& base);

// The best table this CPU supports; LATENT_CPU_KERNELS=scalar|avx2|avx512|amx in the
// environment picks a lower one (for tests and comparisons).
const Kernels& best_kernels();

}  // namespace latent::engine::cpu
