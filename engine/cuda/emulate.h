// A host stand-in for the parts of the CUDA runtime and cuBLAS that engine/cuda/backend.cu
// uses, so that the backend's kernels and host code run — slowly, on the CPU — where no
// GPU exists: engine/cuda/backend_emulated.cpp compiles backend.cu against this header for
// the emulation test (tests/CMakeLists.txt), which also runs under ASan. Not a CUDA
// implementation: one block at a time, its threads as coroutines on the calling thread,
// __syncthreads and warp shuffles as barriers; device memory is host memory; GEMMs are plain loops.
// It finds index, bound and launch-shape mistakes; it cannot find device-only ones (alignment
// faults, register limits, real cuBLAS behaviour).
#pragma once

#include <ucontext.h>
#include <algorithm>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__
#define __shared__ static

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// One kernel thread at a time: these are set by the scheduler before it resumes a thread.
inline dim3 threadIdx, blockIdx, blockDim, gridDim;

using std::isfinite;
using std::max;
using std::min;

namespace latent::engine::emulate {

// Kernel threads are coroutines (ucontext) on the calling thread, one block at a time: a
// thread runs until it reaches a barrier (__syncthreads, or the two halves of a warp
// shuffle) or ends. A warp's lanes are released when all its live lanes wait at the warp
// barrier; the block barrier when all live threads wait at it. Cheap switches, no OS threads.
enum class State { kRunnable, kWarpWait, kBlockWait, kDone };

struct Scheduler {
    static constexpr size_t kStack = 256 << 10;
    ucontext_t main_ctx;
    std::vector<ucontext_t> ctx;
    std::vector<std::unique_ptr<char[]>> stacks;
    std::vector<State> state;
    unsigned current = 0;
    std::function<void()> body;
};
inline Scheduler sched;
inline float warp_slots[32][32];

inline void thread_entry() {
    sched.body();
    sched.state[sched.current] = State::kDone;
    // Returning switches to uc_link (the scheduler).
}

inline void wait(State s) {
    sched.state[sched.current] = s;
    swapcontext(&sched.ctx[sched.current], &sched.main_ctx);
}

// A stream capture in progress records launches instead of running them (CUDA graphs).
using Graph = std::vector<std::function<void()>>;
inline Graph* capturing = nullptr;

// Runs kernel(args...) over the grid with blockDim.x threads per block.
template <class... P, class... A>
void run_now(void (*kernel)(P...), dim3 grid, dim3 block, A... args) {
    const unsigned n = block.x;
    if (sched.ctx.size() < n) {
        sched.ctx.resize(n);
        while (sched.stacks.size() < n)
            sched.stacks.push_back(std::make_unique<char[]>(Scheduler::kStack));
    }
    sched.state.assign(n, State::kRunnable);
    sched.body = [&] { kernel(args...); };
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                blockIdx = dim3(bx, by, bz);
                blockDim = block;
                gridDim = grid;
                for (unsigned t = 0; t < n; ++t) {
                    sched.state[t] = State::kRunnable;
                    getcontext(&sched.ctx[t]);
                    sched.ctx[t].uc_stack.ss_sp = sched.stacks[t].get();
                    sched.ctx[t].uc_stack.ss_size = Scheduler::kStack;
                    sched.ctx[t].uc_link = &sched.main_ctx;
                    makecontext(&sched.ctx[t], thread_entry, 0);
                }
                for (;;) {
                    for (unsigned t = 0; t < n; ++t)
                        if (sched.state[t] == State::kRunnable) {
                            sched.current = t;
                            threadIdx = dim3(t);
                            swapcontext(&sched.main_ctx, &sched.ctx[t]);
                        }
                    bool all_done = true, all_block = true, any = false;
                    for (unsigned t = 0; t < n; ++t) {
                        all_done &= sched.state[t] == State::kDone;
                        all_block &=
                            sched.state[t] == State::kDone || sched.state[t] == State::kBlockWait;
                    }
                    if (all_done) break;
                    if (all_block)
                        for (unsigned t = 0; t < n; ++t)
                            if (sched.state[t] == State::kBlockWait) {
                                sched.state[t] = State::kRunnable;
                                any = true;
                            }
                    for (unsigned w = 0; w * 32 < n; ++w) {
                        const unsigned e = std::min(n, 32 * w + 32);
                        bool ready = true, waiting = false;
                        for (unsigned t = 32 * w; t < e; ++t) {
                            ready &= sched.state[t] == State::kDone ||
                                     sched.state[t] == State::kWarpWait;
                            waiting |= sched.state[t] == State::kWarpWait;
                        }
                        if (ready && waiting)
                            for (unsigned t = 32 * w; t < e; ++t)
                                if (sched.state[t] == State::kWarpWait) {
                                    sched.state[t] = State::kRunnable;
                                    any = true;
                                }
                    }
                    if (!any) {
                        std::fprintf(stderr, "emulate: deadlock in a kernel (block %u %u %u)\n", bx,
                                     by, bz);
                        std::abort();
                    }
                }
            }
}

