// The kernels of kernels.h, written once and compiled three times: included by
// kernels_scalar.cpp, kernels_avx2.cpp and kernels_avx512.cpp, each with its
// own -m flags, with LATENT_KERNELS_NS naming the namespace and LATENT_KERNELS_ISA
// 0 (portable), 1 (AVX2 + FMA + F16C) or 2 (AVX-512 F/BW/VL + VNNI + BF16).
//
// Nothing from the standard library, and no inline helper of another header, is called
// here: an inline function compiled with AVX-512 flags could be merged by the linker with
// the portable copy and run on a CPU without AVX-512. Everything lives in a namespace of
// its own for the same reason (the scalar build alone may use fp16_to_fp32).
//
// The hand-written SIMD is limited to the hot int8 dots (Q8_0, Q4_0), half-precision
// loads and the AVX-512 softmax (whose reductions the compiler left scalar); the rest is
// plain loops over fixed-width lane arrays that the compiler turns into vector code for
// each ISA. Integer sums are exact, so every ISA gives the same integer dot; float sums
// differ only by rounding order.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "engine/cpu/kernels.h"
#include "engine/fp16.h"
#include "engine/quant_blocks.h"

#if LATENT_KERNELS_ISA >= 1
#include <immintrin.h>
#endif

namespace latent::engine::cpu::LATENT_KERNELS_NS {

constexpr int kLanes = 16;

inline float half_to_float(uint16_t h) {
#if LATENT_KERNELS_ISA >= 1
    return _cvtsh_ss(h);
#else
    return fp16_to_fp32(h);
#endif
}

inline float bf16_to_float(uint16_t h) {
    const uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    __builtin_memcpy(&f, &u, sizeof f);
    return f;
}

// Block size and bytes of the computable types (not traits(): see the note above).
inline int64_t block_of(GgmlType t) {
    switch (t) {
        case GgmlType::kQ8_0:
        case GgmlType::kQ4_0:
            return kQK;
        case GgmlType::kQ4_K:
        case GgmlType::kQ5_K:
        case GgmlType::kQ6_K:
            return kQKK;
        default:
            return 1;
    }
}
constexpr int64_t block_bytes_of(GgmlType t) {
    switch (t) {
        case GgmlType::kQ8_0:
            return sizeof(BlockQ8_0);
        case GgmlType::kQ4_0:
            return sizeof(BlockQ4_0);
        case GgmlType::kQ4_K:
            return sizeof(BlockQ4_K);
        case GgmlType::kQ5_K:
            return sizeof(BlockQ5_K);
        case GgmlType::kQ6_K:
            return sizeof(BlockQ6_K);
        default:
            return 0;
    }
}

// get_scale_min_k4 of quant_blocks.h, restated here for the same reason.
inline void scale_min_k4(int j, const uint8_t* q, int32_t* sc, int32_t* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

inline int64_t round_up64(int64_t v) { return (v + 63) & ~int64_t{63}; }

// ---- activation quantization ----

// kQ8_0 layout (see kernels.h): q[n] int8 | u[n] = q + 128 as uint8 | d8[n/32][8] float,
// the block's scale repeated over 8 lanes | s8[n/32][8] int32, −8 × the sum of each 4
// consecutive q's | then, per group of 4 whole blocks (kGroupBlocks; a last 1–3 blocks
// have none): qn[128], the group's q in nibble order — the first 16 values of each of its
// 4 blocks, then the last 16 of each | s4[16] int32, lane 4k + j = −8 × (q[4j..4j+3] +
// q[16+4j..16+4j+3]) of block k | d4[16] float, lane 4k + j = block k's scale | then per
// block m8 int32 = −8 Σ q, and m128 int32 = −128 Σ q (the R16 loops' sums start there).
// u, d8 and s8 are what the VNNI and AVX2 loops load instead of computing per weight row:
// u pairs with signed Q8_0 weights in vpdpbusd, s8 starts the sum of unsigned Q4_0 nibbles
// at their −8 offset, d8 is the block scale as a vector. qn, s4 and d4 are the same for
// the Q4_0 loops that take 4 blocks' packed nibbles at once: the low nibbles of 4 blocks in
// one register pair with the first half of qn, the high nibbles with the second, with no
// shuffle of the weights into element order.
constexpr int64_t kGroupBlocks = 4;
struct ActQ8_0 {
    const int8_t* q;
    const uint8_t* u;
    const float* d8;
    const int32_t* s8;
    const int8_t* qn;
    const int32_t* s4;
    const float* d4;
    const int32_t* m8;
    const int32_t* m128;
};
inline ActQ8_0 view_q8_0(const uint8_t* row, int64_t n) {
    const int64_t q_bytes = round_up64(n);
    const int64_t nb = n / kQK;
    const int64_t groups = nb / kGroupBlocks;
    const uint8_t* qn = row + 2 * q_bytes + 64 * nb;
    const uint8_t* s4 = qn + q_bytes;
    return {reinterpret_cast<const int8_t*>(row),
            row + q_bytes,
            reinterpret_cast<const float*>(row + 2 * q_bytes),
            reinterpret_cast<const int32_t*>(row + 2 * q_bytes + 32 * nb),
            reinterpret_cast<const int8_t*>(qn),
            reinterpret_cast<const int32_t*>(s4),
            reinterpret_cast<const float*>(s4 + 64 * groups),
            reinterpret_cast<const int32_t*>(s4 + 128 * groups),
            reinterpret_cast<const int32_t*>(s4 + 128 * groups) + nb};
}

#if LATENT_KERNELS_ISA >= 1
// The fields of block b of a Q8_0 activation row that both vector quantizers write the
// same way, from the block's quants (its first and last 16 as bytes, q), its 8 sums of 4
// (g8), its scale and the sum of its quants.
inline void store_q8_0_block(const ActQ8_0& a, int64_t b, bool grouped, __m256i q, __m256i g8,
                             float db, int32_t total) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(const_cast<int8_t*>(a.q) + b * kQK), q);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(const_cast<uint8_t*>(a.u) + b * kQK),
                        _mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80))));
    const __m256i s8v = _mm256_mullo_epi32(g8, _mm256_set1_epi32(-8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(const_cast<int32_t*>(a.s8) + b * 8), s8v);
    _mm256_storeu_ps(const_cast<float*>(a.d8) + b * 8, _mm256_set1_ps(db));
    const_cast<int32_t*>(a.m8)[b] = -8 * total;
    const_cast<int32_t*>(a.m128)[b] = -128 * total;
    if (!grouped) return;
    const int64_t g = b / kGroupBlocks, k = b % kGroupBlocks;
    int8_t* qn = const_cast<int8_t*>(a.qn) + g * 128;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qn + 16 * k), _mm256_castsi256_si128(q));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qn + 64 + 16 * k), _mm256_extracti128_si256(q, 1));
    // Lane j: −8 × (q[4j..4j+3] + q[16+4j..16+4j+3]) = s8[j] + s8[4 + j].
    _mm_storeu_si128(reinterpret_cast<__m128i*>(const_cast<int32_t*>(a.s4) + g * 16 + 4 * k),
                     _mm_add_epi32(_mm256_castsi256_si128(s8v), _mm256_extracti128_si256(s8v, 1)));
    _mm_storeu_ps(const_cast<float*>(a.d4) + g * 16 + 4 * k, _mm_set1_ps(db));
}
#endif

#if LATENT_KERNELS_ISA == 2
// quantize_q8_0 in AVX-512, every field of the row the same bytes as the portable loop below
// (the same float steps; vcvtps2dq rounds to nearest even as nearbyintf does by default).
inline void quantize_q8_0_avx512(const float* x, int64_t n, uint8_t* row) {
    const ActQ8_0 a = view_q8_0(row, n);
    const int64_t nb = n / kQK, grouped = nb / kGroupBlocks * kGroupBlocks;
    for (int64_t b = 0; b < nb; ++b) {
        const __m512 x0 = _mm512_loadu_ps(x + b * kQK), x1 = _mm512_loadu_ps(x + b * kQK + 16);
        const float amax =
            _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
        const float db = amax / 127.0f;
        const float id = db != 0.0f ? 1.0f / db : 0.0f;
        const __m512 vid = _mm512_set1_ps(id);
        const __m512i v0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, vid));
        const __m512i v1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, vid));
        // Sums of each 4 consecutive values: lanes 4l of v0 (l < 4) and of v1 (4 + l).
        auto sums4 = [](__m512i v) {
            v = _mm512_add_epi32(v, _mm512_srli_epi64(v, 32));
            return _mm512_add_epi32(v, _mm512_bsrli_epi128(v, 8));
        };
        const __m512i four = _mm512_mask_blend_epi32(
            0xF0F0,
            _mm512_permutexvar_epi32(
                _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), sums4(v0)),
            _mm512_permutexvar_epi32(
                _mm512_setr_epi32(0, 0, 0, 0, 0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0), sums4(v1)));
        const __m256i g8 = _mm512_castsi512_si256(four);  // the 8 sums of 4
        const int32_t total = _mm512_reduce_add_epi32(_mm512_maskz_mov_epi32(0xFF, four));
        store_q8_0_block(a, b, b < grouped,
                         _mm256_set_m128i(_mm512_cvtepi32_epi8(v1), _mm512_cvtepi32_epi8(v0)), g8,
                         db, total);
    }
}
#endif

#if LATENT_KERNELS_ISA == 1
// quantize_q8_0 in AVX2, the same bytes as the portable loop (as the AVX-512 one).
inline void quantize_q8_0_avx2(const float* x, int64_t n, uint8_t* row) {
    const ActQ8_0 a = view_q8_0(row, n);
    const int64_t nb = n / kQK, grouped = nb / kGroupBlocks * kGroupBlocks;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < nb; ++b) {
        __m256 xv[4];
        for (int i = 0; i < 4; ++i) xv[i] = _mm256_loadu_ps(x + b * kQK + 8 * i);
        __m256 m = _mm256_max_ps(
            _mm256_max_ps(_mm256_andnot_ps(sign, xv[0]), _mm256_andnot_ps(sign, xv[1])),
            _mm256_max_ps(_mm256_andnot_ps(sign, xv[2]), _mm256_andnot_ps(sign, xv[3])));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        const float amax = _mm_cvtss_f32(h);
        const float db = amax / 127.0f;
        const float id = db != 0.0f ? 1.0f / db : 0.0f;
        const __m256 vid = _mm256_set1_ps(id);
        __m256i iv[4];
        for (int i = 0; i < 4; ++i) iv[i] = _mm256_cvtps_epi32(_mm256_mul_ps(xv[i], vid));
        // int32 -> int8 (no saturation: |v| <= 127), the packs' lane interleave undone.
        const __m256i p16 =
            _mm256_packs_epi16(_mm256_packs_epi32(iv[0], iv[1]), _mm256_packs_epi32(iv[2], iv[3]));
        const __m256i qv =
            _mm256_permutevar8x32_epi32(p16, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        // Sums of each 4 consecutive values, in order.
        const __m256i g8 =
            _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), qv), _mm256_set1_epi16(1));
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(g8), _mm256_extracti128_si256(g8, 1));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4E));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
        store_q8_0_block(a, b, b < grouped, qv, g8, db, _mm_cvtsi128_si32(t));
    }
}
#endif

