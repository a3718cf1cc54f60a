// The avx512 build of the CPU kernels (see kernels_impl.h; flags in engine/CMakeLists.txt).
#if defined(__x86_64__)
#define LATENT_KERNELS_NS isa_avx512
#define LATENT_KERNELS_ISA 2
#include "engine/cpu/kernels_impl.h"

namespace latent::engine::cpu {
const Kernels& avx512_kernels_table() { return isa_avx512::table("avx512"); }
}  // namespace latent::engine::cpu
#endif