template <class... P, class... A>
void run(void (*kernel)(P...), dim3 grid, dim3 block, A... args) {
    if (capturing) {
        capturing->push_back([=] { run_now(kernel, grid, block, args...); });
        return;
    }
    run_now(kernel, grid, block, args...);
}

}  // namespace latent::engine::emulate

inline void __syncthreads() {
    latent::engine::emulate::wait(latent::engine::emulate::State::kBlockWait);
}

inline float __shfl_xor_sync(unsigned, float v, int lane_mask) {
    namespace em = latent::engine::emulate;
    const unsigned w = threadIdx.x / 32, lane = threadIdx.x % 32;
    em::warp_slots[w][lane] = v;
    em::wait(em::State::kWarpWait);
    const float r = em::warp_slots[w][lane ^ static_cast<unsigned>(lane_mask)];
    em::wait(em::State::kWarpWait);
    return r;
}

// ---- runtime API ----

enum cudaError_t { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 };
using cudaStream_t = void*;
enum cudaMemcpyKind {
    cudaMemcpyHostToDevice,
    cudaMemcpyDeviceToHost,
    cudaMemcpyDeviceToDevice,
};
constexpr unsigned cudaStreamNonBlocking = 1;
struct cudaDeviceProp {
    char name[256];
    int major, minor;
    size_t totalGlobalMem;
};

inline const char* cudaGetErrorName(cudaError_t e) {
    return e == cudaSuccess ? "cudaSuccess" : "cudaErrorMemoryAllocation";
}
inline const char* cudaGetErrorString(cudaError_t e) { return cudaGetErrorName(e); }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* n) {
    *n = 1;
    return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
    std::strcpy(p->name, "host emulation");
    p->major = 9;
    p->minor = 0;
    p->totalGlobalMem = size_t{1} << 30;
    return cudaSuccess;
}
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
    *s = nullptr;
    return cudaSuccess;
}
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaMemGetInfo(size_t* free_b, size_t* total_b) {
    *free_b = *total_b = size_t{1} << 30;
    return cudaSuccess;
}
inline cudaError_t cudaMalloc(void** p, size_t bytes) {
    *p = std::malloc(bytes);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaFree(void* p) {
    std::free(p);
    return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) {
    std::memcpy(d, s, n);
    return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t) {
    std::memcpy(d, s, n);
    return cudaSuccess;
}
inline cudaError_t cudaMemcpy2DAsync(void* d, size_t dpitch, const void* s, size_t spitch,
                                     size_t width, size_t height, cudaMemcpyKind, cudaStream_t) {
    for (size_t r = 0; r < height; ++r)
        std::memcpy(static_cast<char*>(d) + r * dpitch, static_cast<const char*>(s) + r * spitch,
                    width);
    return cudaSuccess;
}

// ---- graphs ----

using cudaGraph_t = latent::engine::emulate::Graph*;
using cudaGraphExec_t = latent::engine::emulate::Graph*;
enum cudaStreamCaptureMode { cudaStreamCaptureModeThreadLocal };
inline cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode) {
    latent::engine::emulate::capturing = new latent::engine::emulate::Graph;
    return cudaSuccess;
}
inline cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t* g) {
    *g = latent::engine::emulate::capturing;
    latent::engine::emulate::capturing = nullptr;
    return cudaSuccess;
}
inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long) {
    *e = new latent::engine::emulate::Graph(*g);
    return cudaSuccess;
}
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t) {
    for (auto& f : *e) f();
    return cudaSuccess;
}
inline cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}
inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
    delete e;
    return cudaSuccess;
}

