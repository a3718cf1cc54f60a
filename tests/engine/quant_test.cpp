// Tests for engine/fp16.h, engine/quant_blocks.h and engine/quant.h: exhaustive half-float
// checks, hand-built blocks with hand-computed values (so a wrong nibble, bit or scale layout
// fails even when quantize and dequantize agree with each other), and error bounds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "engine/fp16.h"
#include "engine/quant.h"
#include "engine/quant_blocks.h"

namespace latent::engine {
namespace {

constexpr GgmlType kComputable[] = {GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16,
                                    GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K,
                                    GgmlType::kQ5_K, GgmlType::kQ6_K};

uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

float from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// N(0, sigma²) samples by Box–Muller on std::mt19937, whose output the standard fixes, so
// the data (and the error bounds below) are the same with every standard library.
std::vector<float> gaussian(int64_t n, uint32_t seed, float sigma = 1.0f) {
    std::mt19937 rng(seed);
    auto uniform = [&] { return (static_cast<double>(rng()) + 0.5) / 4294967296.0; };  // (0, 1)
    std::vector<float> x(static_cast<size_t>(n));
    for (size_t i = 0; i < x.size(); i += 2) {
        const double r = std::sqrt(-2.0 * std::log(uniform()));
        const double theta = 6.283185307179586 * uniform();
        x[i] = static_cast<float>(sigma * r * std::cos(theta));
        if (i + 1 < x.size()) x[i + 1] = static_cast<float>(sigma * r * std::sin(theta));
    }
    return x;
}

std::vector<uint8_t> quantize(GgmlType t, const std::vector<float>& x) {
    const auto n = static_cast<int64_t>(x.size());
    std::vector<uint8_t> q(row_bytes(t, n));
    quantize_row(t, x.data(), q.data(), n);
    return q;
}

std::vector<float> dequantize(GgmlType t, const std::vector<uint8_t>& q, int64_t n) {
    std::vector<float> y(static_cast<size_t>(n));
    dequantize_row(t, q.data(), y.data(), n);
    return y;
}

std::vector<float> round_trip(GgmlType t, const std::vector<float>& x) {
    return dequantize(t, quantize(t, x), static_cast<int64_t>(x.size()));
}

double relative_rms(const std::vector<float>& x, const std::vector<float>& y) {
    double err = 0.0, ref = 0.0;
    for (size_t i = 0; i < x.size(); ++i) {
        err += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
        ref += static_cast<double>(x[i]) * x[i];
    }
    return std::sqrt(err / ref);
}

template <class Block>
std::vector<float> dequantize_block(GgmlType t, const Block& b) {
    std::vector<float> y(static_cast<size_t>(traits(t).block_size));
    dequantize_row(t, &b, y.data(), traits(t).block_size);
    return y;
}

// ---------------------------------------------------------------------------------------------
// fp16

TEST(Fp16, DecodesEveryPatternToItsDefinition) {
    for (uint32_t h = 0; h < 0x10000; ++h) {
        const float f = fp16_to_fp32(static_cast<uint16_t>(h));
        const bool negative = (h & 0x8000) != 0;
        const int exp = static_cast<int>((h >> 10) & 0x1f);
        const int mant = static_cast<int>(h & 0x3ff);
        ASSERT_EQ(std::signbit(f), negative) << std::hex << h;
        if (exp == 31) {
            if (mant == 0) {
                ASSERT_TRUE(std::isinf(f)) << std::hex << h;
            } else {  // NaN: payload (quiet bit included) lands in the top of the mantissa
                ASSERT_TRUE(std::isnan(f)) << std::hex << h;
                ASSERT_EQ((bits(f) >> 13) & 0x3ff, static_cast<uint32_t>(mant)) << std::hex << h;
            }
            continue;
        }
        const double magnitude =
            exp == 0 ? std::ldexp(mant, -24) : std::ldexp(1024 + mant, exp - 25);
        ASSERT_EQ(static_cast<double>(f), negative ? -magnitude : magnitude) << std::hex << h;
    }
}

TEST(Fp16, EveryPatternRoundTrips) {
    for (uint32_t h = 0; h < 0x10000; ++h) {
        const uint16_t back = fp32_to_fp16(fp16_to_fp32(static_cast<uint16_t>(h)));
        const bool is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
        if (!is_nan) {
            ASSERT_EQ(back, h) << std::hex << h;
        } else {  // NaN stays NaN, keeps sign and payload, and comes back quiet
            ASSERT_EQ(back, h | 0x200) << std::hex << h;
        }
    }
}

// Every pair of adjacent finite halves: the midpoint (exact in float) ties to the even one,
// and the floats just either side of it go to their own side. Covers subnormals and the
// subnormal/normal and exponent boundaries exhaustively.
TEST(Fp16, RoundsToNearestEvenAtEveryBoundary) {
    for (uint32_t h = 0; h < 0x7bff; ++h) {
        const float lo = fp16_to_fp32(static_cast<uint16_t>(h));
        const float hi = fp16_to_fp32(static_cast<uint16_t>(h + 1));
        const float mid = (lo + hi) / 2;
        ASSERT_TRUE(lo < mid && mid < hi);
        const uint32_t even = (h & 1) ? h + 1 : h;
        ASSERT_EQ(fp32_to_fp16(mid), even) << std::hex << h;
        ASSERT_EQ(fp32_to_fp16(-mid), even | 0x8000) << std::hex << h;
        ASSERT_EQ(fp32_to_fp16(std::nextafter(mid, 0.0f)), h) << std::hex << h;
        ASSERT_EQ(fp32_to_fp16(std::nextafter(mid, 1e9f)), h + 1) << std::hex << h;
    }
}

TEST(Fp16, HandPickedValues) {
    EXPECT_EQ(fp32_to_fp16(1.0f), 0x3c00);
    EXPECT_EQ(fp32_to_fp16(-2.0f), 0xc000);
    EXPECT_EQ(fp32_to_fp16(0.0f), 0x0000);
    EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
    EXPECT_EQ(fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00);      // tie, 0x3c00 even
    EXPECT_EQ(fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);  // tie, 0x3c02 even
    EXPECT_EQ(fp32_to_fp16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
    EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bff);  // largest finite
    EXPECT_EQ(fp32_to_fp16(65519.99f), 0x7bff);
    EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);  // tie with 65536 -> even = inf
    EXPECT_EQ(fp32_to_fp16(1e10f), 0x7c00);
    EXPECT_EQ(fp32_to_fp16(-std::numeric_limits<float>::max()), 0xfc00);
    EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::infinity()), 0x7c00);
    EXPECT_EQ(fp32_to_fp16(0x1p-14f), 0x0400);  // smallest normal
    EXPECT_EQ(fp32_to_fp16(0x1p-24f), 0x0001);  // smallest subnormal
    EXPECT_EQ(fp32_to_fp16(0x1p-25f), 0x0000);  // tie with 0 -> 0
    EXPECT_EQ(fp32_to_fp16(-0x1p-25f), 0x8000);
    EXPECT_EQ(fp32_to_fp16(std::nextafter(0x1p-25f, 1.0f)), 0x0001);
    EXPECT_EQ(fp32_to_fp16(3 * 0x1p-25f), 0x0002);                // tie between 1 and 2 -> 2
    EXPECT_EQ(fp32_to_fp16(1023 * 0x1p-24f + 0x1p-25f), 0x0400);  // carry into the exponent
    EXPECT_EQ(fp32_to_fp16(1e-30f), 0x0000);
    EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::denorm_min()), 0x0000);
    EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::quiet_NaN()), 0x7e00);
    // A signaling NaN whose payload sits below fp16's mantissa must stay NaN, not become inf.
    EXPECT_EQ(fp32_to_fp16(from_bits(0x7f800001u)), 0x7e00);
    EXPECT_EQ(fp32_to_fp16(from_bits(0xff800001u)), 0xfe00);
    EXPECT_EQ(fp16_to_fp32(0x3555), 0x1.554p-2f);  // 0.333251953125
}

