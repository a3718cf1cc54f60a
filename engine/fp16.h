// IEEE binary16 (fp16) and bfloat16 <-> binary32 conversion, one definition shared by the host
// and CUDA code (LATENT_HD). Bit-exact, round-to-nearest-even, portable: no intrinsics, no FPU
// state. Not a half-precision arithmetic type; kernels convert and compute in float.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define LATENT_HD __host__ __device__
#else
#define LATENT_HD
#endif

namespace latent::engine {

// Reinterpret the bits of a float and back. memcpy is how C++17 spells that without UB;
// the builtin keeps this header free of <cstring> so CUDA code can include it as is.
LATENT_HD inline uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    uint32_t u;
    __builtin_memcpy(&u, &f, sizeof u);
    return u;
#endif
}

LATENT_HD inline float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    __builtin_memcpy(&f, &u, sizeof f);
    return f;
#endif
}

// Exact: every fp16 value (subnormals, ±inf, NaN with its payload and sign) is a float.
LATENT_HD inline float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) {  // inf / NaN: keep the payload bits, they land in the top of the mantissa
        return bits_float(sign | 0x7f800000u | (mant << 13));
    }
    if (exp != 0) {  // normal: rebias 15 -> 127
        return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
    }
    if (mant == 0) return bits_float(sign);
    // Subnormal: mant * 2^-24. Shift the leading one up to bit 10 to make it a normal float.
    uint32_t e = 113;  // float exponent of 2^-14, the fp16 subnormal scale once normalized
    while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --e;
    }
    return bits_float(sign | (e << 23) | ((mant & 0x3ffu) << 13));
}

// Round to nearest, ties to even. Overflow (|x| >= 65520) gives ±inf; values below half the
// smallest subnormal (2^-25) give ±0; NaN stays NaN of the same sign, quieted, with the top
// payload bits kept.
LATENT_HD inline uint16_t fp32_to_fp16(float f) {
    const uint32_t x = float_bits(f);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {
        if (ax == 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u);
        return static_cast<uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    }
    if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520
    if (ax >= 0x38800000u) {                                              // >= 2^-14: normal
        uint32_t h = (ax >> 13) - (112u << 10);  // rebias 127 -> 15, truncate mantissa to 10
        const uint32_t rest = ax & 0x1fffu;
        // A carry out of the mantissa correctly bumps the exponent (never to inf: see above).
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
        return static_cast<uint16_t>(sign | h);
    }
    if (ax <= 0x33000000u) return sign;  // <= 2^-25: rounds to zero (2^-25 is a tie, 0 is even)
    // Subnormal result: the value in units of 2^-24 is mant * 2^(exp - 126), exp in [102, 112].
    const uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - (ax >> 23);  // 14..24
    uint32_t h = mant >> shift;
    const uint32_t rest = mant & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rest > half || (rest == half && (h & 1u))) ++h;  // 0x3ff + 1 = smallest normal: correct
    return static_cast<uint16_t>(sign | h);
}

// Exact: bf16 is the top half of a float.
LATENT_HD inline float bf16_to_fp32(uint16_t b) {
    return bits_float(static_cast<uint32_t>(b) << 16);
}

// Round to nearest, ties to even; overflow rounds to ±inf by the same carry. NaN -> quiet NaN
// (bit 6 set) so that truncating a signaling NaN's payload cannot turn it into inf.
LATENT_HD inline uint16_t fp32_to_bf16(float f) {
    const uint32_t x = float_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
    return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

}  // namespace latent::engine
