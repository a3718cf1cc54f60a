// Reference conversion between float and the ggml block formats (engine/quant.h): one block at a
// time, plain scalar code, written for checking rather than speed. The fast paths live in
// engine/cpu and engine/cuda and are tested against these.
#include "engine/quant.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/fp16.h"
#include "engine/quant_blocks.h"

namespace latent::engine {

namespace {

// ---------------------------------------------------------------------------------------------
// Traits

constexpr TypeTraits kF32{"f32", 1, 4, true};
constexpr TypeTraits kF16{"f16", 1, 2, true};
constexpr TypeTraits kBF16{"bf16", 1, 2, true};
constexpr TypeTraits kQ4_0{"q4_0", kQK, sizeof(BlockQ4_0), true};
constexpr TypeTraits kQ4_1{"q4_1", kQK, sizeof(BlockQ4_1), false};
constexpr TypeTraits kQ5_0{"q5_0", kQK, sizeof(BlockQ5_0), false};
constexpr TypeTraits kQ5_1{"q5_1", kQK, sizeof(BlockQ5_1), false};
constexpr TypeTraits kQ8_0{"q8_0", kQK, sizeof(BlockQ8_0), true};
constexpr TypeTraits kQ8_1{"q8_1", kQK, sizeof(BlockQ8_1), false};
constexpr TypeTraits kQ2_K{"q2_K", kQKK, sizeof(BlockQ2_K), false};
constexpr TypeTraits kQ3_K{"q3_K", kQKK, sizeof(BlockQ3_K), false};
constexpr TypeTraits kQ4_K{"q4_K", kQKK, sizeof(BlockQ4_K), true};
constexpr TypeTraits kQ5_K{"q5_K", kQKK, sizeof(BlockQ5_K), true};
constexpr TypeTraits kQ6_K{"q6_K", kQKK, sizeof(BlockQ6_K), true};
// Not a storage format for weights, so not "computable"; quant.cpp still reads and writes it.
constexpr TypeTraits kQ8_K{"q8_K", kQKK, sizeof(BlockQ8_K), false};

[[noreturn]] void die(const char* what, GgmlType type, int64_t n) {
    std::fprintf(stderr, "latent: quant: %s (type %u, n %lld)\n", what, static_cast<unsigned>(type),
                 static_cast<long long>(n));
    std::abort();
}

// The block size of a type the reference code handles (computable, or Q8_K), or dies: these
// are programmer errors (the GGUF loader rejects other tensor types before anything gets here).
int64_t checked_block_size(GgmlType type, int64_t n) {
    const TypeTraits* tr = type_traits(static_cast<uint32_t>(type));
    if (tr == nullptr) die("unknown type", type, n);
    if (!tr->computable && type != GgmlType::kQ8_K) {
        die("type not supported by the reference code", type, n);
    }
    if (n < 0 || n % tr->block_size != 0) die("n is not a multiple of the block size", type, n);
    return tr->block_size;
}

// ---------------------------------------------------------------------------------------------
// Rounding helpers

// Nearest integer, ties to even (the default FP environment), as ggml's nearest_int; then
// clamped to [lo, hi]. Clamping first keeps an inf or NaN (x / tiny scale) from reaching the
// float -> int conversion, which would be undefined; NaN maps to lo.
int round_clamp(float v, int lo, int hi) {
    if (!(v >= static_cast<float>(lo))) return lo;
    if (v >= static_cast<float>(hi)) return hi;
    return static_cast<int>(std::nearbyint(v));
}

// Blocks are copied in and out with memcpy so that callers may pass any alignment (a row of
// 18-byte Q4_0 blocks in a file map need not sit on an even address).
template <class Block>
Block load_block(const void* src, int64_t i) {
    Block b;
    std::memcpy(&b, static_cast<const uint8_t*>(src) + i * static_cast<int64_t>(sizeof(Block)),
                sizeof(Block));
    return b;
}

template <class Block>
void store_block(void* dst, int64_t i, const Block& b) {
    std::memcpy(static_cast<uint8_t*>(dst) + i * static_cast<int64_t>(sizeof(Block)), &b,
                sizeof(Block));
}

// ---------------------------------------------------------------------------------------------
// Dequantization, one block: y gets block_size floats.

void dequantize_block(const BlockQ8_0& b, float* y) {
    const float d = fp16_to_fp32(b.d);
    for (int j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(b.qs[j]);
}

void dequantize_block(const BlockQ4_0& b, float* y) {
    const float d = fp16_to_fp32(b.d);
    for (int j = 0; j < kQK / 2; ++j) {
        y[j] = d * static_cast<float>((b.qs[j] & 0xF) - 8);
        y[j + kQK / 2] = d * static_cast<float>((b.qs[j] >> 4) - 8);
    }
}

void dequantize_block(const BlockQ4_K& b, float* y) {
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    // Chunk c of 32 bytes holds sub-block 2c in its low nibbles and 2c+1 in its high nibbles.
    for (int c = 0; c < 4; ++c) {
        const uint8_t* q = b.qs + 32 * c;
        uint8_t sc, m;
        get_scale_min_k4(2 * c, b.scales, &sc, &m);
        const float d_lo = d * sc, m_lo = dmin * m;
        get_scale_min_k4(2 * c + 1, b.scales, &sc, &m);
        const float d_hi = d * sc, m_hi = dmin * m;
        for (int l = 0; l < 32; ++l) {
            y[64 * c + l] = d_lo * static_cast<float>(q[l] & 0xF) - m_lo;
            y[64 * c + 32 + l] = d_hi * static_cast<float>(q[l] >> 4) - m_hi;
        }
    }
}

void dequantize_block(const BlockQ5_K& b, float* y) {
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    for (int c = 0; c < 4; ++c) {
        const uint8_t* q = b.qs + 32 * c;
        const uint8_t bit_lo = static_cast<uint8_t>(1u << (2 * c));
        const uint8_t bit_hi = static_cast<uint8_t>(2u << (2 * c));
        uint8_t sc, m;
        get_scale_min_k4(2 * c, b.scales, &sc, &m);
        const float d_lo = d * sc, m_lo = dmin * m;
        get_scale_min_k4(2 * c + 1, b.scales, &sc, &m);
        const float d_hi = d * sc, m_hi = dmin * m;
        for (int l = 0; l < 32; ++l) {
            const int q_lo = (q[l] & 0xF) + ((b.qh[l] & bit_lo) ? 16 : 0);
            const int q_hi = (q[l] >> 4) + ((b.qh[l] & bit_hi) ? 16 : 0);
            y[64 * c + l] = d_lo * static_cast<float>(q_lo) - m_lo;
            y[64 * c + 32 + l] = d_hi * static_cast<float>(q_hi) - m_hi;
        }
    }
}

void dequantize_block(const BlockQ6_K& b, float* y) {
    const float d = fp16_to_fp32(b.d);
    // Two halves of 128 outputs, each from 64 ql bytes, 32 qh bytes and 8 scales. Within a
    // half, ql[l] carries outputs l (low nibble) and l+64 (high); ql[l+32] carries l+32 and
    // l+96; qh[l] carries the top 2 bits of l, l+32, l+64, l+96 in bit pairs 0, 2, 4, 6.
    for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = b.ql + 64 * h;
        const uint8_t* qh = b.qh + 32 * h;
        const int8_t* sc = b.scales + 8 * h;
        float* out = y + 128 * h;
        for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            // (d·scale)·q in that order, as ggml does, so results match it bit for bit.
            out[l] = d * sc[is + 0] * static_cast<float>(q1);
            out[l + 32] = d * sc[is + 2] * static_cast<float>(q2);
            out[l + 64] = d * sc[is + 4] * static_cast<float>(q3);
            out[l + 96] = d * sc[is + 6] * static_cast<float>(q4);
        }
    }
}

void dequantize_block(const BlockQ8_K& b, float* y) {
    for (int j = 0; j < kQKK; ++j) y[j] = b.d * static_cast<float>(b.qs[j]);
}

template <class Block>
void dequantize_blocks(const void* src, float* dst, int64_t n_blocks, int64_t block_size) {
    for (int64_t i = 0; i < n_blocks; ++i) {
        dequantize_block(load_block<Block>(src, i), dst + i * block_size);
    }
}

// ---------------------------------------------------------------------------------------------
// Quantization, one block: x has block_size floats.

// ggml's quantize_row_q8_0_ref: d = amax / 127, q = round-half-away(x / d).
BlockQ8_0 quantize_block_q8_0(const float* x) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ8_0 b;
    b.d = fp32_to_fp16(d);
    // x·id is within [-127, 127] up to one rounding, so the cast cannot overflow int8.
    for (int j = 0; j < kQK; ++j) b.qs[j] = static_cast<int8_t>(std::round(x[j] * id));
    return b;
}