inline void quantize_q8_0(const float* x, int64_t n, uint8_t* row) {
#if LATENT_KERNELS_ISA == 2
    return quantize_q8_0_avx512(x, n, row);
#elif LATENT_KERNELS_ISA == 1
    return quantize_q8_0_avx2(x, n, row);
#endif
    const int64_t q_bytes = round_up64(n);
    const int64_t nb = n / kQK;
    int8_t* q = reinterpret_cast<int8_t*>(row);
    uint8_t* u = row + q_bytes;
    float* d8 = reinterpret_cast<float*>(row + 2 * q_bytes);
    int32_t* s8 = reinterpret_cast<int32_t*>(row + 2 * q_bytes + 32 * nb);
    for (int64_t b = 0; b < nb; ++b) {
        const float* xb = x + b * kQK;
        // The largest magnitude in 8 lanes first (vector max, no reduction in the loop).
        float lane[8] = {};
        for (int j0 = 0; j0 < kQK; j0 += 8)
            for (int l = 0; l < 8; ++l) {
                const float a = __builtin_fabsf(xb[j0 + l]);
                lane[l] = a > lane[l] ? a : lane[l];
            }
        float amax = 0.0f;
        for (int l = 0; l < 8; ++l) amax = lane[l] > amax ? lane[l] : amax;
        const float db = amax / 127.0f;
        const float id = db != 0.0f ? 1.0f / db : 0.0f;
        for (int j = 0; j < kQK; ++j) {
            const int v = static_cast<int>(nearbyintf(xb[j] * id));
            q[b * kQK + j] = static_cast<int8_t>(v);
            u[b * kQK + j] = static_cast<uint8_t>(v + 128);
        }
        for (int l = 0; l < 8; ++l) {
            const int8_t* g = q + b * kQK + 4 * l;
            d8[b * 8 + l] = db;
            s8[b * 8 + l] = -8 * (g[0] + g[1] + g[2] + g[3]);
        }
    }
    const ActQ8_0 a = view_q8_0(row, n);
    int8_t* qn = const_cast<int8_t*>(a.qn);
    int32_t* s4 = const_cast<int32_t*>(a.s4);
    float* d4 = const_cast<float*>(a.d4);
    for (int64_t g = 0; g < nb / kGroupBlocks; ++g)
        for (int k = 0; k < kGroupBlocks; ++k) {
            const int8_t* qb = q + (g * kGroupBlocks + k) * kQK;
            __builtin_memcpy(qn + g * 128 + 16 * k, qb, kQK / 2);
            __builtin_memcpy(qn + g * 128 + 64 + 16 * k, qb + kQK / 2, kQK / 2);
            for (int j = 0; j < 4; ++j) {
                int32_t sum = 0;
                for (int i = 0; i < 4; ++i) sum += qb[4 * j + i] + qb[kQK / 2 + 4 * j + i];
                s4[g * 16 + 4 * k + j] = -8 * sum;
                d4[g * 16 + 4 * k + j] = d8[(g * kGroupBlocks + k) * 8];
            }
        }
    int32_t* m8 = const_cast<int32_t*>(a.m8);
    int32_t* m128 = const_cast<int32_t*>(a.m128);
    for (int64_t b = 0; b < nb; ++b) {
        int32_t sum = 0;
        for (int j = 0; j < kQK; ++j) sum += q[b * kQK + j];
        m8[b] = -8 * sum;
        m128[b] = -128 * sum;
    }
}

// Q8_K as ggml's quantize_row_q8_K: per 256 values, the value of largest magnitude maps to
// -127 (d = -max/127 keeps its sign), bsums of each 16.
inline void quantize_q8_k(const float* x, int64_t n, uint8_t* row) {
    BlockQ8_K* out = reinterpret_cast<BlockQ8_K*>(row);
    for (int64_t b = 0; b < n / kQKK; ++b) {
        const float* xb = x + b * kQKK;
        float amax = 0.0f, vmax = 0.0f;
        for (int j = 0; j < kQKK; ++j) {
            const float a = xb[j] < 0 ? -xb[j] : xb[j];
            if (a > amax) {
                amax = a;
                vmax = xb[j];
            }
        }
        BlockQ8_K& o = out[b];
        if (amax == 0.0f) {
            o.d = 0.0f;
            for (int j = 0; j < kQKK; ++j) o.qs[j] = 0;
            for (int g = 0; g < kQKK / 16; ++g) o.bsums[g] = 0;
            continue;
        }
        const float iscale = -127.0f / vmax;
        for (int j = 0; j < kQKK; ++j) {
            const int v = static_cast<int>(nearbyintf(iscale * xb[j]));
            o.qs[j] = static_cast<int8_t>(v > 127 ? 127 : v);
        }
        for (int g = 0; g < kQKK / 16; ++g) {
            int sum = 0;
            for (int j = 0; j < 16; ++j) sum += o.qs[g * 16 + j];
            o.bsums[g] = static_cast<int16_t>(sum);
        }
        o.d = 1.0f / iscale;
    }
}

inline void quantize(ActFormat format, const float* x, int64_t n, uint8_t* dst) {
    switch (format) {
        case ActFormat::kF32: {
            float* f = reinterpret_cast<float*>(dst);
            for (int64_t i = 0; i < n; ++i) f[i] = x[i];
            return;
        }
        case ActFormat::kQ8_0:
            quantize_q8_0(x, n, dst);
            return;
        case ActFormat::kQ8_K:
            quantize_q8_k(x, n, dst);
            return;
    }
}

// ---- float helpers ----

inline float hsum_lanes(const float* acc) {
    float s = 0.0f;
    for (int l = 0; l < kLanes; ++l) s += acc[l];
    return s;
}

inline float dot_f32(const float* a, const float* b, int64_t n) {
    float acc[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
    float s = hsum_lanes(acc);
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

inline void axpy(float a, const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

inline void scale(float a, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] *= a;
}

// e^x for x <= 0 (scores minus their running maximum), branch-free so that loops over
// lanes vectorize: 2^n · p(f) with n = round(x log2 e), f = x − n ln 2 (in two parts) and
// Cephes' degree-6 polynomial; relative error ~1e-7; x < −87 gives ~0 (e^-87 ≈ 1.6e-38).
inline float exp_neg(float x) {
    x = x < -87.0f ? -87.0f : x;
    const float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    const float f = x - n * 0.693359375f - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * f + 1.3981999507e-3f;
    p = p * f + 8.3334519073e-3f;
    p = p * f + 4.1665795894e-2f;
    p = p * f + 1.6666665459e-1f;
    p = p * f + 5.0000001201e-1f;
    const float y = p * f * f + f + 1.0f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    return y * __builtin_bit_cast(float, bits);
}

// MLA attention of nq <= kAttendRows query rows of one sequence (see kernels.h). Cache
// rows are taken kAttendBlock at a time: their scores for every query row first (each
// cache row read once for all of them), then one online-softmax update per query row and
// block (one rescale of the sum instead of one per row), then the weighted c_kv rows
// added in chunks of 8 vectors held in registers.
constexpr int kAttendBlock = 16;

// One float vector of the ISA for attention (16, 8 or 1 lanes), so that the loops below are
// written once; hand-written because GCC does not vectorize them across the row pointers.
#if LATENT_KERNELS_ISA == 2
using VecF = __m512;
constexpr int64_t kVecW = 16;
inline VecF vload(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, VecF v) { _mm512_storeu_ps(p, v); }
inline VecF vfma(VecF a, VecF b, VecF c) { return _mm512_fmadd_ps(a, b, c); }
inline VecF vmul(VecF a, VecF b) { return _mm512_mul_ps(a, b); }
inline VecF vset1(float x) { return _mm512_set1_ps(x); }
inline float vsum(VecF v) { return _mm512_reduce_add_ps(v); }
#elif LATENT_KERNELS_ISA == 1
using VecF = __m256;
constexpr int64_t kVecW = 8;
inline VecF vload(const float* p) { return _mm256_loadu_ps(p); }
inline void vstore(float* p, VecF v) { _mm256_storeu_ps(p, v); }
inline VecF vfma(VecF a, VecF b, VecF c) { return _mm256_fmadd_ps(a, b, c); }
inline VecF vmul(VecF a, VecF b) { return _mm256_mul_ps(a, b); }
inline VecF vset1(float x) { return _mm256_set1_ps(x); }
inline float vsum(VecF v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    return _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)));
}
#else
using VecF = float;
constexpr int64_t kVecW = 1;
inline VecF vload(const float* p) { return *p; }
inline void vstore(float* p, VecF v) { *p = v; }
inline VecF vfma(VecF a, VecF b, VecF c) { return a * b + c; }
inline VecF vmul(VecF a, VecF b) { return a * b; }
inline VecF vset1(float x) { return x; }
inline float vsum(VecF v) { return v; }
#endif

// x[0..n) *= f
inline void scale_vec(float* x, int64_t n, float f) {
    const VecF vf = vset1(f);
    int64_t c = 0;
    for (; c + kVecW <= n; c += kVecW) vstore(x + c, vmul(vload(x + c), vf));
    for (; c < n; ++c) x[c] *= f;
}

// Scores of NQ query rows against one cache row: NQ independent FMA chains (one chain per
// dot would wait on FMA latency), the cache row loaded once for all of them.
template <int NQ>
inline void attend_scores(const float* const* q_lat, const float* const* q_pe, const float* row,
                          int64_t L, int64_t r, float* s) {
    VecF acc[NQ];
    for (int i = 0; i < NQ; ++i) acc[i] = vset1(0.0f);
    float tail[NQ] = {};
    int64_t c = 0;
    for (; c + kVecW <= L; c += kVecW) {
        const VecF x = vload(row + c);
        for (int i = 0; i < NQ; ++i) acc[i] = vfma(vload(q_lat[i] + c), x, acc[i]);
    }
    for (; c < L; ++c)
        for (int i = 0; i < NQ; ++i) tail[i] += q_lat[i][c] * row[c];
    int64_t d = 0;
    for (; d + kVecW <= r; d += kVecW) {
        const VecF x = vload(row + L + d);
        for (int i = 0; i < NQ; ++i) acc[i] = vfma(vload(q_pe[i] + d), x, acc[i]);
    }
    for (; d < r; ++d)
        for (int i = 0; i < NQ; ++i) tail[i] += q_pe[i][d] * row[L + d];
    for (int i = 0; i < NQ; ++i) s[i] = vsum(acc[i]) + tail[i];
}