// ---------------------------------------------------------------------------------------------
// bf16

TEST(Bf16, EveryPatternRoundTrips) {
    for (uint32_t b = 0; b < 0x10000; ++b) {
        const float f = bf16_to_fp32(static_cast<uint16_t>(b));
        ASSERT_EQ(bits(f), b << 16);
        const bool is_nan = (b & 0x7f80) == 0x7f80 && (b & 0x7f) != 0;
        ASSERT_EQ(fp32_to_bf16(f), is_nan ? (b | 0x40) : b) << std::hex << b;
    }
}

TEST(Bf16, RoundsToNearestEvenAtEveryBoundary) {
    for (uint32_t b = 0; b < 0x7f7f; ++b) {
        const uint32_t mid = (b << 16) | 0x8000u;
        const uint32_t even = (b & 1) ? b + 1 : b;
        ASSERT_EQ(fp32_to_bf16(from_bits(mid)), even) << std::hex << b;
        ASSERT_EQ(fp32_to_bf16(from_bits(mid | 0x80000000u)), even | 0x8000) << std::hex << b;
        ASSERT_EQ(fp32_to_bf16(from_bits(mid - 1)), b) << std::hex << b;
        ASSERT_EQ(fp32_to_bf16(from_bits(mid + 1)), b + 1) << std::hex << b;
    }
}

TEST(Bf16, HandPickedValues) {
    EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(fp32_to_bf16(from_bits(0x3f808000u)), 0x3f80);  // tie -> even
    EXPECT_EQ(fp32_to_bf16(from_bits(0x3f818000u)), 0x3f82);  // tie -> even
    EXPECT_EQ(fp32_to_bf16(from_bits(0x3f808001u)), 0x3f81);
    EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds to inf
    EXPECT_EQ(fp32_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
    EXPECT_EQ(fp32_to_bf16(-0.0f), 0x8000);
    EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::denorm_min()), 0x0000);
    EXPECT_EQ(fp32_to_bf16(from_bits(0x00018000u)), 0x0002);  // subnormal tie -> even
    // NaNs come back quiet; a signaling NaN with a low payload must not become inf.
    EXPECT_EQ(fp32_to_bf16(from_bits(0x7f800001u)), 0x7fc0);
    EXPECT_EQ(fp32_to_bf16(from_bits(0xffc00000u)), 0xffc0);
    EXPECT_EQ(bf16_to_fp32(0xc040), -3.0f);
}

