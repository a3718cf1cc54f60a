// The AMX-BF16 tile matmul of kernels.h (pack_tokens, matmul_packed), compiled with
// -mamx-tile -mamx-bf16 -mavx512bf16 (engine/CMakeLists.txt) and used only where
// amx_kernels() found the instructions and the kernel's permission.
//
// Roles: A = weights, 16 rows x 32 values in BF16, dequantized once per call into a strip
// of 32 rows (two A tiles); B = activations, 16 tokens x 32 values in the pair layout
// TDPBF16PS wants (row k holds values 2k and 2k + 1 of each token), packed once per
// matmul; C = 2 x 2 tiles of 16 x 16 float sums over the whole row. Each step of 32 values
// is four tile multiplies (32 x 32 x 32 multiply-adds) from four tile loads.
//
// As in kernels_impl.h, no inline function of another header and nothing from the
// standard library is used here: a copy compiled with these flags could be picked by the
// linker for code that runs on CPUs without them. dequantize_row (quant.cpp) is an
// ordinary function compiled for the baseline.
#if defined(__x86_64__)
// GCC 12's 512-bit intrinsics start from an "undefined" vector, which its
// -W(maybe-)uninitialized reports once inlined; nothing is uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <cstdint>
#include <cstdlib>

#include "engine/cpu/kernels.h"
#include "engine/quant.h"
#include "engine/quant_blocks.h"

namespace latent::engine::cpu {

const Kernels& avx512_kernels_table();

namespace isa_amx {
namespace {

constexpr int64_t kStep = 32;         // values per tile multiply
constexpr int64_t kTileBytes = 1024;  // 16 rows x 64 bytes
constexpr int64_t kStripRows = kPackedRows;

// The palette-1 configuration: tiles 0-3 C (16 x 16 float), 4-5 A, 6-7 B; all 16 x 64 B.
struct alignas(64) TileConfig {
    uint8_t palette = 1;
    uint8_t start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};

void configure() {
    TileConfig cfg;
    for (int i = 0; i < 8; ++i) {
        cfg.colsb[i] = 64;
        cfg.rows[i] = 16;
    }
    _tile_loadconfig(&cfg);
}

// A per-thread scratch buffer that only grows (the weight strip, float row).
struct Scratch {
    void* p = nullptr;
    uint64_t size = 0;
    ~Scratch() { free(p); }
    uint8_t* get(uint64_t bytes) {
        if (bytes > size) {
            free(p);
            size = (bytes + 4095) & ~uint64_t{4095};
            p = aligned_alloc(64, size);
            if (!p) {
                size = 0;
                abort();  // out of memory for a few hundred KB: nothing sensible remains
            }
        }
        return static_cast<uint8_t*>(p);
    }
};

// 32 floats -> 32 BF16 in element order (round to nearest even).
inline __m512i to_bf16(__m512 lo, __m512 hi) { return (__m512i)_mm512_cvtne2ps_pbh(hi, lo); }

inline float fp16(uint16_t h) { return _cvtsh_ss(h); }

// Weight row `src` (n values of `type`), as BF16, into strip row m: step s at
// strip + s * 2048 + m * 64. `tmp` holds n floats for the types without a direct path.
void dequantize_bf16(GgmlType type, const uint8_t* src, int64_t n, uint8_t* strip, int64_t m,
                     float* tmp) {
    const int64_t steps = n / kStep;
    auto out = [&](int64_t s) { return strip + s * (kStripRows * 64) + m * 64; };
    if (!src) {
        for (int64_t s = 0; s < steps; ++s) _mm512_store_si512(out(s), _mm512_setzero_si512());
        return;
    }
    switch (type) {
        case GgmlType::kQ4_0: {
            const auto* x = reinterpret_cast<const BlockQ4_0*>(src);
            const __m512i mask = _mm512_set1_epi32(0x0F), eight = _mm512_set1_epi32(8);
            for (int64_t s = 0; s < steps; ++s) {
                const __m512i v = _mm512_cvtepu8_epi32(
                    _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[s].qs)));
                const __m512 d = _mm512_set1_ps(fp16(x[s].d));
                const __m512 lo = _mm512_mul_ps(
                    _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(v, mask), eight)), d);
                const __m512 hi = _mm512_mul_ps(
                    _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(v, 4), eight)), d);
                _mm512_store_si512(out(s), to_bf16(lo, hi));
            }
            return;
        }
        case GgmlType::kQ8_0: {
            const auto* x = reinterpret_cast<const BlockQ8_0*>(src);
            for (int64_t s = 0; s < steps; ++s) {
                const __m512 d = _mm512_set1_ps(fp16(x[s].d));
                const __m512 lo =
                    _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                      _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[s].qs)))),
                                  d);
                const __m512 hi = _mm512_mul_ps(
                    _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[s].qs + 16)))),
                    d);
                _mm512_store_si512(out(s), to_bf16(lo, hi));
            }
            return;
        }
        case GgmlType::kBF16:
            for (int64_t s = 0; s < steps; ++s)
                _mm512_store_si512(out(s), _mm512_loadu_si512(src + s * 64));
            return;
        case GgmlType::kF16:
            for (int64_t s = 0; s < steps; ++s) {
                const uint8_t* h = src + s * 64;
                const __m512 lo =
                    _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h)));
                const __m512 hi =
                    _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + 32)));
                _mm512_store_si512(out(s), to_bf16(lo, hi));
            }
            return;
        default:
            dequantize_row(type, src, tmp, n);
            for (int64_t s = 0; s < steps; ++s)
                _mm512_store_si512(out(s), to_bf16(_mm512_loadu_ps(tmp + s * kStep),
                                                   _mm512_loadu_ps(tmp + s * kStep + 16)));
            return;
    }
}

