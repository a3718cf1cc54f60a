// Run-time choice of the kernel table and the activation formats (see kernels.h).
#include "engine/cpu/kernels.h"

#include <cstdlib>
#include <cstring>

#if defined(LATENT_CPU_X86_KERNELS)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "engine/quant_blocks.h"

namespace latent::engine::cpu {

#if defined(LATENT_CPU_X86_KERNELS)
const Kernels& avx2_kernels_table();
const Kernels& avx512_kernels_table();
const Kernels& amx_kernels_table();
#endif

ActFormat act_format(GgmlType weight_type, bool precise) {
    if (precise) return ActFormat::kF32;
    switch (weight_type) {
        case GgmlType::kQ8_0:
        case GgmlType::kQ4_0:
            return ActFormat::kQ8_0;
        case GgmlType::kQ4_K:
        case GgmlType::kQ5_K:
        case GgmlType::kQ6_K:
            return ActFormat::kQ8_K;
        default:
            return ActFormat::kF32;
    }
}

uint64_t act_row_bytes(ActFormat format, int64_t n) {
    auto up64 = [](uint64_t v) { return (v + 63) & ~uint64_t{63}; };
    switch (format) {
        case ActFormat::kF32:
            return up64(4 * static_cast<uint64_t>(n));
        case ActFormat::kQ8_0:
            // q, u, d8 and s8; qn, s4 and d4 of each group of 4 blocks; m8 and m128 of
            // each block (kernels_impl.h).
            return 3 * up64(static_cast<uint64_t>(n)) + 64 * static_cast<uint64_t>(n / kQK) +
                   128 * static_cast<uint64_t>(n / kQK / 4) +
                   up64(8 * static_cast<uint64_t>(n / kQK));
        case ActFormat::kQ8_K:
            return up64(sizeof(BlockQ8_K) * static_cast<uint64_t>(n / kQKK));
    }
    return 0;
}

bool r16_shape(GgmlType type, int64_t rows, int64_t n) {
    return (type == GgmlType::kQ4_0 || type == GgmlType::kQ8_0) && rows > 0 && rows % 16 == 0 &&
           n > 0 && n % kQK == 0;
}

void repack_r16(GgmlType type, const uint8_t* src, uint64_t row_bytes, int64_t rows, int64_t n,
                uint8_t* dst) {
    const bool q4 = type == GgmlType::kQ4_0;
    const int64_t nb = n / kQK;
    const int64_t block_bytes = q4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
    const int64_t pieces = q4 ? 4 : 8;
    for (int64_t g = 0; g < rows / 16; ++g) {
        uint8_t* out = dst + static_cast<uint64_t>(g) * 16 * row_bytes;
        for (int64_t b = 0; b < nb; ++b) {
            uint8_t* blk = out + b * 16 * block_bytes;
            const uint32_t flip = q4 ? 0 : 0x80808080u;  // Q8_0: quants plus 128
            for (int64_t r = 0; r < 16; ++r) {
                const uint8_t* in = src + static_cast<uint64_t>(g * 16 + r) * row_bytes +
                                    static_cast<uint64_t>(b * block_bytes);
                std::memcpy(blk + 2 * r, in, 2);  // d
                for (int64_t j = 0; j < pieces; ++j) {
                    uint32_t piece;
                    std::memcpy(&piece, in + 2 + 4 * j, 4);
                    piece ^= flip;
                    std::memcpy(blk + 32 + (j * 16 + r) * 4, &piece, 4);
                }
            }
        }
    }
}

uint64_t packed_bytes(int64_t n_act, int64_t n) {
    return static_cast<uint64_t>((n_act + 15) / 16) * static_cast<uint64_t>(n / 32) * 1024;
}

#if defined(LATENT_CPU_X86_KERNELS)
namespace {
// F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports does not know it.
bool has_f16c() {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
}
}  // namespace
#endif

const Kernels* avx2_kernels() {
#if defined(LATENT_CPU_X86_KERNELS)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c())
        return &avx2_kernels_table();
#endif
    return nullptr;
}

const Kernels* avx512_kernels() {
#if defined(LATENT_CPU_X86_KERNELS)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c())
        return &avx512_kernels_table();
#endif
    return nullptr;
}

const Kernels* amx_kernels() {
#if defined(LATENT_CPU_X86_KERNELS)
    static const bool usable = [] {
        if (!avx512_kernels()) return false;
        unsigned a = 0, b = 0, c = 0, d = 0;
        // Leaf 7.0 EDX: AMX-BF16 (bit 22), AMX-TILE (24); leaf 7.1 EAX: AVX512-BF16 (5).
        if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 22)) || !(d & (1u << 24)))
            return false;
        if (!__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5))) return false;
        // Linux hands out the tile data state only on request (once per process).
        constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
        return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
    }();
    if (usable) return &amx_kernels_table();
#endif
    return nullptr;
}

const Kernels& best_kernels() {
    static const Kernels* chosen = [] {
        const char* want = std::getenv("LATENT_CPU_KERNELS");
        const Kernels* kamx = amx_kernels();
        const Kernels* k512 = avx512_kernels();
        const Kernels* k2 = avx2_kernels();
        if (want && std::strcmp(want, "scalar") == 0) return &scalar_kernels();
        if (want && std::strcmp(want, "avx2") == 0 && k2) return k2;
        if (want && std::strcmp(want, "avx512") == 0 && k512) return k512;
        if (kamx) return kamx;
        if (k512) return k512;
        if (k2) return k2;
        return &scalar_kernels();
    }();
    return *chosen;
}

}  // namespace latent::engine::cpu
