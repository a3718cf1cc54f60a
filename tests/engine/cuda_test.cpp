// The CUDA backend's first pieces: device discovery that treats "no GPU" as a normal
// answer, and the shared RoPE arithmetic run on the device against the host. Without a
// device the GPU check skips with the runtime's reason; the host math always runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "engine/cuda/kernel_math.h"
#include "engine/reference.h"
#include "engine/rope.h"
#include "engine/session.h"
#include "tests/support/test_models.h"
#if defined(LATENT_CUDA_EMULATE)
// The emulation test (tests/CMakeLists.txt): the backend's kernels on host threads.
#define CudaBackend EmulatedCudaBackend
#include "engine/cuda/backend.h"
#define LATENT_TEST_GPU_BACKEND 1
#elif defined(LATENT_HAVE_CUDA)
#include "engine/cuda/backend.h"
#include "engine/cuda/cuda_device.h"
#define LATENT_TEST_GPU_BACKEND 1
#endif

namespace latent::engine {
namespace {

#if defined(LATENT_HAVE_CUDA) && !defined(LATENT_CUDA_EMULATE)
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

// ---- whole models on the device against the reference (skipped without a device) ----

#ifdef LATENT_TEST_GPU_BACKEND

// The emulation runs kernels on host threads: shorter runs, same code paths (its chunks and
// attention splits are smaller, see backend.cu).
#ifdef LATENT_CUDA_EMULATE
constexpr int kPrompt = 12, kGen = 3, kLongPrompt = 40;
#else
constexpr int kPrompt = 64, kGen = 32, kLongPrompt = 320;
#endif

const GgmlType kAllTypes[] = {GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16, GgmlType::kQ8_0,
                              GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K};

struct ModelCase {
    const char* preset;
    GgmlType type;
    bool q_lora;
    bool split;
};

std::string describe(const ModelCase& c) {
    return std::string(c.preset) + " " + traits(c.type).name + (c.q_lora ? " q-lora" : "") +
           (c.split ? " split" : " single");
}

std::unique_ptr<Model> load_case(const ModelCase& c) {
    MakeModelOptions o;
    o.preset = c.preset;
    o.quant = c.type;
    o.q_lora = c.q_lora;
    o.split_kv = c.split;
    auto m = Model::load(test::make_test_model(o));
    EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
    return m.ok() ? std::move(*m) : nullptr;
}

// Every weight type on V3-style (tiny: sigmoid, groups, q-LoRA) and V2-style (tiny-v2:
// softmax, 27 layers, no q-LoRA, two shared experts) models, both kv_b layouts; the
// K-quants need rows of 256 (small).
std::vector<ModelCase> model_cases() {
    std::vector<ModelCase> cases;
#ifdef LATENT_CUDA_EMULATE
    // Emulated kernels are slow (minutes per case): by default every weight format's
    // kernel path once — float, block-32 and K-quant dequantization, both layouts, V2 and V3
    // routing — and all of them with LATENT_EMULATION_ALL_CASES=1.
    if (!std::getenv("LATENT_EMULATION_ALL_CASES")) {
        cases.push_back({"tiny", GgmlType::kQ8_0, true, true});
        cases.push_back({"tiny-v2", GgmlType::kQ4_0, false, true});
        cases.push_back({"tiny-v2", GgmlType::kBF16, false, false});
        cases.push_back({"small", GgmlType::kQ4_K, true, true});
        return cases;
    }
#endif
    for (GgmlType t : kAllTypes) {
        const bool k_quant = traits(t).block_size == 256;
        if (k_quant) {
            cases.push_back({"small", t, true, true});
        } else {
            cases.push_back({"tiny", t, true, true});
            cases.push_back({"tiny-v2", t, false, true});
        }
    }
    cases.push_back({"tiny", GgmlType::kF16, false, false});
    cases.push_back({"tiny-v2", GgmlType::kQ8_0, false, false});
    return cases;
}

double rms_of(const float* a, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += double(a[i]) * a[i];
    return std::sqrt(s / n);
}

// The backend, or a skip with the runtime's reason.
#define CUDA_OR_SKIP(var, opts)                                  \
    auto var##_made = CudaBackend::create(opts);                 \
    if (!var##_made) GTEST_SKIP() << var##_made.error().message; \
    CudaBackend& var = **var##_made

struct GpuRun {
    std::vector<double> step_errs;  // max|Δlogit| / rms(reference logits), per step
    int steps = 0, same_argmax = 0;
};

// Prefill n_prompt tokens (one 64-token pass: the cuBLAS path) and n_gen greedy decode steps
// (the fused kernels) on the device; the reference runs the same tokens (the device's
// choices, teacher-forced) and every step's logits are compared.
GpuRun run_against_reference(const Model& m, CudaBackend& gpu, int n_prompt, int n_gen,
                             uint32_t seed) {
    const HParams& hp = m.hparams();
    const uint32_t V = hp.n_vocab;
    LatentCache cg(LatentCache::Config{hp.n_layer, hp.kv_lora_rank, hp.n_rot, 16});
    LatentCache cr(LatentCache::Config{hp.n_layer, hp.kv_lora_rank, hp.n_rot, 16});
    ReferenceBackend ref;
    Session sg(m, gpu, cg), sr(m, ref, cr);
    std::vector<int32_t> ids(n_prompt);
    for (int32_t& id : ids) id = static_cast<int32_t>((seed = seed * 1103515245u + 12345u) % V);
    GpuRun run;
    auto check = [&](const float* lg, const float* lr) {
        double err = 0;
        for (uint32_t i = 0; i < V; ++i) err = std::max(err, double(std::fabs(lg[i] - lr[i])));
        run.step_errs.push_back(err / rms_of(lr, V));
        const auto ag = std::max_element(lg, lg + V) - lg;
        const auto ar = std::max_element(lr, lr + V) - lr;
        ++run.steps;
        run.same_argmax += ag == ar;
        return static_cast<int32_t>(ag);
    };
    auto pg = sg.prefill(ids, 0);
    auto pr = sr.prefill(ids, 0);
    EXPECT_TRUE(pg.ok()) << (pg.ok() ? "" : pg.error().message);
    EXPECT_TRUE(pr.ok());
    if (!pg.ok() || !pr.ok()) return run;
    int32_t next = check(pg->logits.data(), pr->logits.data());
    for (int i = 0; i < n_gen; ++i) {
        auto lg = sg.decode(next);
        auto lr = sr.decode(next);
        EXPECT_TRUE(lg.ok()) << (lg.ok() ? "" : lg.error().message);
        if (!lg.ok() || !lr.ok()) return run;
        next = check(lg->data(), lr->data());
    }
    return run;
}

// Precise mode (cuBLAS in FP32, no TF32): the device reads the very weights the reference
// dequantizes (DequantChunksEqualQuantCppBitForBit) and differs only in float summation order
// against the reference's double sums and in the device's expf (<= 2 ulp): the same sources of
// error as CpuBackend's precise mode, which measures ~1e-6 of the logit RMS. Allowed: 2e-4 of
// the RMS at every step, and the reference's greedy token at every step.
TEST(CudaBackend, PreciseMatchesTheReferenceForEveryTypeAndLayout) {
    CudaOptions o;
    o.precise = true;
    CUDA_OR_SKIP(gpu, o);
    for (const ModelCase& c : model_cases()) {
        auto m = load_case(c);
        ASSERT_TRUE(m);
        const GpuRun r = run_against_reference(*m, gpu, kPrompt, kGen, 11);
        const double worst =
            r.step_errs.empty() ? 1e9 : *std::max_element(r.step_errs.begin(), r.step_errs.end());
        std::printf("cuda precise %-28s max|dlogit|/rms %.2e, argmax same %d/%d\n",
                    describe(c).c_str(), worst, r.same_argmax, r.steps);
        EXPECT_EQ(r.steps, kGen + 1) << describe(c);
        EXPECT_LT(worst, 2e-4) << describe(c);
        EXPECT_EQ(r.same_argmax, r.steps) << describe(c) << ": greedy tokens differ";
    }
}

// Default mode: prefill GEMMs on TF32 tensor cores (10-bit mantissa inputs, FP32 sums): each
// product is off by up to ~2^-11 relative, ~1e-3 of the logit RMS after the layers; decode
// steps use the FP32 fused kernels but read the prompt's cache rows. MoE routing is
// discontinuous (a near-tie between two experts' scores can flip), so a step may jump: the
// bound is on the median step (< 1e-2; a wrong kernel gives ~1) and on greedy agreement
// (>= 90 % of steps).
TEST(CudaBackend, Tf32PrefillStaysCloseToTheReference) {
    CUDA_OR_SKIP(gpu, CudaOptions{});
    for (const ModelCase& c : model_cases()) {
#ifdef LATENT_CUDA_EMULATE
        // 4 steps are too few for a median on `small` (sigmoid routing in groups): one
        // expert choice flipped by TF32 rounding in the 12-token prompt moves every later
        // step (measured 5e-2 here, while precise mode on the same case is 1e-6). The GPU
        // run (33 steps) keeps it; the emulation checks the TF32 path on the tiny models.
        if (std::string(c.preset) == "small") continue;
#endif
        auto m = load_case(c);
        ASSERT_TRUE(m);
        GpuRun r = run_against_reference(*m, gpu, kPrompt, kGen, 11);
        std::sort(r.step_errs.begin(), r.step_errs.end());
        const double median = r.step_errs.empty() ? 1e9 : r.step_errs[r.step_errs.size() / 2];
        std::printf("cuda tf32    %-28s median |dlogit|max/rms %.2e, argmax same %d/%d\n",
                    describe(c).c_str(), median, r.same_argmax, r.steps);
        EXPECT_EQ(r.steps, kGen + 1) << describe(c);
        EXPECT_LT(median, 1e-2) << describe(c);
        EXPECT_GE(r.same_argmax * 10, r.steps * 9) << describe(c);
    }
}

// Several sequences through one backend, interleaved: each keeps its own device mirror.
// Then one is cut back and re-extended (Session::prefill with a shared prefix), which must
// re-use the mirror's prefix and recompute only the rest; a long prompt runs in several
// chunks and the decode attention splits over the sequence.
TEST(CudaBackend, SeveralSequencesTruncationAndLongPrompts) {
    CudaOptions o;
    o.precise = true;
    CUDA_OR_SKIP(gpu, o);
    auto m = load_case({"tiny", GgmlType::kQ8_0, true, true});
    ASSERT_TRUE(m);
    const HParams& hp = m->hparams();
    const uint32_t V = hp.n_vocab;
    const LatentCache::Config cfg{hp.n_layer, hp.kv_lora_rank, hp.n_rot, 16};
    LatentCache cg(cfg), cr(cfg);
    ReferenceBackend ref;
    const int kSeqs = 4;
    std::vector<std::unique_ptr<Session>> g, r;
    std::vector<std::vector<int32_t>> prompts(kSeqs);
    uint32_t seed = 5;
    for (int s = 0; s < kSeqs; ++s) {
        g.push_back(std::make_unique<Session>(*m, gpu, cg));
        r.push_back(std::make_unique<Session>(*m, ref, cr));
        prompts[s].resize(static_cast<size_t>(s == 3 ? kLongPrompt : 20));  // one > a chunk
        for (int32_t& id : prompts[s]) id = static_cast<int32_t>((seed = seed * 69069u + 1u) % V);
    }
    auto expect_close = [&](const std::vector<float>& a, const std::vector<float>& b,
                            const char* what, int s) {
        ASSERT_EQ(a.size(), b.size());
        double err = 0;
        for (size_t i = 0; i < a.size(); ++i) err = std::max(err, double(std::fabs(a[i] - b[i])));
        EXPECT_LT(err / rms_of(b.data(), b.size()), 2e-4) << what << " seq " << s;
    };
    std::vector<int32_t> next(kSeqs);
    for (int s = 0; s < kSeqs; ++s) {
        auto a = g[s]->prefill(prompts[s], 0);
        auto b = r[s]->prefill(prompts[s], 0);
        ASSERT_TRUE(a.ok() && b.ok()) << (a.ok() ? "" : a.error().message);
        expect_close(a->logits, b->logits, "prefill", s);
        next[s] = static_cast<int32_t>(std::max_element(b->logits.begin(), b->logits.end()) -
                                       b->logits.begin());
    }
    for (int step = 0; step < 6; ++step)
        for (int s = 0; s < kSeqs; ++s) {
            auto a = g[s]->decode(next[s]);
            auto b = r[s]->decode(next[s]);
            ASSERT_TRUE(a.ok() && b.ok());
            expect_close(*a, *b, "decode", s);
            next[s] = static_cast<int32_t>(std::max_element(b->begin(), b->end()) - b->begin());
        }
    // Cut sequence 1 back to 12 tokens and give it a different tail.
    std::vector<int32_t> p2(prompts[1].begin(), prompts[1].begin() + 12);
    for (int i = 0; i < 9; ++i) p2.push_back(static_cast<int32_t>((i * 7 + 3) % V));
    auto a = g[1]->prefill(p2, 0);
    auto b = r[1]->prefill(p2, 0);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->n_reused, 12);
    expect_close(a->logits, b->logits, "re-prefill", 1);
    // All logits of a multi-token append (LogitsMode::kAll).
    const std::vector<int32_t> more = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    auto aa = g[2]->append_all(more);
    auto bb = r[2]->append_all(more);
    ASSERT_TRUE(aa.ok() && bb.ok());
    expect_close(*aa, *bb, "append_all", 2);
    EXPECT_EQ(gpu.graph_note(), "") << "decode steps did not run as CUDA graphs";
}

// The device tier of cache pages: a sequence that starts from another's pages (as the
// prefix cache attaches them) gets them by a device copy, not from the host; a page cut
// back and written over on the host is never taken from its stale device copy; a budget
// of one page keeps the latest. Logits against the reference from scratch each time.
TEST(CudaBackend, DevicePagesServeSharedPrefixesAndNeverStaleOnes) {
    CudaOptions o;
    o.precise = true;
    CUDA_OR_SKIP(gpu, o);
    auto m = load_case({"tiny", GgmlType::kQ8_0, true, true});
    ASSERT_TRUE(m);
    const HParams& hp = m->hparams();
    const uint32_t V = hp.n_vocab;
    const LatentCache::Config cfg{hp.n_layer, hp.kv_lora_rank, hp.n_rot, 16};
    ReferenceBackend ref;
    auto reference = [&](const std::vector<int32_t>& ids) {
        LatentCache cr(cfg);
        SeqCache s(cr);
        std::vector<float> lg;
        EXPECT_TRUE(ref.forward(*m, s, ids, LogitsMode::kLast, lg).ok());
        return lg;
    };
    auto expect_close = [&](const std::vector<float>& a, const std::vector<float>& b,
                            const char* what) {
        ASSERT_EQ(a.size(), b.size()) << what;
        double err = 0;
        for (size_t i = 0; i < a.size(); ++i) err = std::max(err, double(std::fabs(a[i] - b[i])));
        EXPECT_LT(err / rms_of(b.data(), b.size()), 2e-4) << what;
    };
    auto run = [&](CudaBackend& g, SeqCache& seq, const std::vector<int32_t>& ids) {
        std::vector<float> lg;
        const Status st = g.forward(*m, seq, ids, LogitsMode::kLast, lg);
        EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
        return lg;
    };
    uint32_t seed = 17;
    auto tokens = [&](int n) {
        std::vector<int32_t> v(static_cast<size_t>(n));
        for (int32_t& id : v) id = static_cast<int32_t>((seed = seed * 69069u + 1u) % V);
        return v;
    };
    auto join = [](std::vector<int32_t> a, const std::vector<int32_t>& b) {
        a.insert(a.end(), b.begin(), b.end());
        return a;
    };
    LatentCache cg(cfg);
    const std::vector<int32_t> A = tokens(40);
    SeqCache a(cg);
    expect_close(run(gpu, a, A), reference(A), "A");
    const DevicePageStats s0 = gpu.device_page_stats();
    EXPECT_EQ(s0.stores, 2u);  // pages 0 and 1 filled; page 2 holds 8 rows
    EXPECT_EQ(s0.pages, 2u);
    {
        // B starts from A's first 32 tokens (two pages) and goes on its own way.
        SeqCache b(cg);
        b.adopt(a.pages(), 32);
        const std::vector<int32_t> tail = tokens(6);
        const std::vector<int32_t> head(A.begin(), A.begin() + 32);
        expect_close(run(gpu, b, tail), reference(join(head, tail)), "B from device pages");
        const DevicePageStats s1 = gpu.device_page_stats();
        EXPECT_EQ(s1.hits - s0.hits, 2u);
        EXPECT_EQ(s1.uploads, s0.uploads);
    }
    // A is cut back to 20 tokens (inside page 1, now only A's) and page 1 is filled again
    // with other tokens: the same host page id, other rows. C then starts from A's two
    // full pages; a device copy of page 1's first contents would give other logits.
    a.truncate(20);
    const std::vector<int32_t> redo = tokens(12);
    const std::vector<int32_t> A2 = join(std::vector<int32_t>(A.begin(), A.begin() + 20), redo);
    expect_close(run(gpu, a, redo), reference(A2), "A rewritten");
    const DevicePageStats s2 = gpu.device_page_stats();
    EXPECT_EQ(s2.stores - s0.stores, 1u);  // page 1 again
    SeqCache c(cg);
    c.adopt(a.pages(), 32);
    const std::vector<int32_t> tail = tokens(4);
    expect_close(run(gpu, c, tail), reference(join(A2, tail)), "C after the rewrite");
    const DevicePageStats s3 = gpu.device_page_stats();
    EXPECT_EQ(s3.hits - s2.hits, 2u);
    EXPECT_EQ(s3.uploads, s2.uploads);

    // A budget of one page: the latest page stays.
    CudaOptions small = o;
    small.device_page_bytes = cg.page_bytes();
    CUDA_OR_SKIP(gpu1, small);
    LatentCache c1(cfg);
    SeqCache d(c1);
    expect_close(run(gpu1, d, A), reference(A), "A, one device page");
    const DevicePageStats t0 = gpu1.device_page_stats();
    EXPECT_EQ(t0.pages, 1u);
    EXPECT_EQ(t0.evictions, 1u);
    SeqCache e(c1);
    e.adopt(d.pages(), 32);
    const std::vector<int32_t> tail2 = tokens(3);
    expect_close(run(gpu1, e, tail2),
                 reference(join(std::vector<int32_t>(A.begin(), A.begin() + 32), tail2)),
                 "E, one device page");
    const DevicePageStats t1 = gpu1.device_page_stats();
    EXPECT_EQ(t1.hits - t0.hits, 1u);        // page 1, the one kept
    EXPECT_EQ(t1.uploads - t0.uploads, 1u);  // page 0, from the host
}

TEST(CudaBackend, DeviceSamplingPicksTheArgmaxAndStaysInTheNucleus) {
    CUDA_OR_SKIP(gpu, CudaOptions{});
    EXPECT_FALSE(gpu.sample_last(0.0f, 1.0f, 0.5).ok());  // nothing computed yet
    auto m = load_case({"tiny", GgmlType::kF16, true, true});
    ASSERT_TRUE(m);
    const HParams& hp = m->hparams();
    LatentCache c(LatentCache::Config{hp.n_layer, hp.kv_lora_rank, hp.n_rot, 16});
    Session s(*m, gpu, c);
    std::vector<int32_t> ids = {1, 7, 42, 5, 9, 11};
    auto p = s.prefill(ids, 0);
    ASSERT_TRUE(p.ok());
    const std::vector<float>& lg = p->logits;
    const int32_t V = static_cast<int32_t>(lg.size());
    int32_t want = 0;
    for (int32_t i = 1; i < V; ++i)
        if (lg[i] > lg[want]) want = i;
    auto greedy = gpu.sample_last(0.0f, 1.0f, 0.3);
    ASSERT_TRUE(greedy.ok());
    EXPECT_EQ(*greedy, want);
    auto tiny_p = gpu.sample_last(1.0f, 1e-6f, 0.9);
    ASSERT_TRUE(tiny_p.ok());
    EXPECT_EQ(*tiny_p, want);
    // top-p 0.5 at temperature 0.5: every draw is in the sorted nucleus.
    const float temp = 0.5f, top_p = 0.5f;
    std::vector<double> prob(V);
    double sum = 0;
    for (int32_t i = 0; i < V; ++i) sum += (prob[i] = std::exp((lg[i] - lg[want]) / temp));
    std::vector<int32_t> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return prob[a] > prob[b]; });
    std::vector<bool> in(V, false);
    double cum = 0;
    for (int32_t i : order) {
        in[i] = true;
        if ((cum += prob[i] / sum) >= top_p) break;
    }
    for (double u : {0.0, 0.1, 0.37, 0.5, 0.77, 0.999}) {
        auto t = gpu.sample_last(temp, top_p, u);
        ASSERT_TRUE(t.ok());
        ASSERT_GE(*t, 0);
        ASSERT_LT(*t, V);
        EXPECT_TRUE(in[*t]) << "u " << u << " token " << *t;
    }
}

#endif  // LATENT_TEST_GPU_BACKEND

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
                // subnormal, inf or NaN; the bits must still agree — but a NaN's sign and
                // payload after arithmetic are not fixed by IEEE 754, and a compiler may swap
                // a product's operands (clang does): any NaN matches any NaN).
                for (uint8_t& b : row) b = static_cast<uint8_t>(rng());
            } else {
                for (float& x : src) x = nd(rng);
                quantize_row(t, src.data(), row.data(), n);
            }
            dequantize_row(t, row.data(), want.data(), n);
            for (int64_t c = 0; c < n / kChunk; ++c)
                cuda::dequant_chunk(t, row.data(), c, &got[c * kChunk]);
            for (int64_t i = 0; i < n; ++i) {
                if (std::isnan(got[i]) && std::isnan(want[i])) continue;
                ASSERT_EQ(bits(got[i]), bits(want[i])) << traits(t).name << " i=" << i;
            }
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
