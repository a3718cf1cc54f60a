// The byte layout of each ggml quant block (ENGINE_SPEC §5), as plain structs shared by the
// CPU and CUDA code, plus the small bit-unpacking helpers both need. Only <cstdint>: no
// conversion routines here (engine/quant.h has the reference ones, engine/fp16.h the halves).
#pragma once

#include <cstdint>

#include "engine/fp16.h"

namespace latent::engine {

// Elements per block: 32 for the classic quants, 256 for the K-quants' super-blocks.
constexpr int kQK = 32;
constexpr int kQKK = 256;
// Bytes of packed 6-bit (scale, min) pairs in Q4_K / Q5_K: 8 sub-blocks × 2 × 6 bits.
constexpr int kKScaleSize = 12;

// Half-precision fields (d, dmin, s) are raw fp16 bits; decode with fp16_to_fp32.

// y[j] = d·((qs[j] & 15) − 8), y[j + 16] = d·((qs[j] >> 4) − 8).
struct BlockQ4_0 {
    uint16_t d;
    uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_0) == 18, "ggml block_q4_0");

// y[j] = d·q + m (not computable by Latent; here for the traits and file reading).
struct BlockQ4_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_1) == 20, "ggml block_q4_1");

struct BlockQ5_0 {
    uint16_t d;
    uint8_t qh[4];  // 5th bit of each of the 32 quants
    uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_0) == 22, "ggml block_q5_0");

struct BlockQ5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_1) == 24, "ggml block_q5_1");

// y[j] = d·qs[j].
struct BlockQ8_0 {
    uint16_t d;
    int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_0) == 34, "ggml block_q8_0");

// CUDA activation format: s = d·Σqs lets a dot with an offset format fold in the offset.
struct BlockQ8_1 {
    uint16_t d;
    uint16_t s;
    int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_1) == 36, "ggml block_q8_1");

struct BlockQ2_K {
    uint8_t scales[kQKK / 16];  // low nibble scale, high nibble min, per 16 elements
    uint8_t qs[kQKK / 4];
    uint16_t d;
    uint16_t dmin;
};
static_assert(sizeof(BlockQ2_K) == 84, "ggml block_q2_K");

struct BlockQ3_K {
    uint8_t hmask[kQKK / 8];
    uint8_t qs[kQKK / 4];
    uint8_t scales[12];  // 16 scales of 6 bits
    uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110, "ggml block_q3_K");

// 8 sub-blocks of 32: y = d·sc_j·q − dmin·m_j, q a nibble (order: see ENGINE_SPEC §5).
struct BlockQ4_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[kKScaleSize];  // (sc_j, m_j), 6 bits each; unpack with get_scale_min_k4
    uint8_t qs[kQKK / 2];
};
static_assert(sizeof(BlockQ4_K) == 144, "ggml block_q4_K");

// As Q4_K with a 5th bit per quant in qh: bit 2c / 2c+1 of qh[l] for sub-block 2c / 2c+1.
struct BlockQ5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[kKScaleSize];
    uint8_t qh[kQKK / 8];
    uint8_t qs[kQKK / 2];
};
static_assert(sizeof(BlockQ5_K) == 176, "ggml block_q5_K");

// 16 sub-blocks of 16: y = d·scales[s]·(q − 32), q = 4 low bits in ql + 2 high bits in qh.
struct BlockQ6_K {
    uint8_t ql[kQKK / 2];
    uint8_t qh[kQKK / 4];
    int8_t scales[kQKK / 16];
    uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210, "ggml block_q6_K");

// CPU activation format for the K-quant dots. d is a full float; bsums[g] = Σ qs[16g..16g+15]
// so a dot with an offset format (Q4_K's mins) costs one multiply per 16 elements.
struct BlockQ8_K {
    float d;
    int8_t qs[kQKK];
    int16_t bsums[kQKK / 16];
};
static_assert(sizeof(BlockQ8_K) == 292, "ggml block_q8_K");

// Sub-block j (0..7) of a Q4_K / Q5_K block: its 6-bit scale and min from the 12 packed bytes
// q. Bytes 0..3 hold sc_0..3 (low 6 bits), 4..7 hold m_0..3; sub-blocks 4..7 keep their low 4
// bits in nibbles of bytes 8..11 and their high 2 bits in the spare top bits of bytes 0..7.
LATENT_HD inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

}  // namespace latent::engine
