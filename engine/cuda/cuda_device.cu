// Device discovery and the first shared-math kernel (RoPE) of the CUDA backend.
#include <cuda_runtime.h>

#include <vector>

#include "engine/cuda/cuda_device.h"
#include "engine/rope.h"

namespace latent::engine::cuda {
namespace {

__global__ void rope_kernel(const RopeParams p, const float* in, float* out, int n_vec, int pos0) {
    const int v = blockIdx.x * blockDim.x + threadIdx.x;
    if (v >= n_vec) return;
    float x[1024];
    for (int i = 0; i < p.n_rot; ++i) x[i] = in[v * p.n_rot + i];
    rope_apply(p, pos0 + v, x);
    for (int i = 0; i < p.n_rot; ++i) out[v * p.n_rot + i] = x[i];
}

}  // namespace

DeviceInfo query_devices() {
    DeviceInfo info;
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        // Error 35 (insufficient driver) or 100 (no device) on machines without a GPU.
        info.why_none = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
        cudaGetLastError();  // clear the sticky error
        return info;
    }
    if (n == 0) {
        info.why_none = "no CUDA device";
        return info;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
        info.name = prop.name;
        info.cc_major = prop.major;
        info.cc_minor = prop.minor;
        info.total_memory = prop.totalGlobalMem;
    }
    info.count = n;
    return info;
}

bool rope_on_device(const float* in, float* out, int n_vec, int n_rot, int pos0, float freq_base,
                    float scaling_factor, bool yarn, unsigned n_ctx_orig, std::string& why) {
    const DeviceInfo info = query_devices();
    if (info.count == 0) {
        why = info.why_none;
        return false;
    }
    if (n_rot > 1024 || n_rot % 2) {
        why = "n_rot must be even and <= 1024";
        return false;
    }
    const RopeParams p =
        make_rope_params(n_rot, freq_base, scaling_factor, yarn, n_ctx_orig, 32.0f, 1.0f, 1.0f);
    const size_t bytes = sizeof(float) * static_cast<size_t>(n_vec) * n_rot;
    float *d_in = nullptr, *d_out = nullptr;
    bool ok = cudaMalloc(&d_in, bytes) == cudaSuccess && cudaMalloc(&d_out, bytes) == cudaSuccess &&
              cudaMemcpy(d_in, in, bytes, cudaMemcpyHostToDevice) == cudaSuccess;
    if (ok) {
        rope_kernel<<<(n_vec + 63) / 64, 64>>>(p, d_in, d_out, n_vec, pos0);
        ok = cudaGetLastError() == cudaSuccess &&
             cudaMemcpy(out, d_out, bytes, cudaMemcpyDeviceToHost) == cudaSuccess;
    }
    if (!ok) why = cudaGetErrorString(cudaGetLastError());
    cudaFree(d_in);
    cudaFree(d_out);
    return ok;
}

}  // namespace latent::engine::cuda