// out += Σ_jj p[jj] rows[jj][0..L), in chunks of 8 vectors held in registers.
inline void attend_accumulate(const float* p, int nb, const float* const* rows, int64_t L,
                              float* out) {
    constexpr int64_t kChunk = 8 * kVecW;
    int64_t c = 0;
    for (; c + kChunk <= L; c += kChunk) {
        VecF acc[8];
        for (int e = 0; e < 8; ++e) acc[e] = vload(out + c + e * kVecW);
        for (int jj = 0; jj < nb; ++jj) {
            const VecF pj = vset1(p[jj]);
            const float* x = rows[jj] + c;
            for (int e = 0; e < 8; ++e) acc[e] = vfma(pj, vload(x + e * kVecW), acc[e]);
        }
        for (int e = 0; e < 8; ++e) vstore(out + c + e * kVecW, acc[e]);
    }
    for (; c < L; ++c)
        for (int jj = 0; jj < nb; ++jj) out[c] += p[jj] * rows[jj][c];
}

template <int NQ>
inline void attend_n(const float* const* q_lat, const float* const* q_pe, const int64_t* last,
                     const float* const* rows, int64_t L, int64_t r, float scale,
                     float* const* out) {
    float m[NQ], l[NQ];
    float p[NQ][kAttendBlock];
    int64_t end = 0;  // rows [0, end) are seen by some query
    for (int i = 0; i < NQ; ++i) {
        m[i] = -__builtin_inff();
        l[i] = 0.0f;
        for (int64_t c = 0; c < L; ++c) out[i][c] = 0.0f;
        end = last[i] + 1 > end ? last[i] + 1 : end;
    }
    for (int64_t j0 = 0; j0 < end; j0 += kAttendBlock) {
        const int nb = static_cast<int>(end - j0 < kAttendBlock ? end - j0 : kAttendBlock);
        for (int jj = 0; jj < nb; ++jj) {
            float sc[NQ];
            attend_scores<NQ>(q_lat, q_pe, rows[j0 + jj], L, r, sc);
            for (int i = 0; i < NQ; ++i)
                p[i][jj] = j0 + jj <= last[i] ? sc[i] * scale : -__builtin_inff();
        }
        for (int i = 0; i < NQ; ++i) {
            float bm = -__builtin_inff();
            for (int jj = 0; jj < nb; ++jj) bm = p[i][jj] > bm ? p[i][jj] : bm;
            if (bm == -__builtin_inff()) continue;  // nothing in this block is visible to row i
            if (bm > m[i]) {
                if (l[i] != 0.0f) {
                    const float f = exp_neg(m[i] - bm);
                    scale_vec(out[i], L, f);
                    l[i] *= f;
                }
                m[i] = bm;
            }
            float sum = 0.0f;
            for (int jj = 0; jj < nb; ++jj) {
                p[i][jj] = p[i][jj] != -__builtin_inff() ? exp_neg(p[i][jj] - m[i]) : 0.0f;
                sum += p[i][jj];
            }
            l[i] += sum;
            attend_accumulate(p[i], nb, rows + j0, L, out[i]);
        }
    }
    for (int i = 0; i < NQ; ++i) scale_vec(out[i], L, l[i] > 0.0f ? 1.0f / l[i] : 0.0f);
}

#if LATENT_KERNELS_ISA >= 2
// exp_neg on 16 lanes (the same steps; fused multiply-adds round once where it rounds twice).
inline __m512 exp_neg16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    const __m512 n = _mm512_roundscale_ps(
        _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f)),
        _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    f = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), f);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.0000001201e-1f));
    const __m512 y =
        _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, f), f, f), _mm512_set1_ps(1.0f));
    const __m512i bits =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(bits));
}
#endif

#if LATENT_KERNELS_ISA == 1
// exp_neg on 8 lanes (AVX2 + FMA; the same steps).
inline __m256 exp_neg8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    const __m256 n = _mm256_floor_ps(
        _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 f = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    f = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), f);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.0000001201e-1f));
    const __m256 y =
        _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, f), f, f), _mm256_set1_ps(1.0f));
    const __m256i bits =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
}
#endif

// g[i] = silu(g[i]) u[i] (kernels.h): σ(x) from e = exp_neg(−|x|) as 1 / (1 + e) for
// x >= 0 and e / (1 + e) below, branch-free so that the loop vectorizes (AVX-512: by hand).
inline void swiglu(float* g, const float* u, int64_t n) {
    int64_t i = 0;
#if LATENT_KERNELS_ISA >= 2
    for (; i + 16 <= n; i += 16) {
        const __m512 x = _mm512_loadu_ps(g + i);
        const __m512 e = exp_neg16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(x)));
        const __m512 r =
            _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
        const __m512 sig = _mm512_mask_mul_ps(r, neg, e, r);
        _mm512_storeu_ps(g + i, _mm512_mul_ps(_mm512_mul_ps(x, sig), _mm512_loadu_ps(u + i)));
    }
#elif LATENT_KERNELS_ISA == 1
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
        const __m256 e = exp_neg8(_mm256_sub_ps(_mm256_setzero_ps(), ax));
        const __m256 r =
            _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
        const __m256 sig = _mm256_blendv_ps(r, _mm256_mul_ps(e, r), neg);
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_mul_ps(x, sig), _mm256_loadu_ps(u + i)));
    }
#endif
    for (; i < n; ++i) {
        const float x = g[i];
        const float e = exp_neg(x < 0.0f ? x : -x);
        const float r = 1.0f / (1.0f + e);
        g[i] = x * (x < 0.0f ? e * r : r) * u[i];
    }
}

// One row of attention probabilities (kernels.h). The maximum and the sum are taken in
// kLanes partial results, combined at the end.
inline void softmax(float* s, int64_t valid, int64_t n, float scale) {
    const int64_t whole = valid / kLanes * kLanes;
    float m = -__builtin_inff(), sum = 0.0f;
#if LATENT_KERNELS_ISA >= 2
    static_assert(kLanes == 16, "one vector of lanes");
    __m512 mv = _mm512_set1_ps(-__builtin_inff());
    for (int64_t j = 0; j < whole; j += kLanes) mv = _mm512_max_ps(mv, _mm512_loadu_ps(s + j));
    m = _mm512_reduce_max_ps(mv);
    for (int64_t j = whole; j < valid; ++j) m = s[j] > m ? s[j] : m;
    const __m512 vs = _mm512_set1_ps(scale), vm = _mm512_set1_ps(m);
    __m512 sv = _mm512_setzero_ps();
    for (int64_t j = 0; j < whole; j += kLanes) {
        const __m512 e = exp_neg16(_mm512_mul_ps(vs, _mm512_sub_ps(_mm512_loadu_ps(s + j), vm)));
        _mm512_storeu_ps(s + j, e);
        sv = _mm512_add_ps(sv, e);
    }
    for (int64_t j = whole; j < valid; ++j) s[j] = exp_neg(scale * (s[j] - m));
    sum = _mm512_reduce_add_ps(sv);
#elif LATENT_KERNELS_ISA == 1
    // Two vectors of 8 lanes per kLanes block (AVX2: the same steps as AVX-512's).
    __m256 mv0 = _mm256_set1_ps(-__builtin_inff()), mv1 = mv0;
    for (int64_t j = 0; j < whole; j += kLanes) {
        mv0 = _mm256_max_ps(mv0, _mm256_loadu_ps(s + j));
        mv1 = _mm256_max_ps(mv1, _mm256_loadu_ps(s + j + 8));
    }
    float mlane[8];
    _mm256_storeu_ps(mlane, _mm256_max_ps(mv0, mv1));
    for (int l = 0; l < 8; ++l) m = mlane[l] > m ? mlane[l] : m;
    for (int64_t j = whole; j < valid; ++j) m = s[j] > m ? s[j] : m;
    const __m256 vs = _mm256_set1_ps(scale), vm = _mm256_set1_ps(m);
    __m256 sv = _mm256_setzero_ps();
    for (int64_t j = 0; j < whole; j += 8) {
        const __m256 e = exp_neg8(_mm256_mul_ps(vs, _mm256_sub_ps(_mm256_loadu_ps(s + j), vm)));
        _mm256_storeu_ps(s + j, e);
        sv = _mm256_add_ps(sv, e);
    }
    for (int64_t j = whole; j < valid; ++j) s[j] = exp_neg(scale * (s[j] - m));
    sum = vsum(sv);
#else
    float mv[kLanes], sv[kLanes];
    for (int l = 0; l < kLanes; ++l) mv[l] = -__builtin_inff(), sv[l] = 0.0f;
    for (int64_t j = 0; j < whole; j += kLanes)
        for (int l = 0; l < kLanes; ++l) mv[l] = s[j + l] > mv[l] ? s[j + l] : mv[l];
    for (int l = 0; l < kLanes; ++l) m = mv[l] > m ? mv[l] : m;
    for (int64_t j = whole; j < valid; ++j) m = s[j] > m ? s[j] : m;
    for (int64_t j = 0; j < valid; ++j) s[j] = exp_neg(scale * (s[j] - m));
    for (int64_t j = 0; j < whole; j += kLanes)
        for (int l = 0; l < kLanes; ++l) sv[l] += s[j + l];
    for (int l = 0; l < kLanes; ++l) sum += sv[l];
#endif
    for (int64_t j = whole; j < valid; ++j) sum += s[j];
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int64_t j = 0; j < valid; ++j) s[j] *= inv;
    for (int64_t j = valid; j < n; ++j) s[j] = 0.0f;
}

inline void attend(const float* const* q_lat, const float* const* q_pe, int nq, const int64_t* last,
                   const float* const* rows, int64_t L, int64_t r, float scale, float* const* out) {
    static_assert(kAttendRows == 8, "one case per row count below");
    // Groups of 4 and 8 rows (the usual head counts), single rows for the rest.
    while (nq > 0) {
        const int take = nq >= 8 ? 8 : nq >= 4 ? 4 : 1;
        if (take == 8) {
            attend_n<8>(q_lat, q_pe, last, rows, L, r, scale, out);
        } else if (take == 4) {
            attend_n<4>(q_lat, q_pe, last, rows, L, r, scale, out);
        } else {
            attend_n<1>(q_lat, q_pe, last, rows, L, r, scale, out);
        }
        q_lat += take;
        q_pe += take;
        last += take;
        out += take;
        nq -= take;
    }
}

