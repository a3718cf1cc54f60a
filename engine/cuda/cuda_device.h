// CUDA device discovery for the CUDA backend. A machine without a driver or GPU is
// "no device" with a reason, never an error that stops the program: CI compiles the
// CUDA sources on machines that have nvcc but no GPU.
#pragma once

#include <string>

namespace latent::engine::cuda {

struct DeviceInfo {
    int count = 0;     // usable devices (0 where none)
    std::string name;  // device 0's name
    int cc_major = 0, cc_minor = 0;
    size_t total_memory = 0;  // bytes, device 0
    std::string why_none;     // when count == 0: what the runtime said
};

DeviceInfo query_devices();

// Applies the shared RoPE arithmetic (engine/rope.h) on the device to `n_vec` vectors
// of n_rot floats at positions pos0.. (a check that host and device agree).
// Returns false with `why` set when no device can run it.
bool rope_on_device(const float* in, float* out, int n_vec, int n_rot, int pos0, float freq_base,
                    float scaling_factor, bool yarn, unsigned n_ctx_orig, std::string& why);

}  // namespace latent::engine::cuda