// ---------------------------------------------------------------------------------------------
// Traits and names

TEST(QuantTraits, TableMatchesGgml) {
    struct Row {
        GgmlType type;
        uint32_t id;
        const char* name;
        int64_t block_size, type_size;
        bool computable;
    };
    const Row rows[] = {
        {GgmlType::kF32, 0, "f32", 1, 4, true},
        {GgmlType::kF16, 1, "f16", 1, 2, true},
        {GgmlType::kQ4_0, 2, "q4_0", 32, 18, true},
        {GgmlType::kQ4_1, 3, "q4_1", 32, 20, false},
        {GgmlType::kQ5_0, 6, "q5_0", 32, 22, false},
        {GgmlType::kQ5_1, 7, "q5_1", 32, 24, false},
        {GgmlType::kQ8_0, 8, "q8_0", 32, 34, true},
        {GgmlType::kQ8_1, 9, "q8_1", 32, 36, false},
        {GgmlType::kQ2_K, 10, "q2_K", 256, 84, false},
        {GgmlType::kQ3_K, 11, "q3_K", 256, 110, false},
        {GgmlType::kQ4_K, 12, "q4_K", 256, 144, true},
        {GgmlType::kQ5_K, 13, "q5_K", 256, 176, true},
        {GgmlType::kQ6_K, 14, "q6_K", 256, 210, true},
        {GgmlType::kQ8_K, 15, "q8_K", 256, 292, false},
        {GgmlType::kBF16, 30, "bf16", 1, 2, true},
    };
    for (const Row& r : rows) {
        ASSERT_EQ(static_cast<uint32_t>(r.type), r.id);
        const TypeTraits* t = type_traits(r.id);
        ASSERT_NE(t, nullptr) << r.name;
        EXPECT_STREQ(t->name, r.name);
        EXPECT_EQ(t->block_size, r.block_size) << r.name;
        EXPECT_EQ(t->type_size, r.type_size) << r.name;
        EXPECT_EQ(t->computable, r.computable) << r.name;
        EXPECT_EQ(&traits(r.type), t);
    }
    for (uint32_t id : {4u, 5u, 16u, 17u, 29u, 31u, 39u, 1000u, 0xffffffffu}) {
        EXPECT_EQ(type_traits(id), nullptr) << id;
    }
}

TEST(QuantTraits, BlockStructsMatchTraits) {
    EXPECT_EQ(sizeof(BlockQ4_0), traits(GgmlType::kQ4_0).type_size);
    EXPECT_EQ(sizeof(BlockQ4_1), traits(GgmlType::kQ4_1).type_size);
    EXPECT_EQ(sizeof(BlockQ5_0), traits(GgmlType::kQ5_0).type_size);
    EXPECT_EQ(sizeof(BlockQ5_1), traits(GgmlType::kQ5_1).type_size);
    EXPECT_EQ(sizeof(BlockQ8_0), traits(GgmlType::kQ8_0).type_size);
    EXPECT_EQ(sizeof(BlockQ8_1), traits(GgmlType::kQ8_1).type_size);
    EXPECT_EQ(sizeof(BlockQ2_K), traits(GgmlType::kQ2_K).type_size);
    EXPECT_EQ(sizeof(BlockQ3_K), traits(GgmlType::kQ3_K).type_size);
    EXPECT_EQ(sizeof(BlockQ4_K), traits(GgmlType::kQ4_K).type_size);
    EXPECT_EQ(sizeof(BlockQ5_K), traits(GgmlType::kQ5_K).type_size);
    EXPECT_EQ(sizeof(BlockQ6_K), traits(GgmlType::kQ6_K).type_size);
    EXPECT_EQ(sizeof(BlockQ8_K), traits(GgmlType::kQ8_K).type_size);
    // Field offsets that the file format fixes.
    EXPECT_EQ(offsetof(BlockQ4_K, scales), 4u);
    EXPECT_EQ(offsetof(BlockQ4_K, qs), 16u);
    EXPECT_EQ(offsetof(BlockQ5_K, qh), 16u);
    EXPECT_EQ(offsetof(BlockQ5_K, qs), 48u);
    EXPECT_EQ(offsetof(BlockQ6_K, qh), 128u);
    EXPECT_EQ(offsetof(BlockQ6_K, scales), 192u);
    EXPECT_EQ(offsetof(BlockQ6_K, d), 208u);
    EXPECT_EQ(offsetof(BlockQ8_K, bsums), 260u);
}

TEST(QuantTraits, RowBytes) {
    EXPECT_EQ(row_bytes(GgmlType::kF32, 7), 28u);
    EXPECT_EQ(row_bytes(GgmlType::kBF16, 3), 6u);
    EXPECT_EQ(row_bytes(GgmlType::kQ8_0, 96), 3u * 34);
    EXPECT_EQ(row_bytes(GgmlType::kQ4_K, 7168), 28u * 144);
    EXPECT_EQ(row_bytes(GgmlType::kQ6_K, 512), 2u * 210);
}