// ---- MLA attention of many query rows at once (Kernels::mla_scores, mla_mix) ----
// Register blocks: NQ query rows by NR cache rows of dot products (their lanes summed
// at the end), NQ query rows by NV vectors of output columns. Each cache value loaded
// serves NQ query rows (attend reads a cache row once per group of heads of one token).
#if LATENT_KERNELS_ISA == 2
constexpr int kScoreQ = 6, kScoreR = 4, kMixQ = 6, kMixV = 4;  // 24 of 32 registers
#elif LATENT_KERNELS_ISA == 1
// 12 accumulators of 16 registers: with 8 (4 x 2) the FMA latency is not covered — scores
// ran at 27 GMAC/s, 4 x 3 at 47 (one AMD EPYC core, 48 query rows x 128 cache rows).
constexpr int kScoreQ = 4, kScoreR = 3, kMixQ = 6, kMixV = 2;
#else
constexpr int kScoreQ = 1, kScoreR = 1, kMixQ = 1, kMixV = 1;
#endif

// s[i * s_stride + jj] for NQ query rows from qi, NR cache rows from rows.
template <int NQ, int NR>
inline void scores_block(const float* const* q_lat, const float* const* q_pe,
                         const float* const* rows, int64_t L, int64_t r, float* s,
                         int64_t s_stride) {
    VecF acc[NQ][NR];
    float tail[NQ][NR];
    for (int i = 0; i < NQ; ++i)
        for (int jj = 0; jj < NR; ++jj) acc[i][jj] = vset1(0.0f), tail[i][jj] = 0.0f;
    // The latent part (q_lat against c_kv), then the rotary part (q_pe against k_pe).
    for (int part = 0; part < 2; ++part) {
        const int64_t len = part == 0 ? L : r, off = part == 0 ? 0 : L;
        const float* const* q = part == 0 ? q_lat : q_pe;
        int64_t c = 0;
        for (; c + kVecW <= len; c += kVecW) {
            VecF x[NR];
            for (int jj = 0; jj < NR; ++jj) x[jj] = vload(rows[jj] + off + c);
            for (int i = 0; i < NQ; ++i) {
                const VecF qv = vload(q[i] + c);
                for (int jj = 0; jj < NR; ++jj) acc[i][jj] = vfma(qv, x[jj], acc[i][jj]);
            }
        }
        for (; c < len; ++c)
            for (int i = 0; i < NQ; ++i)
                for (int jj = 0; jj < NR; ++jj) tail[i][jj] += q[i][c] * rows[jj][off + c];
    }
    for (int i = 0; i < NQ; ++i)
        for (int jj = 0; jj < NR; ++jj) s[i * s_stride + jj] = vsum(acc[i][jj]) + tail[i][jj];
}

inline void mla_scores(const float* const* q_lat, const float* const* q_pe, int64_t nq,
                       const float* const* rows, int64_t nr, int64_t L, int64_t r, float* s,
                       int64_t s_stride) {
    int64_t i = 0;
    for (; i + kScoreQ <= nq; i += kScoreQ) {
        int64_t j = 0;
        for (; j + kScoreR <= nr; j += kScoreR)
            scores_block<kScoreQ, kScoreR>(q_lat + i, q_pe + i, rows + j, L, r,
                                           s + i * s_stride + j, s_stride);
        for (; j < nr; ++j)
            scores_block<kScoreQ, 1>(q_lat + i, q_pe + i, rows + j, L, r, s + i * s_stride + j,
                                     s_stride);
    }
    for (; i < nq; ++i) {
        int64_t j = 0;
        for (; j + kScoreR <= nr; j += kScoreR)
            scores_block<1, kScoreR>(q_lat + i, q_pe + i, rows + j, L, r, s + i * s_stride + j,
                                     s_stride);
        for (; j < nr; ++j)
            scores_block<1, 1>(q_lat + i, q_pe + i, rows + j, L, r, s + i * s_stride + j, s_stride);
    }
}

// out[i][c .. c + NV vectors) for NQ query rows: Σ_j p[i * p_stride + j] rows[j][...].
template <int NQ, int NV>
inline void mix_block(const float* p, int64_t p_stride, const float* const* rows, int64_t nr,
                      int64_t c, float* const* out) {
    VecF acc[NQ][NV];
    for (int i = 0; i < NQ; ++i)
        for (int v = 0; v < NV; ++v) acc[i][v] = vset1(0.0f);
    for (int64_t j = 0; j < nr; ++j) {
        VecF x[NV];
        for (int v = 0; v < NV; ++v) x[v] = vload(rows[j] + c + v * kVecW);
        for (int i = 0; i < NQ; ++i) {
            const VecF pj = vset1(p[i * p_stride + j]);
            for (int v = 0; v < NV; ++v) acc[i][v] = vfma(pj, x[v], acc[i][v]);
        }
    }
    for (int i = 0; i < NQ; ++i)
        for (int v = 0; v < NV; ++v) vstore(out[i] + c + v * kVecW, acc[i][v]);
}

inline void mla_mix(const float* p, int64_t p_stride, int64_t nq, const float* const* rows,
                    int64_t nr, int64_t c0, int64_t c1, float* const* out) {
    constexpr int64_t kWide = kMixV * kVecW;
    int64_t i = 0;
    for (; i < nq; i += kMixQ) {
        const bool whole = i + kMixQ <= nq;
        int64_t c = c0;
        for (; c + kWide <= c1; c += kWide) {
            if (whole) {
                mix_block<kMixQ, kMixV>(p + i * p_stride, p_stride, rows, nr, c, out + i);
            } else {
                for (int64_t ii = i; ii < nq; ++ii)
                    mix_block<1, kMixV>(p + ii * p_stride, p_stride, rows, nr, c, out + ii);
            }
        }
        for (; c + kVecW <= c1; c += kVecW)
            for (int64_t ii = i; ii < nq && ii < i + kMixQ; ++ii)
                mix_block<1, 1>(p + ii * p_stride, p_stride, rows, nr, c, out + ii);
        for (; c < c1; ++c)
            for (int64_t ii = i; ii < nq && ii < i + kMixQ; ++ii) {
                float sum = 0.0f;
                for (int64_t j = 0; j < nr; ++j) sum += p[ii * p_stride + j] * rows[j][c];
                out[ii][c] = sum;
            }
    }
}

// ---- weight-row dots against NT activation rows ----

// Widens 16 weights of a float type to float.
template <GgmlType T>
inline void load16(const uint8_t* w, int64_t i, float* out) {
    if constexpr (T == GgmlType::kF32) {
        const float* f = reinterpret_cast<const float*>(w) + i;
        for (int l = 0; l < kLanes; ++l) out[l] = f[l];
    } else if constexpr (T == GgmlType::kBF16) {
        const uint16_t* h = reinterpret_cast<const uint16_t*>(w) + i;
        for (int l = 0; l < kLanes; ++l) out[l] = bf16_to_float(h[l]);
    } else {
        const uint16_t* h = reinterpret_cast<const uint16_t*>(w) + i;
#if LATENT_KERNELS_ISA >= 1
        _mm256_storeu_ps(out,
                         _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h))));
        _mm256_storeu_ps(out + 8,
                         _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + 8))));
#else
        for (int l = 0; l < kLanes; ++l) out[l] = half_to_float(h[l]);
#endif
    }
}

template <GgmlType T>
inline float load1(const uint8_t* w, int64_t i) {
    if constexpr (T == GgmlType::kF32) {
        return reinterpret_cast<const float*>(w)[i];
    } else if constexpr (T == GgmlType::kBF16) {
        return bf16_to_float(reinterpret_cast<const uint16_t*>(w)[i]);
    } else {
        return half_to_float(reinterpret_cast<const uint16_t*>(w)[i]);
    }
}

#if LATENT_KERNELS_ISA >= 1
inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Σ w·a over 32 int8 pairs, as 8 int32 partial sums. w must not hold -128.
inline __m256i dot32_i8(__m256i w, __m256i a) {
    const __m256i aw = _mm256_sign_epi8(w, w);
    const __m256i sa = _mm256_sign_epi8(a, w);
#if LATENT_KERNELS_ISA == 2
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sa);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sa), _mm256_set1_epi16(1));
#endif
}

// Weight rows are streamed from memory once per token in decode, far more than the
// caches hold: asking for the line kPrefetchBytes ahead keeps enough reads in flight
// where the hardware prefetcher alone does not (measured on a 2-vCPU Xeon VM, one core,
// 2048-wide rows of a 75 MB matrix against one activation row: Q4_0 3.8 -> 8.8 GB/s,
// Q8_0 7.6 -> 8.9 GB/s; a plain AVX-512 sum reads 14.9 GB/s there). A second request,
// kPrefetchL2Bytes ahead into L2, starts the memory reads early enough that the L1 one
// finds its line there: with a few tokens per weight row (the experts of a prompt
// chunk, ~3 tokens each at 32 tokens) the R16 kernels otherwise wait on memory far below
// its bandwidth (2-vCPU AMD EPYC VM, 37 MB Q4_0 matrix, 3 activation rows, one thread:
// AVX2 57 -> 80 GMAC/s, i.e. 10 -> 15 GB/s, the speed of an L3-resident matrix). Past the
// end of the mapping a prefetch is dropped, never a fault.
#ifndef LATENT_PREFETCH_BYTES
#define LATENT_PREFETCH_BYTES 2048
#endif
#ifndef LATENT_PREFETCH_L2_BYTES
#define LATENT_PREFETCH_L2_BYTES 16384
#endif
constexpr int64_t kPrefetchBytes = LATENT_PREFETCH_BYTES;
constexpr int64_t kPrefetchL2Bytes = LATENT_PREFETCH_L2_BYTES;
inline void prefetch_ahead(const uint8_t* p) {
    _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes), _MM_HINT_T0);
    if constexpr (kPrefetchL2Bytes > 0)
        _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchL2Bytes), _MM_HINT_T1);
}

// The 32 nibbles of a Q4_0 block in element order, as unsigned bytes 0..15.
inline __m256i unpack_q4(const uint8_t* qs) {
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(lo, 4), lo);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}
#endif

#if LATENT_KERNELS_ISA >= 1
template <GgmlType T>
inline __m256 load8(const uint8_t* w, int64_t i) {
    if constexpr (T == GgmlType::kF32) {
        return _mm256_loadu_ps(reinterpret_cast<const float*>(w) + i);
    } else if constexpr (T == GgmlType::kBF16) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * i));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    } else {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * i)));
    }
}
#endif

