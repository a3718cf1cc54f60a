// The arithmetic of the CUDA backend's kernels as small LATENT_HD functions, compiled by g++
// for the host tests and by nvcc for the kernels: block dequantization, RMSNorm, SwiGLU, the
// online-softmax state, MoE routing, argmax and the top-p cut. Each one reproduces the
// reference's order of operations (engine/quant.cpp, engine/reference.cpp) so the host tests
// can compare bit for bit. Not the kernels themselves (engine/cuda/backend.cu) and no CUDA
// headers: the ASan build (no CUDA) compiles and tests this file too.
#pragma once

#include <math.h>

#include <cstdint>

#include "engine/fp16.h"
#include "engine/quant.h"
#include "engine/quant_blocks.h"

namespace latent::engine::cuda {

// ---- scalar helpers ----

// Little-endian 16-bit field at any alignment (quant blocks are 18, 34, 210 bytes long).
LATENT_HD inline uint16_t load_u16(const uint8_t* p) {
    return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

// a·b rounded on its own: nvcc would otherwise fuse `a·b − c` into one FMA, and the
// dequantized values would no longer equal quant.cpp's bit for bit.
LATENT_HD inline float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

LATENT_HD inline float exp_f(float x) { return ::expf(x); }

// ---- dequantization ----

// Elements per 32-wide chunk: every quantized type's block (32 or 256) is a whole number of
// chunks, so a kernel can hand each lane one chunk of a row.
constexpr int kChunk = 32;

LATENT_HD inline bool is_float_type(GgmlType t) {
    return t == GgmlType::kF32 || t == GgmlType::kF16 || t == GgmlType::kBF16;
}

// Element i of a row of a float type (F32 / F16 / BF16). The row must be aligned to its
// element size (rows of device buffers and of the file map are).
LATENT_HD inline float float_elem(GgmlType t, const uint8_t* row, int64_t i) {
    if (t == GgmlType::kF32) return reinterpret_cast<const float*>(row)[i];
    const uint16_t h = reinterpret_cast<const uint16_t*>(row)[i];
    return t == GgmlType::kF16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
}

// y[0..32) = elements [32c, 32c + 32) of a row of a quantized type (Q8_0, Q4_0, Q4_K, Q5_K,
// Q6_K), the same values as dequantize_row() to the bit.
LATENT_HD inline void dequant_chunk(GgmlType t, const uint8_t* row, int64_t c, float* y) {
    switch (t) {
        case GgmlType::kQ8_0: {
            const uint8_t* p = row + c * 34;  // f16 d, i8 qs[32]
            const float d = fp16_to_fp32(load_u16(p));
            for (int j = 0; j < 32; ++j)
                y[j] = mul_rn(d, static_cast<float>(static_cast<int8_t>(p[2 + j])));
            return;
        }
        case GgmlType::kQ4_0: {
            const uint8_t* p = row + c * 18;  // f16 d, u8 qs[16]
            const float d = fp16_to_fp32(load_u16(p));
            for (int j = 0; j < 16; ++j) {
                y[j] = mul_rn(d, static_cast<float>((p[2 + j] & 0xF) - 8));
                y[j + 16] = mul_rn(d, static_cast<float>((p[2 + j] >> 4) - 8));
            }
            return;
        }
        case GgmlType::kQ4_K:
        case GgmlType::kQ5_K: {
            // Q4_K: f16 d, f16 dmin, u8 scales[12], u8 qs[128] (144 B).
            // Q5_K: f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128] (176 B).
            const bool five = t == GgmlType::kQ5_K;
            const uint8_t* p = row + (c / 8) * (five ? 176 : 144);
            const int s = static_cast<int>(c % 8);  // sub-block of 32 in the super-block
            const float d = fp16_to_fp32(load_u16(p));
            const float dmin = fp16_to_fp32(load_u16(p + 2));
            uint8_t sc, m;
            get_scale_min_k4(s, p + 4, &sc, &m);
            const float ds = mul_rn(d, static_cast<float>(sc));
            const float ms = mul_rn(dmin, static_cast<float>(m));
            const uint8_t* qh = p + 16;
            const uint8_t* q = p + (five ? 48 : 16) + 32 * (s / 2);  // chunk pair s/2
            const int shift = (s % 2) * 4;                           // low / high nibbles
            for (int l = 0; l < 32; ++l) {
                int v = (q[l] >> shift) & 0xF;
                if (five && (qh[l] & (1u << s))) v += 16;
                y[l] = mul_rn(ds, static_cast<float>(v)) - ms;
            }
            return;
        }
        case GgmlType::kQ6_K: {
            // u8 ql[128], u8 qh[64], i8 scales[16], f16 d (210 B). Chunk g of half h holds
            // elements 128h + 32g + l (see quant.cpp's loop: out[l + 32g]).
            const uint8_t* p = row + (c / 8) * 210;
            const int s = static_cast<int>(c % 8), h = s / 4, g = s % 4;
            const uint8_t* ql = p + 64 * h + (g % 2) * 32;
            const uint8_t* qh = p + 128 + 32 * h;
            const int8_t* sc = reinterpret_cast<const int8_t*>(p + 192) + 8 * h;
            const float d = fp16_to_fp32(load_u16(p + 208));
            const int lo_shift = (g / 2) * 4, hi_shift = 2 * g;
            for (int l = 0; l < 32; ++l) {
                const int q = (((ql[l] >> lo_shift) & 0xF) | (((qh[l] >> hi_shift) & 3) << 4)) - 32;
                y[l] = mul_rn(mul_rn(d, static_cast<float>(sc[l / 16 + 2 * g])),
                              static_cast<float>(q));
            }
            return;
        }
        default:
            for (int j = 0; j < 32; ++j) y[j] = 0.0f;  // not a weight type (callers check)
            return;
    }
}

// Whether the CUDA backend reads this weight type (the eight of ENGINE_SPEC §5).
LATENT_HD inline bool supported_type(GgmlType t) {
    return is_float_type(t) || t == GgmlType::kQ8_0 || t == GgmlType::kQ4_0 ||
           t == GgmlType::kQ4_K || t == GgmlType::kQ5_K || t == GgmlType::kQ6_K;
}

// ---- RMSNorm, SwiGLU ----

// 1 / sqrt(mean(x²) + eps) from Σx² in double, as ref::rms_norm.
LATENT_HD inline double rms_scale(double sum_sq, int64_t n, float eps) {
    return 1.0 / ::sqrt(sum_sq / static_cast<double>(n) + eps);
}
LATENT_HD inline float rms_apply(float x, double scale, float w) {
    return mul_rn(static_cast<float>(x * scale), w);
}

LATENT_HD inline float silu(float x) { return x / (1.0f + exp_f(-x)); }
LATENT_HD inline float swiglu(float gate, float up) { return mul_rn(up, silu(gate)); }

// ---- online softmax ----

// Running max m and sum l of exp(score − m) over the scores seen so far; the accumulator a
// weighted sum of values. Start: m = −inf, l = 0.
struct SoftmaxState {
    float m;
    float l;
};

// Adds one score: returns the factor the accumulator must be scaled by before adding
// p·value, and p (the new score's weight).
LATENT_HD inline float softmax_add(SoftmaxState& st, float score, float* p) {
    const float m_new = score > st.m ? score : st.m;
    const float scale = exp_f(st.m - m_new);  // exp(−inf) = 0 for the first score
    *p = exp_f(score - m_new);
    st.l = st.l * scale + *p;
    st.m = m_new;
    return scale;
}

// The weight of a partial state (m_i, l_i) in a merge whose overall max is m_max: its
// accumulator and its l are multiplied by this. Empty partials (m = −inf) weigh 0.
LATENT_HD inline float softmax_merge_weight(float m_i, float m_max) {
    return m_i == -INFINITY ? 0.0f : exp_f(m_i - m_max);
}

// ---- MoE routing (ENGINE_SPEC §3.5, exactly as ref::route) ----

struct RouterParams {
    int32_t n_expert = 0;      // X
    int32_t n_used = 0;        // top-k
    int32_t n_groups = 0;      // 0/1: no groups
    int32_t n_group_used = 0;  // groups kept
    bool sigmoid = false;      // gating: sigmoid, else softmax
    bool norm = false;         // expert_weights_norm
    float scale = 1.0f;        // expert_weights_scale
};

// The largest number of experts the routing functions handle (scratch arrays).
constexpr int kMaxExperts = 512;
constexpr int kMaxGroups = 64;

// Fills experts[0..n_used) and weights[0..n_used) for one token from its router logits.
// bias: the selection bias (or null). p and s: scratch of n_expert floats each.
// Selection order equals a stable descending sort: among equal scores the lower index first.
LATENT_HD inline void route_token(const RouterParams& rp, const float* logits, const float* bias,
                                  float* p, float* s, int32_t* experts, float* weights) {
    const int32_t X = rp.n_expert;
    if (!rp.sigmoid) {
        float mx = logits[0];
        for (int32_t e = 1; e < X; ++e) mx = logits[e] > mx ? logits[e] : mx;
        double sum = 0;
        for (int32_t e = 0; e < X; ++e) sum += (p[e] = exp_f(logits[e] - mx));
        for (int32_t e = 0; e < X; ++e) p[e] = static_cast<float>(p[e] / sum);
    } else {
        for (int32_t e = 0; e < X; ++e) p[e] = 1.0f / (1.0f + exp_f(-logits[e]));
    }
    for (int32_t e = 0; e < X; ++e) s[e] = bias ? p[e] + bias[e] : p[e];

    const int32_t G = rp.n_groups;
    if (G > 1) {
        const int32_t per = X / G;
        float gscore[kMaxGroups];
        bool kept[kMaxGroups];
        for (int32_t g = 0; g < G; ++g) {
            // Sum of the group's two best scores (one if the group has one expert): b1 is
            // the best of the others, so a repeated maximum counts twice, as a sort does.
            float b0 = -INFINITY, b1 = -INFINITY;
            int32_t i0 = -1;
            for (int32_t e = g * per; e < (g + 1) * per; ++e)
                if (i0 < 0 || s[e] > b0) {
                    b0 = s[e];
                    i0 = e;
                }
            for (int32_t e = g * per; e < (g + 1) * per; ++e)
                if (e != i0 && s[e] > b1) b1 = s[e];
            gscore[g] = b0 + (per > 1 ? b1 : 0.0f);
            kept[g] = false;
        }
        for (int32_t k = 0; k < rp.n_group_used && k < G; ++k) {
            int32_t best = -1;
            for (int32_t g = 0; g < G; ++g)
                if (!kept[g] && (best < 0 || gscore[g] > gscore[best])) best = g;
            kept[best] = true;
        }
        for (int32_t g = 0; g < G; ++g)
            if (!kept[g])
                for (int32_t e = g * per; e < (g + 1) * per; ++e) s[e] = -INFINITY;
    }

    // Top-k by repeated selection of the first maximum; a taken expert gets NaN (skipped).
    double sum = 0;
    for (int32_t k = 0; k < rp.n_used; ++k) {
        int32_t best = -1;
        for (int32_t e = 0; e < X; ++e)
            if (s[e] == s[e] && (best < 0 || s[e] > s[best])) best = e;
        if (best < 0) best = 0;  // unreachable for finite logits
        s[best] = NAN;
        experts[k] = best;
        weights[k] = p[best];
        sum += p[best];
    }
    if (rp.norm) {
        const double d = sum > 6.103515625e-5 ? sum : 6.103515625e-5;
        for (int32_t k = 0; k < rp.n_used; ++k) weights[k] = static_cast<float>(weights[k] / d);
    }
    if (rp.scale != 0.0f && rp.scale != 1.0f)
        for (int32_t k = 0; k < rp.n_used; ++k) weights[k] *= rp.scale;
}

// ---- sampling ----

// Argmax with ties to the lower index, NaN never chosen: the merge of two candidates
// (value, index), index −1 meaning none. A reduction in any order gives the same answer.
struct ArgMax {
    float v;
    int32_t i;
};
LATENT_HD inline ArgMax argmax_merge(ArgMax a, ArgMax b) {
    if (b.i < 0 || b.v != b.v) return a;
    if (a.i < 0 || a.v != a.v) return b;
    if (b.v > a.v || (b.v == a.v && b.i < a.i)) return b;
    return a;
}

// Top-p on a probability vector without sorting it (the device cannot afford a sort of the
// vocabulary per step): the nucleus — the smallest prefix of the tokens ordered by
// descending probability (ties by id) whose mass reaches top_p — is every token with
// p > v plus the first `n_tie` tokens (by id) with p == v, where v is the largest value
// whose "mass at or above" reaches top_p. The device finds v by bisection over float bit
// patterns (monotonic for p >= 0) with block-wide sums of mass_ge(key).
LATENT_HD inline uint32_t prob_key(float p) { return float_bits(p); }  // p >= 0

// How many tokens of value v the nucleus takes, given the mass strictly above v (> 0 ties).
LATENT_HD inline int32_t nucleus_ties(double mass_gt, float v, float top_p, int32_t n_eq) {
    if (v <= 0.0f) return n_eq;
    const double need = (static_cast<double>(top_p) - mass_gt) / v;
    int32_t k = static_cast<int32_t>(::ceil(need - 1e-12));
    if (k < 1) k = 1;
    return k < n_eq ? k : n_eq;
}

}  // namespace latent::engine::cuda
