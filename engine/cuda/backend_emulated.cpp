// The CUDA backend compiled by the host compiler against engine/cuda/emulate.h, for the
// emulation test only (tests/CMakeLists.txt): its kernels run on host threads. The class is
// renamed so that a build with the real backend can link both.
#define LATENT_CUDA_EMULATE 1
#define CudaBackend EmulatedCudaBackend
#include "engine/cuda/backend.cu"