template <GgmlType T, int NT>
inline void dot_float(const uint8_t* w, const uint8_t* const* acts, int64_t n, float* out) {
#if LATENT_KERNELS_ISA >= 1
    __m256 acc[NT][2];
    for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    constexpr int64_t kWeightBytes = T == GgmlType::kF32 ? 4 : 2;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        if ((i * kWeightBytes) % 64 == 0) prefetch_ahead(w + i * kWeightBytes);
        const __m256 w0 = load8<T>(w, i), w1 = load8<T>(w, i + 8);
        for (int t = 0; t < NT; ++t) {
            const float* x = reinterpret_cast<const float*>(acts[t]) + i;
            acc[t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x), acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + 8), acc[t][1]);
        }
    }
    for (int t = 0; t < NT; ++t) {
        float s = hsum256(_mm256_add_ps(acc[t][0], acc[t][1]));
        const float* x = reinterpret_cast<const float*>(acts[t]);
        for (int64_t k = i; k < n; ++k) s += load1<T>(w, k) * x[k];
        out[t] = s;
    }
#else
    float acc[NT][kLanes] = {};
    float wv[kLanes];
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        load16<T>(w, i, wv);
        for (int t = 0; t < NT; ++t) {
            const float* x = reinterpret_cast<const float*>(acts[t]) + i;
            for (int l = 0; l < kLanes; ++l) acc[t][l] += wv[l] * x[l];
        }
    }
    for (int t = 0; t < NT; ++t) {
        float s = hsum_lanes(acc[t]);
        const float* x = reinterpret_cast<const float*>(acts[t]);
        for (int64_t k = i; k < n; ++k) s += load1<T>(w, k) * x[k];
        out[t] = s;
    }
#endif
}

#if LATENT_KERNELS_ISA >= 1
// One weight block of a Q8_0 or Q4_0 row as 32 int8 lanes in element order, and its scale.
// Q4_0 stays unsigned (0..15) for VNNI, whose vpdpbusd wants an unsigned operand and gets
// the −8 offset from the activations' s8; AVX2 takes it signed (q − 8).
template <GgmlType T>
inline void load_block(const uint8_t* w, int64_t b, __m256i& wq, __m256& dw) {
    if constexpr (T == GgmlType::kQ8_0) {
        const BlockQ8_0& x = reinterpret_cast<const BlockQ8_0*>(w)[b];
        wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs));
        dw = _mm256_set1_ps(half_to_float(x.d));
    } else {
        const BlockQ4_0& x = reinterpret_cast<const BlockQ4_0*>(w)[b];
        wq = unpack_q4(x.qs);
#if LATENT_KERNELS_ISA == 1
        wq = _mm256_sub_epi8(wq, _mm256_set1_epi8(8));
#endif
        dw = _mm256_set1_ps(half_to_float(x.d));
    }
}

// VNNI: −128 Σ w lane by lane, for Q8_0's Σ (q + 128) w (zero for Q4_0).
template <GgmlType T>
inline __m256i int8_correction(__m256i wq) {
#if LATENT_KERNELS_ISA == 2
    if constexpr (T == GgmlType::kQ8_0)
        return _mm256_sub_epi32(
            _mm256_setzero_si256(),
            _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(-128), wq));
#endif
    (void)wq;
    return _mm256_setzero_si256();
}

#if LATENT_KERNELS_ISA == 2
// [lo | hi], through masked broadcasts: GCC 12's casts and inserts start from an
// "undefined" vector that -Wmaybe-uninitialized (an error here) reports.
inline __m512i join256(__m256i lo, __m256i hi) {
    return _mm512_mask_broadcast_i64x4(
        _mm512_mask_broadcast_i64x4(_mm512_setzero_si512(), 0x0F, lo), 0xF0, hi);
}

// Blocks b and b + 1 of a row in one 512-bit register each: lanes 0..7 block b, 8..15
// block b + 1, in the same element order and signedness as load_block.
template <GgmlType T>
inline void load_block_pair(const uint8_t* w, int64_t b, __m512i& wq, __m512& dw) {
    float d0, d1;
    if constexpr (T == GgmlType::kQ8_0) {
        const BlockQ8_0* x = reinterpret_cast<const BlockQ8_0*>(w) + b;
        wq = join256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[0].qs)),
                     _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[1].qs)));
        d0 = half_to_float(x[0].d);
        d1 = half_to_float(x[1].d);
    } else {
        const BlockQ4_0* x = reinterpret_cast<const BlockQ4_0*>(w) + b;
        const __m256i both =
            _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[1].qs)),
                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[0].qs)));
        // [lo b | lo b+1 | hi b | hi b+1] -> [lo b | hi b | lo b+1 | hi b+1]
        const __m512i nib =
            _mm512_and_si512(join256(both, _mm256_srli_epi16(both, 4)), _mm512_set1_epi8(0x0F));
        wq = _mm512_mask_shuffle_i64x2(nib, 0xFF, nib, nib, _MM_SHUFFLE(3, 1, 2, 0));
        d0 = half_to_float(x[0].d);
        d1 = half_to_float(x[1].d);
    }
    dw = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(d0), _mm512_set1_ps(d1));
}

template <GgmlType T>
inline __m512i int8_correction_pair(__m512i wq) {
    if constexpr (T == GgmlType::kQ8_0)
        return _mm512_sub_epi32(
            _mm512_setzero_si512(),
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(-128), wq));
    (void)wq;
    return _mm512_setzero_si512();
}

// Σ w·a of blocks b and b + 1 against activation row a, as 16 int32 lanes.
template <GgmlType T>
inline __m512i int8_pair_dot(__m512i wq, __m512i corr, const ActQ8_0& a, int64_t b) {
    if constexpr (T == GgmlType::kQ8_0) {
        const __m512i au = _mm512_loadu_si512(a.u + b * kQK);
        return _mm512_dpbusd_epi32(corr, au, wq);
    } else {
        const __m512i aq = _mm512_loadu_si512(a.q + b * kQK);
        const __m512i init = _mm512_loadu_si512(a.s8 + 8 * b);
        return _mm512_dpbusd_epi32(init, wq, aq);
    }
}
#endif

// Σ w·a of block b against activation row a, as 8 int32 lanes.
template <GgmlType T>
inline __m256i int8_block_dot(__m256i wq, __m256i corr, const ActQ8_0& a, int64_t b) {
#if LATENT_KERNELS_ISA == 2
    if constexpr (T == GgmlType::kQ8_0) {
        const __m256i au = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.u + b * kQK));
        return _mm256_dpbusd_epi32(corr, au, wq);
    } else {
        const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q + b * kQK));
        const __m256i init = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.s8 + 8 * b));
        return _mm256_dpbusd_epi32(init, wq, aq);
    }
#else
    (void)corr;
    const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q + b * kQK));
    return dot32_i8(wq, aq);
#endif
}
#endif

#if LATENT_KERNELS_ISA >= 1
// Q4_0 rows 4 blocks (72 bytes) at a time against the activations' nibble-ordered qn: the
// blocks' packed nibbles are taken as they lie — low nibbles (values 0..15 of each block)
// in one register, high nibbles (16..31) in another — so that a group costs two int8 dots
// per activation row and no shuffle into element order; each int32 lane holds 4 values of
// low and 4 of high nibbles of one block, started at −8 Σ q by s4, and is scaled by its
// block's weight and activation scales. Sums of groups 0..groups) go to sum[t].
#if LATENT_KERNELS_ISA == 2
// Word indexes of the gathers (blocks are 18 bytes: every field starts on a word): the 4
// blocks' qs into one register, and each block's scale d into 4 consecutive words.
alignas(64) inline const uint16_t kQ4GroupQs[32] = {1,  2,  3,  4,  5,  6,  7,  8,  10, 11, 12,
                                                    13, 14, 15, 16, 17, 19, 20, 21, 22, 23, 24,
                                                    25, 26, 28, 29, 30, 31, 32, 33, 34, 35};
alignas(64) inline const uint16_t kQ4GroupD[32] = {0,  0,  0,  0,  9,  9,  9,  9,
                                                   18, 18, 18, 18, 27, 27, 27, 27};
#endif

template <int NT>
inline void dot_q4_0_groups(const uint8_t* w, const ActQ8_0* a, int64_t groups, float* sum) {
    constexpr int64_t kGroupBytes = kGroupBlocks * int64_t(sizeof(BlockQ4_0));
#if LATENT_KERNELS_ISA == 2
    const __m512i idx_qs = _mm512_load_si512(kQ4GroupQs);
    const __m512i idx_d = _mm512_load_si512(kQ4GroupD);
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    auto step = [&](int64_t g, __m512 * acc) __attribute__((always_inline)) {
        const uint8_t* p = w + g * kGroupBytes;
        prefetch_ahead(p);
        prefetch_ahead(p + 64);
        const __m512i z0 = _mm512_loadu_si512(p);
        const __m512i z1 = _mm512_maskz_loadu_epi16(0x0F, p + 64);  // bytes 64..71 only
        const __m512i qs = _mm512_permutex2var_epi16(z0, idx_qs, z1);
        const __m512 dw =
            _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(idx_d, z0)));
        const __m512i lo = _mm512_and_si512(qs, low4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(qs, 4), low4);
        for (int t = 0; t < NT; ++t) {
            const int8_t* qn = a[t].qn + 128 * g;
            __m512i isum = _mm512_dpbusd_epi32(_mm512_loadu_si512(a[t].s4 + 16 * g), lo,
                                               _mm512_loadu_si512(qn));
            isum = _mm512_dpbusd_epi32(isum, hi, _mm512_loadu_si512(qn + 64));
            const __m512 scale = _mm512_mul_ps(_mm512_loadu_ps(a[t].d4 + 16 * g), dw);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, acc[t]);
        }
    };
    // Two groups per turn into two sets of accumulators: two dependency chains per row.
    __m512 acc0[NT], acc1[NT];
    for (int t = 0; t < NT; ++t) acc0[t] = acc1[t] = _mm512_setzero_ps();
    int64_t g = 0;
    for (; g + 2 <= groups; g += 2) {
        step(g, acc0);
        step(g + 1, acc1);
    }
    if (g < groups) step(g, acc0);
    for (int t = 0; t < NT; ++t) sum[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[t], acc1[t]));
#else
    // Two blocks per 256-bit register; int8 products in int16 pairs (at most 2·15·127 per
    // pair, 4·15·127 after adding low and high: no saturation), then int32 lanes.
    __m256 acc[NT][2];
    for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t g = 0; g < groups; ++g) {
        const uint8_t* p = w + g * kGroupBytes;
        prefetch_ahead(p);
        prefetch_ahead(p + 64);
        for (int h = 0; h < 2; ++h) {  // blocks 2h, 2h + 1 of the group
            const BlockQ4_0* x = reinterpret_cast<const BlockQ4_0*>(p) + 2 * h;
            const __m256i qs =
                _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[1].qs)),
                                 _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[0].qs)));
            const __m256i lo = _mm256_and_si256(qs, low4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qs, 4), low4);
            const __m256 dw = _mm256_set_m128(_mm_set1_ps(half_to_float(x[1].d)),
                                              _mm_set1_ps(half_to_float(x[0].d)));
            for (int t = 0; t < NT; ++t) {
                const int8_t* qn = a[t].qn + 128 * g + 32 * h;
                const __m256i s16 = _mm256_add_epi16(
                    _mm256_maddubs_epi16(lo,
                                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qn))),
                    _mm256_maddubs_epi16(
                        hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qn + 64))));
                const __m256i isum = _mm256_add_epi32(
                    _mm256_madd_epi16(s16, ones),
                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t].s4 + 16 * g + 8 * h)));
                const __m256 scale = _mm256_mul_ps(_mm256_loadu_ps(a[t].d4 + 16 * g + 8 * h), dw);
                acc[t][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc[t][h]);
            }
        }
    }
    for (int t = 0; t < NT; ++t) sum[t] = hsum256(_mm256_add_ps(acc[t][0], acc[t][1]));
