// The avx512 build of the CPU kernels (see kernels_impl.h; flags in engine/CMakeLists.txt).
#if defined(__x86_64__)
// GCC 12's 512-bit intrinsics (cvtepi32_ps, shuffles, inserts) start from an "undefined"
// vector, which its -W(maybe-)uninitialized reports once inlined; nothing is uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#define LATENT_KERNELS_NS isa_avx512
#define LATENT_KERNELS_ISA 2
#include "engine/cpu/kernels_impl.h"

namespace latent::engine::cpu {
const Kernels& avx512_kernels_table() { return isa_avx512::table("avx512"); }
}  // namespace latent::engine::cpu
#endif