// ggml's quantize_row_q4_0_ref: the element of largest |x| maps to −8 exactly (d = max / −8),
// so the asymmetric range [−8, 7] is used on the side that needs it. Rounds by truncating
// x/d + 8.5, which is ≥ 0 here, so it is round-half-up.
BlockQ4_0 quantize_block_q4_0(const float* x) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK; ++j) {
        if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ4_0 b;
    b.d = fp32_to_fp16(d);
    for (int j = 0; j < kQK / 2; ++j) {
        const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
        const int q1 =
            std::min(15, static_cast<int>(static_cast<int8_t>(x[j + kQK / 2] * id + 8.5f)));
        b.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    return b;
}

// x ≈ scale·L − min with L in [0, nmax], scale ≥ 0 and min ≥ 0 (the K formats subtract a
// non-negative min, so a block of all-positive values is fitted with min = 0).
struct AffineFit {
    float scale;
    float min;
};

// Weighted least-squares search for the affine fit of one sub-block (ggml's make_qkx2_quants
// idea): try nstep+1 grid scales (nmax + rmin + rdelta·k) / (max − min), for each round x to
// the grid, then solve the 2×2 normal equations for the best scale and offset given those
// integers; keep the fit with the smallest weighted squared error. L gets the chosen integers.
AffineFit fit_affine(int n, int nmax, const float* x, const float* w, uint8_t* L, float rmin,
                     float rdelta, int nstep) {
    float lo = x[0], hi = x[0], sum_w = 0.0f, sum_x = 0.0f;
    for (int i = 0; i < n; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    lo = std::min(lo, 0.0f);
    if (hi == lo) {  // constant block (≤ 0): all of it is the offset
        std::fill(L, L + n, uint8_t{0});
        return {0.0f, -lo};
    }
    auto error_of = [&](const uint8_t* q, float scale, float offset) {
        float err = 0.0f;
        for (int i = 0; i < n; ++i) {
            const float diff = scale * q[i] + offset - x[i];
            err += w[i] * diff * diff;
        }
        return err;
    };

    // Start: the plain min/max grid.
    float iscale = static_cast<float>(nmax) / (hi - lo);
    for (int i = 0; i < n; ++i) {
        L[i] = static_cast<uint8_t>(round_clamp(iscale * (x[i] - lo), 0, nmax));
    }
    float best_scale = 1.0f / iscale, best_offset = lo;
    float best_err = error_of(L, best_scale, best_offset);

    uint8_t trial[kQKK];
    for (int k = 0; k <= nstep; ++k) {
        iscale = (rmin + rdelta * static_cast<float>(k) + static_cast<float>(nmax)) / (hi - lo);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; ++i) {
            const int q = round_clamp(iscale * (x[i] - lo), 0, nmax);
            trial[i] = static_cast<uint8_t>(q);
            sum_l += w[i] * q;
            sum_l2 += w[i] * q * q;
            sum_xl += w[i] * q * x[i];
        }
        const float det = sum_w * sum_l2 - sum_l * sum_l;
        if (!(det > 0.0f)) continue;
        float scale = (sum_w * sum_xl - sum_x * sum_l) / det;
        float offset = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (offset > 0.0f) {  // the format cannot add: refit through the origin
            offset = 0.0f;
            scale = sum_xl / sum_l2;
        }
        if (!(scale >= 0.0f)) continue;
        const float err = error_of(trial, scale, offset);
        if (err < best_err) {
            best_err = err;
            best_scale = scale;
            best_offset = offset;
            std::copy(trial, trial + n, L);
        }
    }
    return {best_scale, -best_offset};
}

// Weights for the K-quant fits: |x| plus the block RMS, so large values (which dominate a dot
// product) count more without letting small ones be ignored.
void kquant_weights(const float* x, int n, float* w) {
    float sum_x2 = 0.0f;
    for (int i = 0; i < n; ++i) sum_x2 += x[i] * x[i];
    const float rms = std::sqrt(sum_x2 / static_cast<float>(n));
    for (int i = 0; i < n; ++i) w[i] = rms + std::fabs(x[i]);
}

// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): fits the 8 sub-blocks, quantizes their scales
// and mins to 6 bits against the super-block d / dmin, then rounds every x again against the
// scale and min it will actually be decoded with. Writes d, dmin, scales; L gets 256 quants.
void quantize_kquant_scales(const float* x, int nmax, float rmin, float rdelta, int nstep,
                            uint16_t* d_out, uint16_t* dmin_out, uint8_t* packed, uint8_t* L) {
    float scales[8], mins[8], w[32];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; ++j) {
        kquant_weights(x + 32 * j, 32, w);
        const AffineFit fit = fit_affine(32, nmax, x + 32 * j, w, L + 32 * j, rmin, rdelta, nstep);
        scales[j] = fit.scale;
        mins[j] = fit.min;
        max_scale = std::max(max_scale, fit.scale);
        max_min = std::max(max_min, fit.min);
    }
    const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    std::memset(packed, 0, kKScaleSize);
    for (int j = 0; j < 8; ++j) {
        const int ls = round_clamp(inv_scale * scales[j], 0, 63);
        const int lm = round_clamp(inv_min * mins[j], 0, 63);
        // Inverse of get_scale_min_k4 (see quant_blocks.h for the layout).
        if (j < 4) {
            packed[j] = static_cast<uint8_t>(ls);
            packed[j + 4] = static_cast<uint8_t>(lm);
        } else {
            packed[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
            packed[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
            packed[j] |= static_cast<uint8_t>((lm >> 4) << 6);
        }
    }
    *d_out = fp32_to_fp16(max_scale / 63.0f);
    *dmin_out = fp32_to_fp16(max_min / 63.0f);
    const float d = fp16_to_fp32(*d_out);
    const float dmin = fp16_to_fp32(*dmin_out);
    for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        get_scale_min_k4(j, packed, &sc, &m);
        const float dj = d * sc;
        const float mj = dmin * m;
        for (int l = 0; l < 32; ++l) {
            L[32 * j + l] =
                dj != 0.0f ? static_cast<uint8_t>(round_clamp((x[32 * j + l] + mj) / dj, 0, nmax))
                           : uint8_t{0};
        }
    }
}

BlockQ4_K quantize_block_q4_k(const float* x) {
    BlockQ4_K b;
    uint8_t L[kQKK];
    quantize_kquant_scales(x, 15, -1.0f, 0.1f, 20, &b.d, &b.dmin, b.scales, L);
    for (int c = 0; c < 4; ++c) {
        for (int l = 0; l < 32; ++l) {
            b.qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
        }
    }
    return b;
}

BlockQ5_K quantize_block_q5_k(const float* x) {
    BlockQ5_K b;
    uint8_t L[kQKK];
    quantize_kquant_scales(x, 31, -0.5f, 0.1f, 15, &b.d, &b.dmin, b.scales, L);
    std::memset(b.qh, 0, sizeof b.qh);
    for (int c = 0; c < 4; ++c) {
        for (int l = 0; l < 32; ++l) {
            const int q_lo = L[64 * c + l];
            const int q_hi = L[64 * c + 32 + l];
            b.qs[32 * c + l] = static_cast<uint8_t>((q_lo & 0xF) | ((q_hi & 0xF) << 4));
            b.qh[l] |=
                static_cast<uint8_t>(((q_lo >> 4) << (2 * c)) | ((q_hi >> 4) << (2 * c + 1)));
        }
    }
    return b;
}

// Symmetric fit x ≈ scale·l, l in [−nmax, nmax−1] (ggml's make_qx_quants idea, weights x²):
// anchor the element of largest |x| at −nmax, then try 18 nearby grid scales and keep the one
// that maximizes (Σw·x·l)² / Σw·l², i.e. minimizes the weighted error at its optimal scale.
// Returns the (signed) scale; L gets l + nmax.
float fit_symmetric(int n, int nmax, const float* x, uint8_t* L) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; ++i) {
        if (amax < std::fabs(x[i])) {
            amax = std::fabs(x[i]);
            max = x[i];
        }
    }
    std::fill(L, L + n, static_cast<uint8_t>(nmax));  // l = 0, kept if no grid fits
    // ggml's GROUP_MAX_EPS: below this the block is zero to fp16 precision anyway.
    if (amax < 1e-15f) return 0.0f;
    float best_scale = 0.0f, best_score = 0.0f;
    uint8_t trial[kQKK];
    for (int k = 0; k <= 18; ++k) {
        // k = 0 is the plain grid; then nmax ± 0.1·t for t = −9..9, t ≠ 0.
        const int t = k == 0 ? 0 : (k <= 9 ? k - 10 : k - 9);
        const float iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(t)) / max;
        float sum_lx = 0.0f, sum_l2 = 0.0f;
        for (int i = 0; i < n; ++i) {
            const int l = round_clamp(iscale * x[i], -nmax, nmax - 1);
            trial[i] = static_cast<uint8_t>(l + nmax);
            const float w = x[i] * x[i];
            sum_lx += w * x[i] * l;
            sum_l2 += w * l * l;
        }
        if (!(sum_l2 > 0.0f)) continue;
        if (k == 0 || sum_lx * sum_lx > best_score * sum_l2) {
            best_scale = sum_lx / sum_l2;
            best_score = best_scale * sum_lx;
            std::copy(trial, trial + n, L);
        }
    }
    return best_scale;
}

