// RoPE with YaRN frequency blending, as llama.cpp applies it to deepseek2 (NORM mode:
// adjacent pairs, ENGINE_SPEC §3.2). Small LATENT_HD functions so the CPU reference,
// the fast CPU path and CUDA kernels share one definition of the arithmetic.
// Not the attention itself; see reference.cpp.
#pragma once

#include <math.h>

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define LATENT_ROPE_HD __host__ __device__
#else
#define LATENT_ROPE_HD
#endif

namespace latent::engine {

struct RopeParams {
    int32_t n_rot = 64;  // r: rotated dims (pairs = r / 2)
    float freq_base = 10000.0f;
    float freq_scale = 1.0f;  // 1 / rope.scaling.factor
    bool yarn = false;
    float corr_lo = 0, corr_hi = 0;  // YaRN ramp ends over pair index i
    float magnitude = 1.0f;  // rope.scaling.attn_factor: rotated vectors keep this norm ratio
};

// corr(beta) = r ln(L_orig / (2 pi beta)) / (2 ln base).
inline float yarn_corr_dim(int32_t n_rot, uint32_t n_ctx_orig, float beta, float base) {
    return static_cast<float>(n_rot) *
           std::log(static_cast<float>(n_ctx_orig) / (beta * 2.0f * 3.14159265358979f)) /
           (2.0f * std::log(base));
}

inline RopeParams make_rope_params(int32_t n_rot, float base, float scaling_factor, bool yarn,
                                   uint32_t n_ctx_orig, float beta_fast, float beta_slow,
                                   float attn_factor) {
    RopeParams p;
    p.n_rot = n_rot;
    p.freq_base = base;
    p.freq_scale = scaling_factor > 0 ? 1.0f / scaling_factor : 1.0f;
    p.yarn = yarn && scaling_factor > 1.0f;
    if (p.yarn) {
        const float lo = std::floor(yarn_corr_dim(n_rot, n_ctx_orig, beta_fast, base));
        const float hi = std::ceil(yarn_corr_dim(n_rot, n_ctx_orig, beta_slow, base));
        p.corr_lo = lo > 0 ? lo : 0;
        p.corr_hi = hi < n_rot - 1 ? hi : static_cast<float>(n_rot - 1);
    }
    p.magnitude = attn_factor;
    return p;
}

// Angle of pair i at position pos: theta_i = interp (1 - gamma_i) + extrap gamma_i.
LATENT_ROPE_HD inline double rope_theta(const RopeParams& p, int32_t pos, int32_t i) {
    const double extrap =
        pos * ::pow(static_cast<double>(p.freq_base), -2.0 * i / static_cast<double>(p.n_rot));
    const double interp = extrap * p.freq_scale;
    if (!p.yarn) return interp;
    double y = (i - p.corr_lo) / ::fmax(0.001, static_cast<double>(p.corr_hi - p.corr_lo));
    y = y < 0 ? 0 : (y > 1 ? 1 : y);
    const double gamma = 1.0 - y;
    return interp * (1.0 - gamma) + extrap * gamma;
}

// Rotates x[0..n_rot) in place: adjacent pairs (x_2i, x_2i+1) by theta_i(pos).
LATENT_ROPE_HD inline void rope_apply(const RopeParams& p, int32_t pos, float* x) {
    for (int32_t i = 0; i < p.n_rot / 2; ++i) {
        const double th = rope_theta(p, pos, i);
        const double c = ::cos(th) * p.magnitude, s = ::sin(th) * p.magnitude;
        const double x0 = x[2 * i], x1 = x[2 * i + 1];
        x[2 * i] = static_cast<float>(x0 * c - x1 * s);
        x[2 * i + 1] = static_cast<float>(x0 * s + x1 * c);
    }
}

}  // namespace latent::engine