#endif
}
#endif

// A Q8_0 or Q4_0 weight row against NT activation rows (format kQ8_0).
template <GgmlType T, int NT>
inline void dot_int8(const uint8_t* w, const uint8_t* const* acts, int64_t n, float* out) {
    const int64_t nb = n / kQK;
    ActQ8_0 a[NT];
    for (int t = 0; t < NT; ++t) a[t] = view_q8_0(acts[t], n);
#if LATENT_KERNELS_ISA >= 1
    // U accumulators per activation row, used in turn, so that few rows (decode: one)
    // still have U independent FMA chains instead of one chain bound by FMA latency.
    constexpr int U = NT >= 4 ? 1 : 4 / NT;
    __m256 acc[NT][U];
    for (int t = 0; t < NT; ++t)
        for (int u = 0; u < U; ++u) acc[t][u] = _mm256_setzero_ps();
    auto step = [&](int64_t b, int u) __attribute__((always_inline)) {
        __m256i wq;
        __m256 dw;
        load_block<T>(w, b, wq, dw);
        const __m256i corr = int8_correction<T>(wq);
        for (int t = 0; t < NT; ++t) {
            const __m256i sum = int8_block_dot<T>(wq, corr, a[t], b);
            const __m256 da = _mm256_loadu_ps(a[t].d8 + 8 * b);
            acc[t][u] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(sum), da), dw, acc[t][u]);
        }
    };
    constexpr int64_t kBlockBytes =
        T == GgmlType::kQ8_0 ? int64_t(sizeof(BlockQ8_0)) : int64_t(sizeof(BlockQ4_0));
    int64_t b = 0;
    float groups_sum[NT] = {};
    if constexpr (T == GgmlType::kQ4_0) {
        const int64_t groups = nb / kGroupBlocks;
        dot_q4_0_groups<NT>(w, a, groups, groups_sum);
        b = groups * kGroupBlocks;
    }
    for (; b + U <= nb; b += U) {
        for (int64_t at = 0; at < U * kBlockBytes; at += 64)
            prefetch_ahead(w + b * kBlockBytes + at);
        for (int u = 0; u < U; ++u) step(b + u, u);
    }
    for (; b < nb; ++b) step(b, 0);
    for (int t = 0; t < NT; ++t) {
        __m256 sum = acc[t][0];
        for (int v = 1; v < U; ++v) sum = _mm256_add_ps(sum, acc[t][v]);
        out[t] = groups_sum[t] + hsum256(sum);
    }
#else
    float acc[NT] = {};
    int8_t wv[kQK];
    for (int64_t b = 0; b < nb; ++b) {
        float dw;
        if constexpr (T == GgmlType::kQ8_0) {
            const BlockQ8_0& x = reinterpret_cast<const BlockQ8_0*>(w)[b];
            dw = half_to_float(x.d);
            for (int j = 0; j < kQK; ++j) wv[j] = x.qs[j];
        } else {
            const BlockQ4_0& x = reinterpret_cast<const BlockQ4_0*>(w)[b];
            dw = half_to_float(x.d);
            for (int j = 0; j < kQK / 2; ++j) {
                wv[j] = static_cast<int8_t>((x.qs[j] & 0xF) - 8);
                wv[j + kQK / 2] = static_cast<int8_t>((x.qs[j] >> 4) - 8);
            }
        }
        for (int t = 0; t < NT; ++t) {
            int32_t sum = 0;
            for (int j = 0; j < kQK; ++j) sum += wv[j] * a[t].q[b * kQK + j];
            acc[t] += static_cast<float>(sum) * a[t].d8[8 * b] * dw;
        }
    }
    for (int t = 0; t < NT; ++t) out[t] = acc[t];
#endif
}

#if LATENT_KERNELS_ISA >= 1
// Two weight rows against NT activation rows: each activation block is loaded once for
// both rows, which halves the activation traffic from L2 — the limit of the one-row loop
// in prefill. Same arithmetic as dot_int8, so the same sums.
template <GgmlType T, int NT>
inline void dot2_int8(const uint8_t* w0, const uint8_t* w1, const uint8_t* const* acts, int64_t n,
                      float* out0, float* out1) {
    const int64_t nb = n / kQK;
    ActQ8_0 a[NT];
    for (int t = 0; t < NT; ++t) a[t] = view_q8_0(acts[t], n);
    __m256 acc0[NT], acc1[NT];
    for (int t = 0; t < NT; ++t) acc0[t] = acc1[t] = _mm256_setzero_ps();
    constexpr int64_t kBlockBytes =
        T == GgmlType::kQ8_0 ? int64_t(sizeof(BlockQ8_0)) : int64_t(sizeof(BlockQ4_0));
    int64_t b = 0;
#if LATENT_KERNELS_ISA == 2
    // AVX-512: two blocks per 512-bit register, so each instruction does twice the work
    // (prefill is compute-bound); the odd last block goes through the 256-bit loop below.
    __m512 zacc0[NT], zacc1[NT];
    for (int t = 0; t < NT; ++t) zacc0[t] = zacc1[t] = _mm512_setzero_ps();
    for (; b + 2 <= nb; b += 2) {
        if (((b * kBlockBytes) & 63) < 2 * kBlockBytes) {
            prefetch_ahead(w0 + b * kBlockBytes);
            prefetch_ahead(w1 + b * kBlockBytes);
        }
        __m512i wq0, wq1;
        __m512 dw0, dw1;
        load_block_pair<T>(w0, b, wq0, dw0);
        load_block_pair<T>(w1, b, wq1, dw1);
        const __m512i corr0 = int8_correction_pair<T>(wq0), corr1 = int8_correction_pair<T>(wq1);
        for (int t = 0; t < NT; ++t) {
            const __m512i s0 = int8_pair_dot<T>(wq0, corr0, a[t], b);
            const __m512i s1 = int8_pair_dot<T>(wq1, corr1, a[t], b);
            const __m512 da = _mm512_loadu_ps(a[t].d8 + 8 * b);  // 8 copies per block
            zacc0[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s0), da), dw0, zacc0[t]);
            zacc1[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s1), da), dw1, zacc1[t]);
        }
    }
    for (int t = 0; t < NT; ++t) {
        acc0[t] =
            _mm256_add_ps(_mm512_castps512_ps256(zacc0[t]), _mm512_extractf32x8_ps(zacc0[t], 1));
        acc1[t] =
            _mm256_add_ps(_mm512_castps512_ps256(zacc1[t]), _mm512_extractf32x8_ps(zacc1[t], 1));
    }
#endif
    for (; b < nb; ++b) {
        if (((b * kBlockBytes) & 63) < kBlockBytes) {  // this block starts a new cache line
            prefetch_ahead(w0 + b * kBlockBytes);
            prefetch_ahead(w1 + b * kBlockBytes);
        }
        __m256i wq0, wq1;
        __m256 dw0, dw1;
        load_block<T>(w0, b, wq0, dw0);
        load_block<T>(w1, b, wq1, dw1);
        const __m256i corr0 = int8_correction<T>(wq0), corr1 = int8_correction<T>(wq1);
        for (int t = 0; t < NT; ++t) {
            const __m256i s0 = int8_block_dot<T>(wq0, corr0, a[t], b);
            const __m256i s1 = int8_block_dot<T>(wq1, corr1, a[t], b);
            const __m256 da = _mm256_broadcast_ss(a[t].d8 + 8 * b);
            acc0[t] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(s0), da), dw0, acc0[t]);
            acc1[t] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(s1), da), dw1, acc1[t]);
        }
    }
    for (int t = 0; t < NT; ++t) {
        out0[t] = hsum256(acc0[t]);
        out1[t] = hsum256(acc1[t]);
    }
}
#endif

// K-quants: each 256-value super-block is unpacked once into int8 values in element order
// plus integer group scales (and mins), then dotted with each activation row in integers.
struct KBlock {
    int8_t v[kQKK];
    int32_t scale[16];  // per group
    int32_t min[8];     // per 32-value sub-block (Q4_K, Q5_K)
    float d, dmin;
};