BlockQ6_K quantize_block_q6_k(const float* x) {
    BlockQ6_K b;
    uint8_t L[kQKK];
    float scales[16];
    float amax = 0.0f, max_scale = 0.0f;
    for (int s = 0; s < 16; ++s) {
        scales[s] = fit_symmetric(16, 32, x + 16 * s, L + 16 * s);
        if (amax < std::fabs(scales[s])) {
            amax = std::fabs(scales[s]);
            max_scale = scales[s];
        }
    }
    if (amax < 1e-15f) {  // all zero (to fp16 precision): every field zero decodes to 0
        std::memset(&b, 0, sizeof b);
        return b;
    }
    // The largest sub-block scale maps to −128 (the wider side of int8), as for Q4_0's −8.
    const float iscale = -128.0f / max_scale;
    b.d = fp32_to_fp16(1.0f / iscale);
    for (int s = 0; s < 16; ++s) {
        b.scales[s] = static_cast<int8_t>(round_clamp(iscale * scales[s], -128, 127));
    }
    const float d = fp16_to_fp32(b.d);
    for (int s = 0; s < 16; ++s) {
        const float ds = d * b.scales[s];
        for (int i = 0; i < 16; ++i) {
            L[16 * s + i] =
                ds != 0.0f ? static_cast<uint8_t>(round_clamp(x[16 * s + i] / ds, -32, 31) + 32)
                           : uint8_t{32};
        }
    }
    // Inverse of the interleave in dequantize_block(BlockQ6_K).
    for (int h = 0; h < 2; ++h) {
        const uint8_t* q = L + 128 * h;
        uint8_t* ql = b.ql + 64 * h;
        uint8_t* qh = b.qh + 32 * h;
        for (int l = 0; l < 32; ++l) {
            ql[l] = static_cast<uint8_t>((q[l] & 0xF) | ((q[l + 64] & 0xF) << 4));
            ql[l + 32] = static_cast<uint8_t>((q[l + 32] & 0xF) | ((q[l + 96] & 0xF) << 4));
            qh[l] = static_cast<uint8_t>((q[l] >> 4) | ((q[l + 32] >> 4) << 2) |
                                         ((q[l + 64] >> 4) << 4) | ((q[l + 96] >> 4) << 6));
        }
    }
    return b;
}

