// The CUDA backend's first pieces: device discovery that treats "no GPU" as a normal
// answer, and the shared RoPE arithmetic run on the device against the host. Without a
// device the GPU check skips with the runtime's reason; the host math always runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "engine/cuda/kernel_math.h"
#include "engine/reference.h"
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

// ---- the shared kernel arithmetic (engine/cuda/kernel_math.h) against the reference ----

using cuda::kChunk;

uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

TEST(CudaHostMath, DequantChunksEqualQuantCppBitForBit) {
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 2.0f);
    for (GgmlType t :
         {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K}) {
        const int64_t n = 1024;
        std::vector<uint8_t> row(row_bytes(t, n));
        std::vector<float> want(n), got(n), src(n);
        for (int rep = 0; rep < 40; ++rep) {
            if (rep % 2) {
                // Random bytes: every bit pattern of the scales and quants (fp16 scales may be
                // subnormal, inf or NaN; the bits must still agree).
                for (uint8_t& b : row) b = static_cast<uint8_t>(rng());
            } else {
                for (float& x : src) x = nd(rng);
                quantize_row(t, src.data(), row.data(), n);
            }
            dequantize_row(t, row.data(), want.data(), n);
            for (int64_t c = 0; c < n / kChunk; ++c)
                cuda::dequant_chunk(t, row.data(), c, &got[c * kChunk]);
            for (int64_t i = 0; i < n; ++i)
                ASSERT_EQ(bits(got[i]), bits(want[i])) << traits(t).name << " i=" << i;
        }
    }
    for (GgmlType t : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16}) {
        const int64_t n = 37;
        std::vector<float> src(n), want(n);
        for (float& x : src) x = nd(rng);
        std::vector<uint32_t> storage(n);  // aligned for every float type
        auto* row = reinterpret_cast<uint8_t*>(storage.data());
        quantize_row(t, src.data(), row, n);
        dequantize_row(t, row, want.data(), n);
        for (int64_t i = 0; i < n; ++i)
            ASSERT_EQ(bits(cuda::float_elem(t, row, i)), bits(want[i])) << traits(t).name;
    }
}

TEST(CudaHostMath, RmsNormAndSwigluEqualTheReference) {
    std::mt19937 rng(2);
    std::normal_distribution<float> nd(0.0f, 3.0f);
    const int64_t n = 300;
    std::vector<float> x(n), w(n), want(n);
    for (int64_t i = 0; i < n; ++i) {
        x[i] = nd(rng);
        w[i] = nd(rng);
    }
    want = x;
    ref::rms_norm(want.data(), w.data(), n, 1e-6f);
    double ss = 0;
    for (float v : x) ss += static_cast<double>(v) * v;
    const double scale = cuda::rms_scale(ss, n, 1e-6f);
    for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(bits(cuda::rms_apply(x[i], scale, w[i])), bits(want[i])) << i;
    for (int64_t i = 0; i + 1 < n; ++i) {
        float a = w[i];
        a *= ref::silu(x[i]);
        ASSERT_EQ(bits(cuda::swiglu(x[i], w[i])), bits(a)) << i;
    }
}

TEST(CudaHostMath, OnlineSoftmaxSplitAndMergedEqualsTheDirectSoftmax) {
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 4.0f);
    for (int N : {1, 2, 7, 100, 513}) {
        const int D = 5;
        std::vector<float> s(N), val(N * D);
        for (float& v : s) v = nd(rng);
        for (float& v : val) v = nd(rng);
        // Direct, in double.
        const double mx = *std::max_element(s.begin(), s.end());
        double sum = 0;
        std::vector<double> want(D, 0.0);
        for (int j = 0; j < N; ++j) {
            const double e = std::exp(s[j] - mx);
            sum += e;
            for (int d = 0; d < D; ++d) want[d] += e * val[j * D + d];
        }
        // Online, in up to 4 splits (some empty when N is small), then merged.
        const int splits = 4, per = (N + splits - 1) / splits;
        std::vector<cuda::SoftmaxState> st(splits, cuda::SoftmaxState{-INFINITY, 0.0f});
        std::vector<float> acc(splits * D, 0.0f);
        for (int sp = 0; sp < splits; ++sp)
            for (int j = sp * per; j < std::min(N, (sp + 1) * per); ++j) {
                float p;
                const float f = cuda::softmax_add(st[sp], s[j], &p);
                for (int d = 0; d < D; ++d)
                    acc[sp * D + d] = acc[sp * D + d] * f + p * val[j * D + d];
            }
        float m_max = -INFINITY;
        for (const auto& x : st) m_max = std::max(m_max, x.m);
        double l = 0;
        std::vector<double> got(D, 0.0);
        for (int sp = 0; sp < splits; ++sp) {
            const float w = cuda::softmax_merge_weight(st[sp].m, m_max);
            l += w * st[sp].l;
            for (int d = 0; d < D; ++d) got[d] += w * acc[sp * D + d];
        }
        for (int d = 0; d < D; ++d)
            EXPECT_NEAR(got[d] / l, want[d] / sum, 1e-5 * (1 + std::fabs(want[d] / sum)))
                << "N=" << N;
    }
}