TEST(QuantTraits, ParseTypeName) {
    EXPECT_EQ(parse_type_name("f32"), GgmlType::kF32);
    EXPECT_EQ(parse_type_name("F16"), GgmlType::kF16);
    EXPECT_EQ(parse_type_name("BF16"), GgmlType::kBF16);
    EXPECT_EQ(parse_type_name("q8_0"), GgmlType::kQ8_0);
    EXPECT_EQ(parse_type_name("Q4_0"), GgmlType::kQ4_0);
    EXPECT_EQ(parse_type_name("q4_k"), GgmlType::kQ4_K);
    EXPECT_EQ(parse_type_name("Q4_K"), GgmlType::kQ4_K);
    EXPECT_EQ(parse_type_name("q5_K"), GgmlType::kQ5_K);
    EXPECT_EQ(parse_type_name("Q6_k"), GgmlType::kQ6_K);
    for (const char* bad :
         {"", "f", "f32 ", " f32", "q4", "q4_1", "q8_k", "q2_k", "q6_kk", "fp16"}) {
        EXPECT_FALSE(parse_type_name(bad).has_value()) << bad;
    }
    for (GgmlType t : kComputable) EXPECT_EQ(parse_type_name(traits(t).name), t);
}

// ---------------------------------------------------------------------------------------------
// Hand-built blocks: bytes written by hand, values computed by hand from ENGINE_SPEC §5.

TEST(QuantLayout, Q8_0) {
    BlockQ8_0 b;
    b.d = 0x3800;  // 0.5
    for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(4 * j - 128);
    const std::vector<float> y = dequantize_block(GgmlType::kQ8_0, b);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.5f * (4 * j - 128)) << j;
    EXPECT_EQ(y[0], -64.0f);
    EXPECT_EQ(y[31], -2.0f);
}

TEST(QuantLayout, Q4_0LowNibblesFirstHalfHighNibblesSecond) {
    BlockQ4_0 b;
    b.d = 0x3400;  // 0.25
    for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    const std::vector<float> y = dequantize_block(GgmlType::kQ4_0, b);
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(y[j], 0.25f * (j - 8)) << j;
        EXPECT_EQ(y[j + 16], 0.25f * (7 - j)) << j;
    }
    EXPECT_EQ(y[0], -2.0f);
    EXPECT_EQ(y[1], -1.75f);
    EXPECT_EQ(y[16], 1.75f);
    EXPECT_EQ(y[31], -2.0f);
}

// Scales {5,10,20,40,17,34,51,63}, mins {1,3,7,15,31,47,62,16}, packed by hand: bytes 0..3 =
// sc0..3 | (sc4..7 >> 4) << 6; bytes 4..7 = m0..3 | (m4..7 >> 4) << 6; bytes 8..11 =
// (sc4..7 & 15) | (m4..7 & 15) << 4.
constexpr uint8_t kPackedScales[12] = {0x45, 0x8A, 0xD4, 0xE8, 0x41, 0x83,
                                       0xC7, 0x4F, 0xF1, 0xF2, 0xE3, 0x0F};
constexpr int kScales[8] = {5, 10, 20, 40, 17, 34, 51, 63};
constexpr int kMins[8] = {1, 3, 7, 15, 31, 47, 62, 16};

TEST(QuantLayout, KScaleMinUnpacking) {
    for (int j = 0; j < 8; ++j) {
        uint8_t sc = 0, m = 0;
        get_scale_min_k4(j, kPackedScales, &sc, &m);
        EXPECT_EQ(sc, kScales[j]) << j;
        EXPECT_EQ(m, kMins[j]) << j;
    }
}

uint8_t q4k_byte(int i) { return static_cast<uint8_t>(7 * i + 3); }
uint8_t q5k_qh(int l) { return static_cast<uint8_t>(37 * l + 11); }

BlockQ4_K hand_q4_k() {
    BlockQ4_K b;
    b.d = 0x3c00;     // 1.0
    b.dmin = 0x3800;  // 0.5
    std::memcpy(b.scales, kPackedScales, 12);
    for (int i = 0; i < 128; ++i) b.qs[i] = q4k_byte(i);
    return b;
}

TEST(QuantLayout, Q4_K) {
    const std::vector<float> y = dequantize_block(GgmlType::kQ4_K, hand_q4_k());
    for (int e = 0; e < 256; ++e) {
        // Element e: sub-block e/32; its byte is in chunk e/64 at e%32; low nibble for the
        // first 32 of the chunk, high nibble for the second.
        const int sub = e / 32;
        const uint8_t byte = q4k_byte(32 * (e / 64) + e % 32);
        const int q = (e % 64) < 32 ? (byte & 15) : (byte >> 4);
        EXPECT_EQ(y[e], 1.0f * kScales[sub] * q - 0.5f * kMins[sub]) << e;
    }
    EXPECT_EQ(y[0], 14.5f);     // qs[0] = 0x03: 5·3 − 0.5·1
    EXPECT_EQ(y[40], 28.5f);    // qs[8] = 0x3B, high nibble: 10·3 − 0.5·3
    EXPECT_EQ(y[100], 592.5f);  // qs[36] = 0xFF, high nibble: 40·15 − 0.5·15
    EXPECT_EQ(y[200], 530.0f);  // qs[104] = 0xDB, low nibble: 51·11 − 0.5·62
    EXPECT_EQ(y[255], 433.0f);  // qs[127] = 0x7C, high nibble: 63·7 − 0.5·16
}