BlockQ8_K quantize_block_q8_k(const float* x) {
    BlockQ8_K b;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQKK; ++j) {
        if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    }
    if (amax == 0.0f) {
        std::memset(&b, 0, sizeof b);
        return b;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQKK; ++j) {
        // |iscale·x| ≤ 127 up to one rounding; −128 as the low clamp only guards that.
        b.qs[j] = static_cast<int8_t>(round_clamp(iscale * x[j], -128, 127));
    }
    for (int g = 0; g < kQKK / 16; ++g) {
        int sum = 0;
        for (int l = 0; l < 16; ++l) sum += b.qs[16 * g + l];
        b.bsums[g] = static_cast<int16_t>(sum);
    }
    b.d = 1.0f / iscale;
    return b;
}

template <class Block, Block (*quantize_block)(const float*)>
void quantize_blocks(const float* src, void* dst, int64_t n_blocks, int64_t block_size) {
    for (int64_t i = 0; i < n_blocks; ++i)
        store_block(dst, i, quantize_block(src + i * block_size));
}

}  // namespace

// -------------------------------------------------------------------------------------------------
// Public API

const TypeTraits* type_traits(uint32_t type_id) {
    switch (static_cast<GgmlType>(type_id)) {
        case GgmlType::kF32:
            return &kF32;
        case GgmlType::kF16:
            return &kF16;
        case GgmlType::kQ4_0:
            return &kQ4_0;
        case GgmlType::kQ4_1:
            return &kQ4_1;
        case GgmlType::kQ5_0:
            return &kQ5_0;
        case GgmlType::kQ5_1:
            return &kQ5_1;
        case GgmlType::kQ8_0:
            return &kQ8_0;
        case GgmlType::kQ8_1:
            return &kQ8_1;
        case GgmlType::kQ2_K:
            return &kQ2_K;
        case GgmlType::kQ3_K:
            return &kQ3_K;
        case GgmlType::kQ4_K:
            return &kQ4_K;
        case GgmlType::kQ5_K:
            return &kQ5_K;
        case GgmlType::kQ6_K:
            return &kQ6_K;
        case GgmlType::kQ8_K:
            return &kQ8_K;
        case GgmlType::kBF16:
            return &kBF16;
    }
    return nullptr;
}