template <GgmlType T>
inline void unpack_k(const uint8_t* w, int64_t b, KBlock& k) {
    if constexpr (T == GgmlType::kQ6_K) {
        const BlockQ6_K& x = reinterpret_cast<const BlockQ6_K*>(w)[b];
        k.d = half_to_float(x.d);
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = x.ql + 64 * h;
            const uint8_t* qh = x.qh + 32 * h;
            int8_t* o = k.v + 128 * h;
            for (int l = 0; l < 32; ++l) {
                o[l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
                o[l + 32] =
                    static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                o[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                o[l + 96] =
                    static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        }
        for (int g = 0; g < 16; ++g) k.scale[g] = x.scales[g];
    } else {
        const auto& x =
            reinterpret_cast<const std::conditional_t<T == GgmlType::kQ4_K, BlockQ4_K, BlockQ5_K>*>(
                w)[b];
        k.d = half_to_float(x.d);
        k.dmin = half_to_float(x.dmin);
        for (int c = 0; c < 4; ++c) {
            const uint8_t* q = x.qs + 32 * c;
            for (int l = 0; l < 32; ++l) {
                int lo = q[l] & 0xF, hi = q[l] >> 4;
                if constexpr (T == GgmlType::kQ5_K) {
                    lo += (x.qh[l] >> (2 * c)) & 1 ? 16 : 0;
                    hi += (x.qh[l] >> (2 * c + 1)) & 1 ? 16 : 0;
                }
                k.v[64 * c + l] = static_cast<int8_t>(lo);
                k.v[64 * c + 32 + l] = static_cast<int8_t>(hi);
            }
        }
        for (int j = 0; j < 8; ++j) scale_min_k4(j, x.scales, &k.scale[j], &k.min[j]);
    }
}

inline int32_t dot16_i8(const int8_t* a, const int8_t* b) {
    int32_t s = 0;
    for (int i = 0; i < 16; ++i) s += static_cast<int32_t>(a[i]) * b[i];
    return s;
}

#if LATENT_KERNELS_ISA >= 1
inline int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}
#endif

template <GgmlType T, int NT>
inline void dot_k(const uint8_t* w, const uint8_t* const* acts, int64_t n, float* out) {
    const int64_t nb = n / kQKK;
    float acc[NT] = {};
    KBlock k;
    for (int64_t b = 0; b < nb; ++b) {
#if LATENT_KERNELS_ISA >= 1
        constexpr int64_t kBytes = block_bytes_of(T);
        for (int64_t at = 0; at < kBytes; at += 64) prefetch_ahead(w + b * kBytes + at);
#endif
        unpack_k<T>(w, b, k);
#if LATENT_KERNELS_ISA >= 1
        // Per 32 values: unsigned values (Q6_K's shifted by +32) times signed activations in
        // int16 pairs (at most 2·63·127, no saturation), then times the group scales as int16
        // — one scale per 128-bit half, so Q6_K's groups of 16 and Q4_K's sub-blocks of 32
        // both fit — summed into int32 lanes.
        __m256i sc[8];
        for (int c = 0; c < 8; ++c) {
            const int lo = T == GgmlType::kQ6_K ? k.scale[2 * c] : k.scale[c];
            const int hi = T == GgmlType::kQ6_K ? k.scale[2 * c + 1] : k.scale[c];
            sc[c] = _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(hi)),
                                     _mm_set1_epi16(static_cast<int16_t>(lo)));
        }
        __m256i vv[8];
        for (int c = 0; c < 8; ++c) {
            vv[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k.v + 32 * c));
            if constexpr (T == GgmlType::kQ6_K)
                vv[c] = _mm256_add_epi8(vv[c], _mm256_set1_epi8(32));
        }
        for (int t = 0; t < NT; ++t) {
            const BlockQ8_K& a = reinterpret_cast<const BlockQ8_K*>(acts[t])[b];
            __m256i isum = _mm256_setzero_si256();
            for (int c = 0; c < 8; ++c) {
                const __m256i aa =
                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + 32 * c));
                isum = _mm256_add_epi32(isum,
                                        _mm256_madd_epi16(_mm256_maddubs_epi16(vv[c], aa), sc[c]));
            }
            int32_t total = hsum_i32(isum);
            if constexpr (T == GgmlType::kQ6_K) {
                int32_t off = 0;
                for (int g = 0; g < 16; ++g) off += k.scale[g] * a.bsums[g];
                total -= 32 * off;
                acc[t] += k.d * a.d * static_cast<float>(total);
            } else {
                int32_t imin = 0;
                for (int j = 0; j < 8; ++j)
                    imin += k.min[j] * (a.bsums[2 * j] + a.bsums[2 * j + 1]);
                acc[t] +=
                    k.d * a.d * static_cast<float>(total) - k.dmin * a.d * static_cast<float>(imin);
            }
        }
#else
        for (int t = 0; t < NT; ++t) {
            const BlockQ8_K& a = reinterpret_cast<const BlockQ8_K*>(acts[t])[b];
            if constexpr (T == GgmlType::kQ6_K) {
                int32_t isum = 0;
                for (int g = 0; g < 16; ++g)
                    isum += k.scale[g] * dot16_i8(k.v + 16 * g, a.qs + 16 * g);
                acc[t] += k.d * a.d * static_cast<float>(isum);
            } else {
                int32_t isum = 0, imin = 0;
                for (int j = 0; j < 8; ++j) {
                    isum += k.scale[j] * (dot16_i8(k.v + 32 * j, a.qs + 32 * j) +
                                          dot16_i8(k.v + 32 * j + 16, a.qs + 32 * j + 16));
                    imin += k.min[j] * (a.bsums[2 * j] + a.bsums[2 * j + 1]);
                }
                acc[t] +=
                    k.d * a.d * static_cast<float>(isum) - k.dmin * a.d * static_cast<float>(imin);
            }
        }
#endif
    }
    for (int t = 0; t < NT; ++t) out[t] = acc[t];
}

// Any computable weight type against float activations: each block widened to float by
// the reference dequantizer, then a float dot (the precise mode of act_format).
template <int NT>
inline void dot_widened(GgmlType type, int64_t block, int64_t block_bytes, const uint8_t* w,
                        const uint8_t* const* acts, int64_t n, float* out) {
    float acc[NT][kLanes] = {};
    float wv[kQKK];
    for (int64_t b = 0; b < n / block; ++b) {
        dequantize_row(type, w + b * block_bytes, wv, block);
        for (int t = 0; t < NT; ++t) {
            const float* x = reinterpret_cast<const float*>(acts[t]) + b * block;
            for (int64_t i = 0; i < block; i += kLanes)
                for (int l = 0; l < kLanes; ++l) acc[t][l] += wv[i + l] * x[i + l];
        }
    }
    for (int t = 0; t < NT; ++t) out[t] = hsum_lanes(acc[t]);
}

template <int NT>
inline void dot_tile(GgmlType type, ActFormat format, const uint8_t* w, const uint8_t* const* acts,
                     int64_t n, float* out) {
    if (format == ActFormat::kF32 && block_of(type) > 1)
        return dot_widened<NT>(type, block_of(type), block_bytes_of(type), w, acts, n, out);
    switch (type) {
        case GgmlType::kF32:
            return dot_float<GgmlType::kF32, NT>(w, acts, n, out);
        case GgmlType::kF16:
            return dot_float<GgmlType::kF16, NT>(w, acts, n, out);
        case GgmlType::kBF16:
            return dot_float<GgmlType::kBF16, NT>(w, acts, n, out);
        case GgmlType::kQ8_0:
            return dot_int8<GgmlType::kQ8_0, NT>(w, acts, n, out);
        case GgmlType::kQ4_0:
            return dot_int8<GgmlType::kQ4_0, NT>(w, acts, n, out);
        case GgmlType::kQ4_K:
            return dot_k<GgmlType::kQ4_K, NT>(w, acts, n, out);
        case GgmlType::kQ5_K:
            return dot_k<GgmlType::kQ5_K, NT>(w, acts, n, out);
        case GgmlType::kQ6_K:
            return dot_k<GgmlType::kQ6_K, NT>(w, acts, n, out);
        default:
            __builtin_trap();
    }
}

// Two weight rows at once where a two-row kernel exists (the int8 types), else two calls.
template <int NT>
inline void dot_tile2(GgmlType type, ActFormat format, const uint8_t* w0, const uint8_t* w1,
                      const uint8_t* const* acts, int64_t n, float* out0, float* out1) {
#if LATENT_KERNELS_ISA >= 1
    if (format == ActFormat::kQ8_0) {
        if (type == GgmlType::kQ8_0)
            return dot2_int8<GgmlType::kQ8_0, NT>(w0, w1, acts, n, out0, out1);
        if (type == GgmlType::kQ4_0)
            return dot2_int8<GgmlType::kQ4_0, NT>(w0, w1, acts, n, out0, out1);
    }
#endif
    dot_tile<NT>(type, format, w0, acts, n, out0);
    dot_tile<NT>(type, format, w1, acts, n, out1);
}

// Activation rows per cache block: this many quantized rows stay in L2 while every weight
// row of the caller's range passes over them.
constexpr int64_t kTokenBlock = 32;

#if LATENT_KERNELS_ISA >= 1
// Q4_0 weights in prefill: each weight row is widened once per block of activation rows
// into a small Q8_0 row on the stack (d as is, q − 8 as int8), then dotted by the Q8_0
// kernel — the nibble unpacking is paid once per 32 tokens instead of once per 4. Not a
// copy of the weights: two rows at a time, 24 KB at most.
constexpr int64_t kMaxWiden = 1 << 14;  // values per row; longer rows take the direct path

inline void widen_q4_0(const uint8_t* w, int64_t n, BlockQ8_0* out) {
    const BlockQ4_0* x = reinterpret_cast<const BlockQ4_0*>(w);
    for (int64_t b = 0; b < n / kQK; ++b) {
        if (((b * int64_t(sizeof(BlockQ4_0))) & 63) < int64_t(sizeof(BlockQ4_0)))
            prefetch_ahead(w + b * int64_t(sizeof(BlockQ4_0)));
        out[b].d = x[b].d;
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].qs),
                            _mm256_sub_epi8(unpack_q4(x[b].qs), _mm256_set1_epi8(8)));
    }
}
#endif

// One token tile against two weight rows (wb may be null: one row), written into y.
inline void tile_rows(GgmlType type, ActFormat format, const uint8_t* wa, const uint8_t* wb,
                      int64_t r, const uint8_t* const* acts, int64_t t, int64_t nt, int64_t n,
                      float* y, int64_t y_stride) {
    float out0[kTileTokens], out1[kTileTokens];
    if (wb) {
        switch (nt) {
            case 4:
                dot_tile2<4>(type, format, wa, wb, acts + t, n, out0, out1);
                break;
            case 3:
                dot_tile2<3>(type, format, wa, wb, acts + t, n, out0, out1);
                break;
            case 2:
                dot_tile2<2>(type, format, wa, wb, acts + t, n, out0, out1);
                break;
            default:
                dot_tile2<1>(type, format, wa, wb, acts + t, n, out0, out1);
                break;
        }
    } else {
        switch (nt) {
            case 4:
                dot_tile<4>(type, format, wa, acts + t, n, out0);
                break;
            case 3:
                dot_tile<3>(type, format, wa, acts + t, n, out0);
                break;
            case 2:
                dot_tile<2>(type, format, wa, acts + t, n, out0);
                break;
            default:
                dot_tile<1>(type, format, wa, acts + t, n, out0);
                break;
        }
    }
    for (int64_t j = 0; j < nt; ++j) {
        y[(t + j) * y_stride + r] = out0[j];
        if (wb) y[(t + j) * y_stride + r + 1] = out1[j];
    }
}