TEST(QuantLayout, Q5_K) {
    BlockQ5_K b;
    const BlockQ4_K q4 = hand_q4_k();
    b.d = q4.d;
    b.dmin = q4.dmin;
    std::memcpy(b.scales, q4.scales, 12);
    std::memcpy(b.qs, q4.qs, 128);
    for (int l = 0; l < 32; ++l) b.qh[l] = q5k_qh(l);
    const std::vector<float> y = dequantize_block(GgmlType::kQ5_K, b);
    for (int e = 0; e < 256; ++e) {
        // As Q4_K, plus 16 if bit (sub-block index) of qh[e % 32] is set.
        const int sub = e / 32;
        const uint8_t byte = q4k_byte(32 * (e / 64) + e % 32);
        const int q =
            ((e % 64) < 32 ? (byte & 15) : (byte >> 4)) + 16 * ((q5k_qh(e % 32) >> sub) & 1);
        EXPECT_EQ(y[e], 1.0f * kScales[sub] * q - 0.5f * kMins[sub]) << e;
    }
    EXPECT_EQ(y[0], 94.5f);      // qh[0] = 0x0B bit 0 set: 5·19 − 0.5
    EXPECT_EQ(y[40], 188.5f);    // qh[8] = 0x33 bit 1 set: 10·19 − 1.5
    EXPECT_EQ(y[200], 530.0f);   // qh[8] bit 6 clear
    EXPECT_EQ(y[255], 1441.0f);  // qh[31] = 0x86 bit 7 set: 63·23 − 8
}

uint8_t q6k_ql(int i) { return static_cast<uint8_t>(13 * i + 5); }
uint8_t q6k_qh(int i) { return static_cast<uint8_t>(29 * i + 7); }

TEST(QuantLayout, Q6_K) {
    BlockQ6_K b;
    for (int i = 0; i < 128; ++i) b.ql[i] = q6k_ql(i);
    for (int i = 0; i < 64; ++i) b.qh[i] = q6k_qh(i);
    for (int s = 0; s < 16; ++s) b.scales[s] = static_cast<int8_t>(3 * s - 20);
    b.d = 0x3400;  // 0.25
    const std::vector<float> y = dequantize_block(GgmlType::kQ6_K, b);
    for (int e = 0; e < 256; ++e) {
        // Half h = e/128; quarter g of that half, position l in it. Quarters 0/1 take the low
        // nibble of ql[l] / ql[l+32], quarters 2/3 the high nibble; qh[l] holds the top two
        // bits of quarter g at bits 2g..2g+1. Scale: 8h + l/16 + 2g.
        const int h = e / 128, g = (e % 128) / 32, l = e % 32;
        const uint8_t lo_byte = q6k_ql(64 * h + l + 32 * (g & 1));
        const int low = g < 2 ? (lo_byte & 15) : (lo_byte >> 4);
        const int high = (q6k_qh(32 * h + l) >> (2 * g)) & 3;
        const int scale = 3 * (8 * h + l / 16 + 2 * g) - 20;
        EXPECT_EQ(y[e], 0.25f * scale * ((low | (high << 4)) - 32)) << e;
    }
    EXPECT_EQ(y[0], -105.0f);   // ql[0]=0x05, qh[0]=0x07 bits 0-1 = 3: q 53−32, scale −20
    EXPECT_EQ(y[37], -21.0f);   // ql[37]=0xE6 low, qh[5]=0x98 bits 2-3 = 2: q 6, scale −14
    EXPECT_EQ(y[77], 44.0f);    // ql[13]=0xAE high, qh[13]=0x80 bits 4-5 = 0: q −22, scale −8
    EXPECT_EQ(y[120], 3.25f);   // ql[56]=0xDD high, qh[24]=0xBF bits 6-7 = 2: q 13, scale 1
    EXPECT_EQ(y[200], -88.0f);  // second half: ql[72], qh[40], scale 16
    EXPECT_EQ(y[255], -156.25f);
}

TEST(QuantLayout, Q8_K) {
    BlockQ8_K b;
    b.d = -0.5f;
    for (int j = 0; j < 256; ++j) b.qs[j] = static_cast<int8_t>(j - 128);
    for (int16_t& s : b.bsums) s = 0;  // not read by dequantization
    const std::vector<float> y = dequantize_block(GgmlType::kQ8_K, b);
    for (int j = 0; j < 256; ++j) EXPECT_EQ(y[j], -0.5f * (j - 128)) << j;
}

// ---------------------------------------------------------------------------------------------
// Reference quantizers: bytes that ggml's quantize_row_*_ref produces.

TEST(QuantizeReference, Q8_0RoundsHalfAwayFromZero) {
    std::vector<float> x(32, 0.0f);
    x[0] = 127.0f;  // d = 1
    x[1] = 2.5f;
    x[2] = -2.5f;
    x[3] = 0.5f;
    x[4] = -0.5f;
    x[5] = -127.0f;
    x[6] = 3.49f;
    const std::vector<uint8_t> q = quantize(GgmlType::kQ8_0, x);
    BlockQ8_0 b;
    std::memcpy(&b, q.data(), sizeof b);
    EXPECT_EQ(b.d, 0x3c00);
    const int8_t want[7] = {127, 3, -3, 1, -1, -127, 3};
    for (int j = 0; j < 7; ++j) EXPECT_EQ(b.qs[j], want[j]) << j;
    for (int j = 7; j < 32; ++j) EXPECT_EQ(b.qs[j], 0) << j;
}