std::optional<GgmlType> parse_type_name(std::string_view name) {
    static constexpr GgmlType kNamed[] = {GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16,
                                          GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K,
                                          GgmlType::kQ5_K, GgmlType::kQ6_K};
    auto lower = [](char c) {
        return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    };
    for (GgmlType t : kNamed) {
        const std::string_view want = traits(t).name;
        if (want.size() == name.size() &&
            std::equal(want.begin(), want.end(), name.begin(),
                       [&](char a, char b) { return lower(a) == lower(b); })) {
            return t;
        }
    }
    return std::nullopt;
}

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
    const int64_t bs = checked_block_size(type, n);
    const int64_t nb = n / bs;
    switch (type) {
        case GgmlType::kF32:
            if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
            return;
        case GgmlType::kF16:
        case GgmlType::kBF16: {
            const auto* p = static_cast<const uint8_t*>(src);
            for (int64_t i = 0; i < n; ++i) {
                uint16_t h;
                std::memcpy(&h, p + 2 * i, 2);
                dst[i] = type == GgmlType::kF16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
            }
            return;
        }
        case GgmlType::kQ8_0:
            return dequantize_blocks<BlockQ8_0>(src, dst, nb, bs);
        case GgmlType::kQ4_0:
            return dequantize_blocks<BlockQ4_0>(src, dst, nb, bs);
        case GgmlType::kQ4_K:
            return dequantize_blocks<BlockQ4_K>(src, dst, nb, bs);
        case GgmlType::kQ5_K:
            return dequantize_blocks<BlockQ5_K>(src, dst, nb, bs);
        case GgmlType::kQ6_K:
            return dequantize_blocks<BlockQ6_K>(src, dst, nb, bs);
        case GgmlType::kQ8_K:
            return dequantize_blocks<BlockQ8_K>(src, dst, nb, bs);
        default:
            die("dequantize_row: unsupported type", type, n);
    }
}

