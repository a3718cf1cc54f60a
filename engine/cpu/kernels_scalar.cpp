// The scalar build of the CPU kernels (see kernels_impl.h; flags in engine/CMakeLists.txt).
#define LATENT_KERNELS_NS isa_scalar
#define LATENT_KERNELS_ISA 0
#include "engine/cpu/kernels_impl.h"

namespace latent::engine::cpu {
const Kernels& scalar_kernels() { return isa_scalar::table("scalar"); }
}  // namespace latent::engine::cpu