TEST(QuantizeReference, Q4_0Bytes) {
    std::vector<float> x(32, 0.0f);
    x[0] = -8.0f;  // the largest |x|: d = −8 / −8 = 1, q = x + 8 (round half up, clamp 15)
    x[1] = 0.5f;   // 9
    x[2] = -0.5f;  // 8
    x[3] = 1.5f;   // 10
    x[4] = 7.6f;   // 16 -> 15
    x[17] = 3.0f;  // 11, high nibble of byte 1
    const std::vector<uint8_t> q = quantize(GgmlType::kQ4_0, x);
    BlockQ4_0 b;
    std::memcpy(&b, q.data(), sizeof b);
    EXPECT_EQ(b.d, 0x3c00);
    const uint8_t want[5] = {0x80, 0xB9, 0x88, 0x8A, 0x8F};
    for (int j = 0; j < 5; ++j) EXPECT_EQ(b.qs[j], want[j]) << j;
    for (int j = 5; j < 16; ++j) EXPECT_EQ(b.qs[j], 0x88) << j;
}

TEST(QuantizeReference, Q4_0KeepsTheSignOfTheFirstLargest) {
    std::vector<float> x(32, 0.0f);
    x[2] = 3.0f;
    x[5] = -3.0f;  // same |x|, later: not chosen
    const std::vector<uint8_t> q = quantize(GgmlType::kQ4_0, x);
    BlockQ4_0 b;
    std::memcpy(&b, q.data(), sizeof b);
    EXPECT_EQ(b.d, 0xb600);    // 3 / −8 = −0.375
    EXPECT_EQ(b.qs[2], 0x80);  // 3 -> q 0 (= −8·−0.375); x[18] = 0 -> 8
    EXPECT_EQ(b.qs[5], 0x8F);  // −3 -> 16 -> 15 (= 7·−0.375 = −2.625)
}

TEST(QuantizeReference, Q8_KTiesToEvenAndBsums) {
    std::vector<float> x(256, 0.0f);
    x[0] = 127.0f;  // v = 127: iscale = −1, d = −1
    x[1] = 2.5f;    // −2.5 -> −2 (ties to even, as ggml's nearest_int)
    x[2] = 3.5f;    // −3.5 -> −4
    x[3] = -0.5f;   // 0.5 -> 0
    x[20] = -100.0f;
    x[255] = 7.0f;
    std::vector<uint8_t> raw(sizeof(BlockQ8_K));
    quantize_row_q8_k(x.data(), raw.data(), 256);
    BlockQ8_K b;
    std::memcpy(&b, raw.data(), sizeof b);
    EXPECT_EQ(b.d, -1.0f);
    EXPECT_EQ(b.qs[0], -127);
    EXPECT_EQ(b.qs[1], -2);
    EXPECT_EQ(b.qs[2], -4);
    EXPECT_EQ(b.qs[3], 0);
    EXPECT_EQ(b.qs[20], 100);
    EXPECT_EQ(b.qs[255], -7);
    EXPECT_EQ(b.bsums[0], -127 - 2 - 4);
    EXPECT_EQ(b.bsums[1], 100);
    EXPECT_EQ(b.bsums[15], -7);
    for (int g = 2; g < 15; ++g) EXPECT_EQ(b.bsums[g], 0) << g;
    // quantize_row(kQ8_K) is the same function.
    EXPECT_EQ(quantize(GgmlType::kQ8_K, x), raw);
}

TEST(QuantizeReference, Q8_KRandom) {
    const int64_t n = 4 * 256;
    const std::vector<float> x = gaussian(n, 7, 3.0f);
    std::vector<uint8_t> raw(row_bytes(GgmlType::kQ8_K, n));
    quantize_row_q8_k(x.data(), raw.data(), n);
    for (int64_t i = 0; i < n / 256; ++i) {
        BlockQ8_K b;
        std::memcpy(&b, raw.data() + i * sizeof b, sizeof b);
        float v = 0.0f;
        for (int j = 0; j < 256; ++j) {
            if (std::fabs(x[i * 256 + j]) > std::fabs(v)) v = x[i * 256 + j];
        }
        EXPECT_FLOAT_EQ(b.d, -v / 127.0f);
        int extremes = 0;
        for (int g = 0; g < 16; ++g) {
            int sum = 0;
            for (int l = 0; l < 16; ++l) {
                sum += b.qs[16 * g + l];
                extremes += b.qs[16 * g + l] == -127;
            }
            EXPECT_EQ(b.bsums[g], sum);
        }
        EXPECT_GE(extremes, 1);  // the element of largest |x| maps to −127
    }
    const std::vector<float> y = dequantize(GgmlType::kQ8_K, raw, n);
    EXPECT_LT(relative_rms(x, y), 0.008);
}