void quantize_row(GgmlType type, const float* src, void* dst, int64_t n) {
    const int64_t bs = checked_block_size(type, n);
    const int64_t nb = n / bs;
    switch (type) {
        case GgmlType::kF32:
            if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
            return;
        case GgmlType::kF16:
        case GgmlType::kBF16: {
            auto* p = static_cast<uint8_t*>(dst);
            for (int64_t i = 0; i < n; ++i) {
                const uint16_t h =
                    type == GgmlType::kF16 ? fp32_to_fp16(src[i]) : fp32_to_bf16(src[i]);
                std::memcpy(p + 2 * i, &h, 2);
            }
            return;
        }
        case GgmlType::kQ8_0:
            return quantize_blocks<BlockQ8_0, quantize_block_q8_0>(src, dst, nb, bs);
        case GgmlType::kQ4_0:
            return quantize_blocks<BlockQ4_0, quantize_block_q4_0>(src, dst, nb, bs);
        case GgmlType::kQ4_K:
            return quantize_blocks<BlockQ4_K, quantize_block_q4_k>(src, dst, nb, bs);
        case GgmlType::kQ5_K:
            return quantize_blocks<BlockQ5_K, quantize_block_q5_k>(src, dst, nb, bs);
        case GgmlType::kQ6_K:
            return quantize_blocks<BlockQ6_K, quantize_block_q6_k>(src, dst, nb, bs);
        case GgmlType::kQ8_K:
            return quantize_blocks<BlockQ8_K, quantize_block_q8_k>(src, dst, nb, bs);
        default:
            die("quantize_row: unsupported type", type, n);
    }
}

void quantize_row_q8_k(const float* x, void* dst, int64_t n) {
    quantize_row(GgmlType::kQ8_K, x, dst, n);
}

}  // namespace latent::engine
