// The avx2 build of the CPU kernels (see kernels_impl.h; flags in engine/CMakeLists.txt).
#if defined(__x86_64__)
#define LATENT_KERNELS_NS isa_avx2
#define LATENT_KERNELS_ISA 1
#include "engine/cpu/kernels_impl.h"

namespace latent::engine::cpu {
const Kernels& avx2_kernels_table() { return isa_avx2::table("avx2"); }
}  // namespace latent::engine::cpu
#endif