// ---------------------------------------------------------------------------------------------
// Exactness where the format is exact

TEST(QuantExact, ZerosStayZero) {
    for (GgmlType t : kComputable) {
        const std::vector<float> x(512, 0.0f);
        const std::vector<float> y = round_trip(t, x);
        for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(y[i], 0.0f) << traits(t).name << " " << i;
    }
}

TEST(QuantExact, FloatFormats) {
    std::vector<float> x = gaussian(300, 11);
    EXPECT_EQ(round_trip(GgmlType::kF32, x), x);
    for (float& v : x) v = fp16_to_fp32(fp32_to_fp16(v));  // now representable in f16
    EXPECT_EQ(round_trip(GgmlType::kF16, x), x);
    for (float& v : x) v = bf16_to_fp32(fp32_to_bf16(v));  // now representable in bf16
    EXPECT_EQ(round_trip(GgmlType::kBF16, x), x);
}

TEST(QuantExact, Q8_0Integers) {
    std::mt19937 rng(3);
    std::uniform_int_distribution<int> dist(-127, 127);
    std::vector<float> x(32 * 6);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 32 == 7 ? 127 : dist(rng));
    EXPECT_EQ(round_trip(GgmlType::kQ8_0, x), x);
}

TEST(QuantExact, Q4_0Integers) {
    std::mt19937 rng(4);
    std::uniform_int_distribution<int> dist(-7, 7);
    std::vector<float> x(32 * 6);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 32 == 20 ? -8 : dist(rng));
    EXPECT_EQ(round_trip(GgmlType::kQ4_0, x), x);
}

// Multiples of 63/64 with every sub-block spanning the whole nibble range: the fitted scale is
// 63/64 everywhere, so d = 1/64 and dmin = (nmax+1)/2 · 63/64 / 63 (1/8 for Q4_K, 1/4 for
// Q5_K) are exact in fp16, and so is every value. Odd sub-blocks are shifted down by
// (nmax+1)/2 steps to exercise the mins.
std::vector<float> exact_k_row(int nmax, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> dist(0, nmax);
    std::vector<float> x(256 * 3);
    for (size_t i = 0; i < x.size(); ++i) {
        const size_t sub = i / 32, l = i % 32;
        const int k = l == 3 ? 0 : l == 9 ? nmax : dist(rng);
        const int shift = (sub % 2) ? (nmax + 1) / 2 : 0;
        x[i] = static_cast<float>(k - shift) * (63.0f / 64.0f);
    }
    return x;
}

TEST(QuantExact, Q4_KGridValues) {
    const std::vector<float> x = exact_k_row(15, 5);
    EXPECT_EQ(round_trip(GgmlType::kQ4_K, x), x);
}

TEST(QuantExact, Q5_KGridValues) {
    const std::vector<float> x = exact_k_row(31, 6);
    EXPECT_EQ(round_trip(GgmlType::kQ5_K, x), x);
}

// Integers in [−32, 31] with −32 in every 16-element sub-block: scale 1 everywhere, d = −1/128.
TEST(QuantExact, Q6_KIntegers) {
    std::mt19937 rng(8);
    std::uniform_int_distribution<int> dist(-31, 31);
    std::vector<float> x(256 * 3);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 16 == 5 ? -32 : dist(rng));
    EXPECT_EQ(round_trip(GgmlType::kQ6_K, x), x);
}