TEST(CudaHostMath, RoutingEqualsTheReferenceExactly) {
    std::mt19937 rng(4);
    std::normal_distribution<float> nd(0.0f, 1.5f);
    struct Setup {
        uint32_t X, k, G, Gu;
        GatingFunc gating;
        bool norm, bias;
        float scale;
    };
    const Setup setups[] = {
        {8, 2, 4, 2, GatingFunc::kSigmoid, true, true, 2.5f},     // tiny (V3-style)
        {8, 2, 0, 0, GatingFunc::kSoftmax, false, false, 1.0f},   // tiny-v2 (V2-Lite-style)
        {64, 6, 1, 1, GatingFunc::kSoftmax, false, false, 1.0f},  // lite
        {256, 8, 8, 4, GatingFunc::kSigmoid, true, true, 2.5f},   // V3
        {32, 4, 4, 2, GatingFunc::kSigmoid, true, true, 2.5f},    // small
        {16, 3, 16, 5, GatingFunc::kSoftmax, true, false, 0.0f},  // one expert per group
    };
    for (const Setup& su : setups) {
        HParams hp;
        hp.n_expert = su.X;
        hp.n_expert_used = su.k;
        hp.n_expert_groups = su.G;
        hp.n_group_used = su.Gu;
        hp.gating = su.gating;
        hp.expert_weights_norm = su.norm;
        hp.expert_weights_scale = su.scale;
        cuda::RouterParams rp;
        rp.n_expert = static_cast<int32_t>(su.X);
        rp.n_used = static_cast<int32_t>(su.k);
        rp.n_groups = static_cast<int32_t>(su.G);
        rp.n_group_used = static_cast<int32_t>(su.Gu);
        rp.sigmoid = su.gating == GatingFunc::kSigmoid;
        rp.norm = su.norm;
        rp.scale = su.scale;
        for (int rep = 0; rep < 200; ++rep) {
            std::vector<float> logits(su.X), bias(su.X), p(su.X), s(su.X), w(su.k);
            std::vector<int32_t> e(su.k);
            for (float& v : logits) v = nd(rng);
            for (float& v : bias) v = 0.1f * nd(rng);
            if (rep % 3 == 0)  // ties: repeated logits
                for (uint32_t i = 1; i < su.X; i += 2) logits[i] = logits[i - 1];
            const float* b = su.bias ? bias.data() : nullptr;
            const ref::Routing want = ref::route(hp, logits.data(), b);
            cuda::route_token(rp, logits.data(), b, p.data(), s.data(), e.data(), w.data());
            for (uint32_t k = 0; k < su.k; ++k) {
                ASSERT_EQ(e[k], want.experts[k]) << "X=" << su.X << " rep " << rep << " k " << k;
                ASSERT_EQ(bits(w[k]), bits(want.weights[k])) << "X=" << su.X << " rep " << rep;
            }
        }
    }
}

TEST(CudaHostMath, ArgmaxMergeIsFirstMaximumInAnyReductionOrder) {
    std::mt19937 rng(5);
    for (int rep = 0; rep < 100; ++rep) {
        const int n = 1 + static_cast<int>(rng() % 300);
        std::vector<float> x(n);
        for (float& v : x) v = static_cast<float>(rng() % 20);  // many ties
        if (rep % 4 == 0) x[rng() % n] = NAN;
        int want = -1;
        for (int i = 0; i < n; ++i)
            if (!std::isnan(x[i]) && (want < 0 || x[i] > x[want])) want = i;
        // Tree reduction over strided partials, as a block reduction does.
        const int lanes = 1 + static_cast<int>(rng() % 64);
        std::vector<cuda::ArgMax> part(lanes, cuda::ArgMax{0.0f, -1});
        for (int i = 0; i < n; ++i)
            part[i % lanes] = cuda::argmax_merge(part[i % lanes], cuda::ArgMax{x[i], i});
        for (int stride = 1; stride < lanes; stride *= 2)
            for (int i = 0; i + stride < lanes; i += 2 * stride)
                part[i] = cuda::argmax_merge(part[i], part[i + stride]);
        ASSERT_EQ(part[0].i, want) << rep;
    }
}

// The device's top-p cut (bisection over the probability bit patterns, then ties by id)
// selects exactly the nucleus a sort would.
TEST(CudaHostMath, TopPCutWithoutSortingIsTheSortedNucleus) {
    std::mt19937 rng(6);
    for (int rep = 0; rep < 60; ++rep) {
        const int n = 50 + static_cast<int>(rng() % 500);
        std::vector<float> p(n);
        std::exponential_distribution<float> ed(1.0f);
        double tot = 0;
        for (float& v : p)
            tot += (v = rep % 3 == 0 ? static_cast<float>(1 + rng() % 4) : ed(rng) * ed(rng));
        for (float& v : p) v = static_cast<float>(v / tot);
        const float top_p = 0.05f + 0.9f * static_cast<float>(rng() % 1000) / 1000.0f;
        // Sorted reference.
        std::vector<int> order(n);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
        std::vector<bool> want(n, false);
        double cum = 0;
        for (int i : order) {
            want[i] = true;
            cum += p[i];
            if (cum >= top_p) break;
        }
        // Without sorting.
        auto mass_ge = [&](uint32_t key) {
            double m = 0;
            for (float v : p)
                if (cuda::prob_key(v) >= key) m += v;
            return m;
        };
        uint32_t lo = 0, hi = 0x7f800000u;
        while (hi - lo > 1) {
            const uint32_t mid = lo + (hi - lo) / 2;
            (mass_ge(mid) >= top_p ? lo : hi) = mid;
        }
        const float v = bits_float(lo);
        int n_eq = 0;
        for (float x : p) n_eq += x == v;
        const int ties = cuda::nucleus_ties(mass_ge(lo + 1), v, top_p, n_eq);
        std::vector<bool> got(n, false);
        int taken = 0;
        for (int i = 0; i < n; ++i) got[i] = p[i] > v || (p[i] == v && taken++ < ties);
        ASSERT_EQ(got, want) << "rep " << rep << " top_p " << top_p;
    }
}

}  // namespace
}  // namespace latent::engine
