// The CUDA backend's first pieces: device discovery that treats "no GPU" as a normal
// answer, and the shared RoPE arithmetic run on the device against the host. Without a
// device the GPU check skips with the runtime's reason; the host math always runs.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/rope.h"
#ifdef LATENT_HAVE_CUDA
#include "engine/cuda/cuda_device.h"
#endif

namespace latent::engine {
namespace {

#ifdef LATENT_HAVE_CUDA
TEST(Cuda, DeviceQueryNeverFails) {
    const cuda::DeviceInfo info = cuda::query_devices();
    if (info.count == 0) {
        EXPECT_FALSE(info.why_none.empty());
    } else {
        EXPECT_FALSE(info.name.empty());
        EXPECT_GT(info.total_memory, 0u);
    }
}

TEST(Cuda, RopeOnDeviceMatchesHost) {
    const int n_vec = 100, n_rot = 64;
    std::vector<float> in(n_vec * n_rot), out(in.size()), host(in.size());
    for (size_t i = 0; i < in.size(); ++i) in[i] = std::sin(0.37f * static_cast<float>(i));
    std::string why;
    if (!cuda::rope_on_device(in.data(), out.data(), n_vec, n_rot, 1000, 10000.0f, 40.0f, true,
                              4096, why))
        GTEST_SKIP() << "no CUDA device: " << why;
    const RopeParams p = make_rope_params(n_rot, 10000.0f, 40.0f, true, 4096, 32.0f, 1.0f, 1.0f);
    host = in;
    for (int v = 0; v < n_vec; ++v) rope_apply(p, 1000 + v, &host[v * n_rot]);
    for (size_t i = 0; i < in.size(); ++i) EXPECT_NEAR(out[i], host[i], 1e-5) << i;
}
#endif

TEST(CudaHostMath, RopeAtLargePositionsKeepsNorms) {
    // The device path shares rope_apply; its host run must stay accurate at the long
    // positions (163840) DeepSeek supports, where float angles would lose precision.
    const RopeParams p = make_rope_params(64, 10000.0f, 40.0f, true, 4096, 32.0f, 1.0f, 1.0f);
    std::vector<float> x(64);
    for (int i = 0; i < 64; ++i) x[i] = static_cast<float>(i % 7) - 3.0f;
    double before = 0, after = 0;
    for (float v : x) before += double(v) * v;
    rope_apply(p, 163839, x.data());
    for (float v : x) after += double(v) * v;
    EXPECT_NEAR(after, before, 1e-4 * before);
    // Pair 0 turns by exactly pos radians (theta_0 = 1): check against double math.
    std::vector<float> y(64, 0.0f);
    y[0] = 1.0f;
    rope_apply(p, 163839, y.data());
    EXPECT_NEAR(y[0], std::cos(163839.0), 1e-6);
    EXPECT_NEAR(y[1], std::sin(163839.0), 1e-6);
}

}  // namespace
}  // namespace latent::engine