inline void matmul_rows(GgmlType type, ActFormat format, const uint8_t* w, uint64_t row_bytes,
                        int64_t r0, int64_t r1, const uint8_t* const* acts, int64_t n_act,
                        int64_t n, float* y, int64_t y_stride) {
#if LATENT_KERNELS_ISA >= 1
    BlockQ8_0 wide[2][kMaxWiden / kQK];
    const bool widen =
        type == GgmlType::kQ4_0 && format == ActFormat::kQ8_0 && n_act >= 8 && n <= kMaxWiden;
#else
    const bool widen = false;
#endif
    for (int64_t t0 = 0; t0 < n_act; t0 += kTokenBlock) {
        const int64_t t1 = t0 + kTokenBlock < n_act ? t0 + kTokenBlock : n_act;
        int64_t r = r0;
        // Two rows at a time in prefill; decode streams one row at a time (faster there).
        for (; n_act > 1 && r + 1 < r1; r += 2) {
            const uint8_t* wa = w + static_cast<uint64_t>(r) * row_bytes;
            const uint8_t* wb = wa + row_bytes;
            GgmlType t_type = type;
#if LATENT_KERNELS_ISA >= 1
            if (widen) {
                widen_q4_0(wa, n, wide[0]);
                widen_q4_0(wb, n, wide[1]);
                wa = reinterpret_cast<const uint8_t*>(wide[0]);
                wb = reinterpret_cast<const uint8_t*>(wide[1]);
                t_type = GgmlType::kQ8_0;
            }
#endif
            for (int64_t t = t0; t < t1; t += kTileTokens)
                tile_rows(t_type, format, wa, wb, r, acts, t,
                          t1 - t < kTileTokens ? t1 - t : kTileTokens, n, y, y_stride);
        }
        for (; r < r1; ++r) {
            const uint8_t* wr = w + static_cast<uint64_t>(r) * row_bytes;
            for (int64_t t = t0; t < t1; t += kTileTokens)
                tile_rows(type, format, wr, nullptr, r, acts, t,
                          t1 - t < kTileTokens ? t1 - t : kTileTokens, n, y, y_stride);
        }
    }
    (void)widen;
}

// ---- weights in the R16 layout (kernels.h) ----

#if LATENT_KERNELS_ISA >= 1
inline int32_t load_i32(const int8_t* p) {
    int32_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

// One group of 16 rows against NT tokens: per block, the weights are loaded (and Q4_0's
// nibbles split) once, then each token's 32 values are taken 4 at a time by broadcast into
// int8 dots whose 16 int32 lanes are the 16 rows — sums started at m8 (Q4_0: the −8 offset
// of the nibbles) or m128 (Q8_0: its quants were stored plus 128) — then scaled by the
// rows' and the token's block scales. y[t * y_stride + 0..16) = the 16 rows for token t.
template <GgmlType T, int NT>
inline void r16_tile(const uint8_t* grp, int64_t nb, const ActQ8_0* a, float* y, int64_t y_stride) {
    constexpr int64_t kBlock =
        16 * (T == GgmlType::kQ4_0 ? int64_t(sizeof(BlockQ4_0)) : int64_t(sizeof(BlockQ8_0)));
#if LATENT_KERNELS_ISA == 2
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = grp + b * kBlock;
        for (int64_t at = 0; at < kBlock; at += 64) prefetch_ahead(blk + at);
        const __m512 dw =
            _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
        __m512i wv[8];
        if constexpr (T == GgmlType::kQ4_0) {
            for (int j = 0; j < 4; ++j) {
                const __m512i p = _mm512_loadu_si512(blk + 32 + 64 * j);
                wv[j] = _mm512_and_si512(p, low4);
                wv[4 + j] = _mm512_and_si512(_mm512_srli_epi16(p, 4), low4);
            }
        } else {
            for (int j = 0; j < 8; ++j) wv[j] = _mm512_loadu_si512(blk + 32 + 64 * j);
        }
        for (int t = 0; t < NT; ++t) {
            const int8_t* q = a[t].q + b * kQK;
            __m512i s = _mm512_set1_epi32(T == GgmlType::kQ4_0 ? a[t].m8[b] : a[t].m128[b]);
            for (int j = 0; j < 8; ++j)
                s = _mm512_dpbusd_epi32(s, wv[j], _mm512_set1_epi32(load_i32(q + 4 * j)));
            const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(a[t].d8[8 * b]));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, acc[t]);
        }
    }
    for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * y_stride, acc[t]);
#else
    // Rows 0..7 and 8..15 as two halves of 8 lanes each; int8 products summed in int16
    // (Q4_0: 8 pairs of at most 2·15·127, no saturation), then int32. With few tokens both
    // halves of a block are done together (the weights read once, in order); with more,
    // their accumulators and the unpacked weights would not fit the 16 registers, so the
    // halves take turns over the whole row.
    // Q8_0's stored quants (plus 128, up to 255) would saturate those int16 pairs: they
    // are taken back to signed w, and each pair is |w|·(a·sign w) (VPSIGNB; at most
    // 2·127·127, no saturation), widened to int32 at once.
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    auto half_q8 = [&](const uint8_t* blk, int64_t b, int h, __m256* acc)
        __attribute__((always_inline)) {
        const __m256 dw =
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16 * h)));
        const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
        __m256i isum[NT];
        for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
        for (int j = 0; j < 8; ++j) {
            const __m256i w = _mm256_xor_si256(  // the signed quants back
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 32 + 64 * j + 32 * h)),
                flip);
            const __m256i aw = _mm256_abs_epi8(w);
            for (int t = 0; t < NT; ++t) {
                const __m256i av = _mm256_set1_epi32(load_i32(a[t].q + b * kQK + 4 * j));
                isum[t] = _mm256_add_epi32(
                    isum[t],
                    _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(av, w)), ones));
            }
        }
        for (int t = 0; t < NT; ++t) {
            const __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(a[t].d8[8 * b]));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), scale, acc[t]);
        }
    };
    auto half_q4 = [&](const uint8_t* blk, int64_t b, int h, __m256* acc)
        __attribute__((always_inline)) {
        const __m256 dw =
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16 * h)));
        __m256i wv[8];
        for (int j = 0; j < 4; ++j) {
            const __m256i p =
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 32 + 64 * j + 32 * h));
            wv[j] = _mm256_and_si256(p, low4);
            wv[4 + j] = _mm256_and_si256(_mm256_srli_epi16(p, 4), low4);
        }
        for (int t = 0; t < NT; ++t) {
            const int8_t* q = a[t].q + b * kQK;
            __m256i s16 = _mm256_maddubs_epi16(wv[0], _mm256_set1_epi32(load_i32(q)));
            for (int j = 1; j < 8; ++j)
                s16 = _mm256_add_epi16(
                    s16, _mm256_maddubs_epi16(wv[j], _mm256_set1_epi32(load_i32(q + 4 * j))));
            const __m256i sum =
                _mm256_add_epi32(_mm256_madd_epi16(s16, ones), _mm256_set1_epi32(a[t].m8[b]));
            const __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(a[t].d8[8 * b]));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, acc[t]);
        }
    };
    auto half = [&](const uint8_t* blk, int64_t b, int h, __m256* acc)
        __attribute__((always_inline)) {
        if constexpr (T == GgmlType::kQ4_0)
            half_q4(blk, b, h, acc);
        else
            half_q8(blk, b, h, acc);
    };
    if constexpr (NT <= 2) {
        __m256 acc[2][NT];
        for (int t = 0; t < NT; ++t) acc[0][t] = acc[1][t] = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; ++b) {
            const uint8_t* blk = grp + b * kBlock;
            for (int64_t at = 0; at < kBlock; at += 64) prefetch_ahead(blk + at);
            half(blk, b, 0, acc[0]);
            half(blk, b, 1, acc[1]);
        }
        for (int h = 0; h < 2; ++h)
            for (int t = 0; t < NT; ++t) _mm256_storeu_ps(y + t * y_stride + 8 * h, acc[h][t]);
    } else {
        for (int h = 0; h < 2; ++h) {
            __m256 acc[NT];
            for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
            for (int64_t b = 0; b < nb; ++b) {
                const uint8_t* blk = grp + b * kBlock;
                if (h == 0)
                    for (int64_t at = 0; at < kBlock; at += 64) prefetch_ahead(blk + at);
                half(blk, b, h, acc);
            }
            for (int t = 0; t < NT; ++t) _mm256_storeu_ps(y + t * y_stride + 8 * h, acc[t]);
        }
    }
#endif
}

// The most tokens one R16 tile takes (accumulators held in registers: 32 vector
// registers for AVX-512, 16 for AVX2).
constexpr int kR16Tokens = LATENT_KERNELS_ISA == 2 ? 8 : 4;

// r16_tile for each tile size 1..kR16Tokens, by its size.
using R16Tile = void (*)(const uint8_t*, int64_t, const ActQ8_0*, float*, int64_t);
template <GgmlType T, int... NT>
constexpr R16Tile kR16TileOf[] = {nullptr, &r16_tile<T, NT>...};
template <GgmlType T>
constexpr const R16Tile* kR16Tile =
#if LATENT_KERNELS_ISA == 2
    kR16TileOf<T, 1, 2, 3, 4, 5, 6, 7, 8>;
#else
    kR16TileOf<T, 1, 2, 3, 4>;
#endif

template <GgmlType T>
inline void matmul_r16_typed(const uint8_t* w, uint64_t row_bytes, int64_t r0, int64_t r1,
                             const uint8_t* const* acts, int64_t n_act, int64_t n, float* y,
                             int64_t y_stride) {
    const int64_t nb = n / kQK;
    for (int64_t r = r0; r < r1; r += 16) {
        const uint8_t* grp = w + static_cast<uint64_t>(r) * row_bytes;
        for (int64_t t0 = 0; t0 < n_act; t0 += kR16Tokens) {
            const int64_t nt = n_act - t0 < kR16Tokens ? n_act - t0 : kR16Tokens;
            ActQ8_0 a[kR16Tokens];
            for (int64_t t = 0; t < nt; ++t) a[t] = view_q8_0(acts[t0 + t], n);
            float* yt = y + t0 * y_stride + r;
            kR16Tile<T>[nt](grp, nb, a, yt, y_stride);
        }
    }
}

inline bool takes_r16(GgmlType type) { return type == GgmlType::kQ4_0 || type == GgmlType::kQ8_0; }

inline void matmul_r16(GgmlType type, const uint8_t* w, uint64_t row_bytes, int64_t r0, int64_t r1,
                       const uint8_t* const* acts, int64_t n_act, int64_t n, float* y,
                       int64_t y_stride) {
    if (type == GgmlType::kQ8_0)
        return matmul_r16_typed<GgmlType::kQ8_0>(w, row_bytes, r0, r1, acts, n_act, n, y, y_stride);
    if (type == GgmlType::kQ4_0)
        return matmul_r16_typed<GgmlType::kQ4_0>(w, row_bytes, r0, r1, acts, n_act, n, y, y_stride);
    __builtin_trap();
}
#endif

inline const Kernels& table(const char* name) {
#if LATENT_KERNELS_ISA >= 1
    static const Kernels k{name,        &quantize,  &matmul_rows, &dot_f32, &axpy,
                           &scale,      &attend,    &softmax,     nullptr,  nullptr,
                           &matmul_r16, &takes_r16, &mla_scores,  &mla_mix, &swiglu};
#else
    static const Kernels k{name,    &quantize, &matmul_rows, &dot_f32, &axpy,
                           &scale,  &attend,   &softmax,     nullptr,  nullptr,
                           nullptr, nullptr,   &mla_scores,  &mla_mix, &swiglu};
#endif
    return k;
}

}  // namespace latent::engine::cpu::LATENT_KERNELS_NS