// ---- cuBLAS ----

using cublasHandle_t = void*;
enum cublasStatus_t {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED,
    CUBLAS_STATUS_ALLOC_FAILED,
    CUBLAS_STATUS_INVALID_VALUE,
    CUBLAS_STATUS_ARCH_MISMATCH,
    CUBLAS_STATUS_EXECUTION_FAILED,
    CUBLAS_STATUS_INTERNAL_ERROR,
    CUBLAS_STATUS_NOT_SUPPORTED,
};
enum cublasOperation_t { CUBLAS_OP_N, CUBLAS_OP_T };
enum cublasMath_t { CUBLAS_PEDANTIC_MATH, CUBLAS_TF32_TENSOR_OP_MATH };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_TF32 };
enum cudaDataType { CUDA_R_32F };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };

inline cublasStatus_t cublasCreate(cublasHandle_t* h) {
    *h = nullptr;
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasDestroy(cublasHandle_t) { return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) {
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) {
    return CUBLAS_STATUS_SUCCESS;
}

// TF32: 10 explicit mantissa bits, round to nearest.
inline float emulate_tf32(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    u = (u + 0xfffu + ((u >> 13) & 1u)) & ~0x1fffu;
    std::memcpy(&x, &u, 4);
    return x;
}

// Column-major C = alpha op(A) op(B) + beta C per batch, as cuBLAS defines it; the checks
// cuBLAS makes on leading dimensions are made here too.
inline cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t, cublasOperation_t ta,
                                                 cublasOperation_t tb, int m, int n, int k,
                                                 const void* alpha, const void* A, cudaDataType,
                                                 int lda, long long sa, const void* B, cudaDataType,
                                                 int ldb, long long sb, const void* beta, void* C,
                                                 cudaDataType, int ldc, long long sc, int batch,
                                                 cublasComputeType_t compute, cublasGemmAlgo_t) {
    if (m < 0 || n < 0 || k < 0 || batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (lda < std::max(1, ta == CUBLAS_OP_N ? m : k)) return CUBLAS_STATUS_INVALID_VALUE;
    if (ldb < std::max(1, tb == CUBLAS_OP_N ? k : n)) return CUBLAS_STATUS_INVALID_VALUE;
    if (ldc < std::max(1, m)) return CUBLAS_STATUS_INVALID_VALUE;
    const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
    const bool tf32 = compute == CUBLAS_COMPUTE_32F_FAST_TF32;
    auto in = [&](float x) { return tf32 ? emulate_tf32(x) : x; };
    for (int b = 0; b < batch; ++b) {
        const float* a = static_cast<const float*>(A) + b * sa;
        const float* bb = static_cast<const float*>(B) + b * sb;
        float* c = static_cast<float*>(C) + b * sc;
        for (int j = 0; j < n; ++j)
            for (int i = 0; i < m; ++i) {
                double s = 0;
                for (int l = 0; l < k; ++l) {
                    const float av = ta == CUBLAS_OP_N ? a[i + static_cast<int64_t>(l) * lda]
                                                       : a[l + static_cast<int64_t>(i) * lda];
                    const float bv = tb == CUBLAS_OP_N ? bb[l + static_cast<int64_t>(j) * ldb]
                                                       : bb[j + static_cast<int64_t>(l) * ldb];
                    s += static_cast<double>(in(av)) * in(bv);
                }
                float& out = c[i + static_cast<int64_t>(j) * ldc];
                out = static_cast<float>(al * s + (be != 0.0f ? be * out : 0.0f));
            }
    }
    return CUBLAS_STATUS_SUCCESS;
}