TEST(QuantExact, AllEqualRows) {
    for (GgmlType t : kComputable) {
        for (float c : {0.3f, -0.3f, 1.0f, -7.25f, 1000.0f}) {
            const std::vector<float> x(512, c);
            const std::vector<float> y = round_trip(t, x);
            // One fp16 rounding of a scale: relative error ≤ 2^−11 (bf16: 2^−8), with margin
            // for the float products around it.
            const float tol = std::fabs(c) * (t == GgmlType::kBF16 ? 0x1p-8f : 0x1p-10f);
            for (size_t i = 0; i < x.size(); ++i) {
                ASSERT_NEAR(y[i], c, tol) << traits(t).name << " c=" << c << " i=" << i;
                ASSERT_EQ(y[i], y[0]) << traits(t).name << " c=" << c << " i=" << i;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Error on N(0, 1) data. Measured (16384 elements, this seed): f16 0.0209%, bf16 0.167%,
// q8_0 0.538%, q4_0 8.57%, q4_K 7.17%, q5_K 3.60%, q6_K 1.77% relative RMS. The bounds are
// tight on purpose (~2.5% above): the data are fixed, and a K-quant scale search that stops
// helping costs 3-5% (plain min/max grids: q4_K 7.5%, q5_K 3.7%, q6_K 1.85%) and must fail.

TEST(QuantError, RelativeRmsOnGaussianData) {
    struct Bound {
        GgmlType type;
        double max_rel_rms;
    };
    const Bound bounds[] = {
        {GgmlType::kF32, 0.0},     {GgmlType::kF16, 0.000215}, {GgmlType::kBF16, 0.00172},
        {GgmlType::kQ8_0, 0.0055}, {GgmlType::kQ4_0, 0.0878},  {GgmlType::kQ4_K, 0.0735},
        {GgmlType::kQ5_K, 0.0369}, {GgmlType::kQ6_K, 0.0182},
    };
    const std::vector<float> x = gaussian(256 * 64, 42);
    for (const Bound& b : bounds) {
        const double e = relative_rms(x, round_trip(b.type, x));
        EXPECT_LE(e, b.max_rel_rms) << traits(b.type).name;
        RecordProperty(std::string("rel_rms_") + traits(b.type).name, std::to_string(e));
    }
}

// Q8_0 element bound: half a step, plus the fp16 rounding of d (≤ 2^−11 relative) times 127.
TEST(QuantError, Q8_0PerElementBound) {
    const std::vector<float> x = gaussian(32 * 200, 9, 5.0f);
    const std::vector<float> y = round_trip(GgmlType::kQ8_0, x);
    for (size_t blk = 0; blk < x.size() / 32; ++blk) {
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[blk * 32 + j]));
        const float bound = amax / 127.0f * 0.5f + amax * 0x1p-11f + 1e-6f;
        for (int j = 0; j < 32; ++j) {
            ASSERT_LE(std::fabs(x[blk * 32 + j] - y[blk * 32 + j]), bound) << blk << " " << j;
        }
    }
}

// Blocks with wildly different magnitudes in one row must not disturb each other.
TEST(QuantError, MixedMagnitudes) {
    std::vector<float> x = gaussian(256 * 4, 13);
    for (size_t i = 0; i < 256; ++i) x[i] *= 1000.0f;
    for (size_t i = 256; i < 512; ++i) x[i] *= 0.001f;
    for (GgmlType t :
         {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K}) {
        const std::vector<float> y = round_trip(t, x);
        const std::vector<float> small_x(x.begin() + 256, x.begin() + 512);
        const std::vector<float> small_y(y.begin() + 256, y.begin() + 512);
        EXPECT_LT(relative_rms(small_x, small_y), 0.1) << traits(t).name;
    }
}

// ---------------------------------------------------------------------------------------------
// Rows of several blocks, alignment, determinism

TEST(QuantRows, RowIsTheConcatenationOfItsBlocks) {
    for (GgmlType t : kComputable) {
        const int64_t bs = traits(t).block_size == 1 ? 32 : traits(t).block_size;
        const int64_t nblocks = 5;
        const std::vector<float> x = gaussian(bs * nblocks, 21);
        const std::vector<uint8_t> whole = quantize(t, x);
        ASSERT_EQ(whole.size(), row_bytes(t, bs * nblocks));
        std::vector<uint8_t> pieces;
        for (int64_t i = 0; i < nblocks; ++i) {
            const std::vector<float> part(x.begin() + i * bs, x.begin() + (i + 1) * bs);
            const std::vector<uint8_t> q = quantize(t, part);
            pieces.insert(pieces.end(), q.begin(), q.end());
        }
        EXPECT_EQ(whole, pieces) << traits(t).name;
        EXPECT_EQ(quantize(t, x), whole) << traits(t).name << ": not deterministic";
        // Dequantizing the row equals dequantizing block by block.
        const std::vector<float> y = dequantize(t, whole, bs * nblocks);
        const int64_t bytes_per = static_cast<int64_t>(row_bytes(t, bs));
        for (int64_t i = 0; i < nblocks; ++i) {
            std::vector<uint8_t> one(whole.begin() + i * bytes_per,
                                     whole.begin() + (i + 1) * bytes_per);
            const std::vector<float> yi = dequantize(t, one, bs);
            EXPECT_TRUE(std::equal(yi.begin(), yi.end(), y.begin() + i * bs)) << traits(t).name;
        }
    }
}

TEST(QuantRows, AnyAlignment) {
    for (GgmlType t : kComputable) {
        const int64_t n = 512;
        const std::vector<float> x = gaussian(n, 22);
        const std::vector<uint8_t> aligned = quantize(t, x);
        std::vector<uint8_t> buf(aligned.size() + 1);
        quantize_row(t, x.data(), buf.data() + 1, n);
        EXPECT_TRUE(std::equal(aligned.begin(), aligned.end(), buf.begin() + 1)) << traits(t).name;
        std::vector<float> y(n + 1);
        dequantize_row(t, buf.data() + 1, y.data() + 1, n);
        const std::vector<float> want = dequantize(t, aligned, n);
        EXPECT_TRUE(std::equal(want.begin(), want.end(), y.begin() + 1)) << traits(t).name;
    }
}

TEST(QuantRows, EmptyRow) {
    for (GgmlType t : kComputable) {
        quantize_row(t, nullptr, nullptr, 0);
        dequantize_row(t, nullptr, nullptr, 0);
    }
}

TEST(QuantRowsDeathTest, ProgrammerErrorsAbort) {
    std::vector<float> x(256);
    std::vector<uint8_t> q(1024);
    EXPECT_DEATH(quantize_row(GgmlType::kQ4_0, x.data(), q.data(), 33), "multiple");
    EXPECT_DEATH(dequantize_row(GgmlType::kQ4_1, q.data(), x.data(), 32), "not supported");
    EXPECT_DEATH(dequantize_row(static_cast<GgmlType>(4), q.data(), x.data(), 32), "unknown");
}

}  // namespace
}  // namespace latent::engine