void pack_tokens(const uint8_t* const* acts, int64_t n_act, int64_t n, uint8_t* dst) {
    const int64_t steps = n / kStep, groups = (n_act + 15) / 16;
    // Dword k of a token's 32 BF16 values (values 2k, 2k + 1) goes to row k, column t.
    const __m512i rows =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32(16));
    for (int64_t g = 0; g < groups; ++g) {
        uint8_t* gdst = dst + g * steps * kTileBytes;
        if (g * 16 + 16 > n_act)  // padding tokens multiply as zeros
            for (int64_t i = 0; i < steps * kTileBytes; i += 64)
                _mm512_storeu_si512(gdst + i, _mm512_setzero_si512());
        for (int64_t t = 0; t < 16 && g * 16 + t < n_act; ++t) {
            const auto* x = reinterpret_cast<const float*>(acts[g * 16 + t]);
            for (int64_t s = 0; s < steps; ++s) {
                const __m512i v =
                    to_bf16(_mm512_loadu_ps(x + s * kStep), _mm512_loadu_ps(x + s * kStep + 16));
                _mm512_i32scatter_epi32(gdst + s * kTileBytes + t * 4, rows, v, 4);
            }
        }
    }
}

// Sums over all steps into C tiles 0 (rows 0-15 x group 0), 1 (rows 16-31 x group 0),
// 2 (rows 0-15 x group 1), 3 (rows 16-31 x group 1); HI / TWO say whether the second row
// half / token group exist.
template <bool HI, bool TWO>
void multiply(const uint8_t* strip, const uint8_t* b0, const uint8_t* b1, int64_t steps) {
    _tile_zero(0);
    if (HI) _tile_zero(1);
    if (TWO) _tile_zero(2);
    if (HI && TWO) _tile_zero(3);
    for (int64_t s = 0; s < steps; ++s) {
        const uint8_t* a = strip + s * (kStripRows * 64);
        _tile_loadd(4, a, 64);
        _tile_loadd(6, b0 + s * kTileBytes, 64);
        _tile_dpbf16ps(0, 4, 6);
        if (HI) {
            _tile_loadd(5, a + kTileBytes, 64);
            _tile_dpbf16ps(1, 5, 6);
        }
        if (TWO) {
            _tile_loadd(7, b1 + s * kTileBytes, 64);
            _tile_dpbf16ps(2, 4, 7);
            if (HI) _tile_dpbf16ps(3, 5, 7);
        }
    }
}

void matmul_packed(GgmlType type, const uint8_t* w, uint64_t row_bytes, int64_t r0, int64_t r1,
                   const uint8_t* packed, int64_t n_act, int64_t n, float* y, int64_t y_stride) {
    static thread_local Scratch strip_buf, float_buf;
    const int64_t steps = n / kStep, groups = (n_act + 15) / 16;
    uint8_t* strip = strip_buf.get(static_cast<uint64_t>(steps) * kStripRows * 64);
    float* tmp = reinterpret_cast<float*>(float_buf.get(static_cast<uint64_t>(n) * 4));
    alignas(64) float c[4][16][16];
    configure();
    for (int64_t r = r0; r < r1; r += kStripRows) {
        const int64_t rows = r1 - r < kStripRows ? r1 - r : kStripRows;
        for (int64_t m = 0; m < kStripRows; ++m)
            dequantize_bf16(type, m < rows ? w + static_cast<uint64_t>(r + m) * row_bytes : nullptr,
                            n, strip, m, tmp);
        const bool hi = rows > 16;
        for (int64_t g = 0; g < groups; g += 2) {
            const bool two = g + 1 < groups;
            const uint8_t* b0 = packed + g * steps * kTileBytes;
            const uint8_t* b1 = b0 + steps * kTileBytes;
            if (hi && two) {
                multiply<true, true>(strip, b0, b1, steps);
            } else if (hi) {
                multiply<true, false>(strip, b0, b1, steps);
            } else if (two) {
                multiply<false, true>(strip, b0, b1, steps);
            } else {
                multiply<false, false>(strip, b0, b1, steps);
            }
            _tile_stored(0, c[0], 64);
            if (hi) _tile_stored(1, c[1], 64);
            if (two) _tile_stored(2, c[2], 64);
            if (hi && two) _tile_stored(3, c[3], 64);
            // c[tile][row m][token t] -> y[token][row]
            for (int tile = 0; tile < 4; ++tile) {
                const int64_t m0 = (tile & 1) * 16, t0 = (g + (tile >> 1)) * 16;
                if (m0 >= rows || t0 >= n_act) continue;
                const int64_t mr = rows - m0 < 16 ? rows - m0 : 16;
                const int64_t tn = n_act - t0 < 16 ? n_act - t0 : 16;
                for (int64_t t = 0; t < tn; ++t)
                    for (int64_t m = 0; m < mr; ++m)
                        y[(t0 + t) * y_stride + r + m0 + m] = c[tile][m][t];
            }
        }
    }
    _tile_release();
}

}  // namespace
}  // namespace isa_amx

const Kernels& amx_kernels_table() {
    static const Kernels k = [] {
        Kernels t = avx512_kernels_table();
        t.name = "amx";
        t.pack_tokens = &isa_amx::pack_tokens;
        t.matmul_packed = &isa_amx::matmul_packed;
        return t;
    }();
    return k;
}

}  // namespace latent::engine::cpu
#endif
