// The CUDA forward pass (see backend.h). Order, as llama.cpp's CUDA files: device math
// (kernel_math.h, rope.h) -> __global__ kernels -> host launchers on the backend's stream ->
// the forward pass. Buffers are row-major F32 [tokens][width] unless a comment says otherwise;
// T = tokens in this chunk, N = tokens attended, K = experts per token.
#ifdef LATENT_CUDA_EMULATE
#include "engine/cuda/emulate.h"
#else
#include <cublas_v2.h>
#include <cuda_runtime.h>
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/cuda/backend.h"
#include "engine/cuda/kernel_math.h"
#include "engine/rope.h"

namespace latent::engine {

using cuda::ArgMax;
using cuda::RouterParams;
using cuda::SoftmaxState;

namespace {

// ---------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------

constexpr int kMaxTok = 8;        // tokens sharing one weight-row read in the fused kernels
constexpr int kRowsPerBlock = 4;  // one warp per output row
constexpr int kWarps = 4;         // heads per attention block (one warp each)
#ifdef LATENT_CUDA_EMULATE
// Small enough that the emulation test's short prompts cross chunk and split boundaries.
constexpr int64_t kMaxChunk = 16;
constexpr int64_t kSplitMin = 8;
#else
constexpr int64_t kMaxChunk = 256;  // tokens per pass through the layers (bounds scratch)
constexpr int64_t kSplitMin = 256;  // positions per decode-attention split, at least
#endif
constexpr int kMaxSplits = 32;    // sequence splits of decode attention
constexpr int kMaxLatent = 1024;  // kv_lora_rank the attention kernel holds in registers
constexpr int kMaxRot = 128;      // n_rot likewise
constexpr size_t kMaxSeqs = 64;   // device cache mirrors kept (least recently used go)
// Dequantized-weight scratch for cuBLAS, floats: bigger matrices go in row ranges (256 MiB).
constexpr int64_t kScratchFloats = int64_t{64} << 20;

// ---------------------------------------------------------------------------------------
// Errors and RAII
// ---------------------------------------------------------------------------------------

Error cuda_error(const char* what, cudaError_t e) {
    return Error{std::string("cuda: ") + what + ": " + cudaGetErrorName(e) + " (" +
                 cudaGetErrorString(e) + ")"};
}

const char* cublas_name(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_NOT_INITIALIZED:
            return "not initialized";
        case CUBLAS_STATUS_ALLOC_FAILED:
            return "alloc failed";
        case CUBLAS_STATUS_INVALID_VALUE:
            return "invalid value";
        case CUBLAS_STATUS_ARCH_MISMATCH:
            return "arch mismatch";
        case CUBLAS_STATUS_EXECUTION_FAILED:
            return "execution failed";
        case CUBLAS_STATUS_INTERNAL_ERROR:
            return "internal error";
        case CUBLAS_STATUS_NOT_SUPPORTED:
            return "not supported";
        default:
            return "error";
    }
}

#define CU_TRY(expr)                                             \
    do {                                                         \
        const cudaError_t err_ = (expr);                         \
        if (err_ != cudaSuccess) return cuda_error(#expr, err_); \
    } while (0)

#define CUBLAS_TRY(expr)                                                             \
    do {                                                                             \
        const cublasStatus_t st_ = (expr);                                           \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                            \
            return Error{std::string("cublas: ") + #expr + ": " + cublas_name(st_)}; \
    } while (0)

// Launches kernel(args...) on the stream and returns the launch error (a bad configuration
// shows up here, not at the next sync). The emulation build runs it on host threads.
template <class... P, class... A>
cudaError_t launch(void (*kernel)(P...), dim3 grid, dim3 block, cudaStream_t stream, A... args) {
#ifdef LATENT_CUDA_EMULATE
    (void)stream;
    emulate::run(kernel, grid, block, static_cast<P>(args)...);
    return cudaSuccess;
#else
    kernel<<<grid, block, 0, stream>>>(static_cast<P>(args)...);
    return cudaGetLastError();
#endif
}

// A device allocation. Owns its memory; freed in the destructor.
class DevBuf {
public:
    DevBuf() = default;
    DevBuf(const DevBuf&) = delete;
    DevBuf& operator=(const DevBuf&) = delete;
    DevBuf(DevBuf&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr, o.bytes_ = 0; }
    DevBuf& operator=(DevBuf&& o) noexcept {
        if (this != &o) {
            reset();
            p_ = o.p_, bytes_ = o.bytes_;
            o.p_ = nullptr, o.bytes_ = 0;
        }
        return *this;
    }
    ~DevBuf() { reset(); }

    Status alloc(size_t bytes) {
        reset();
        if (bytes == 0) return Status::success();
        if (const cudaError_t e = cudaMalloc(&p_, bytes); e != cudaSuccess) {
            p_ = nullptr;
            cudaGetLastError();  // an out-of-memory error is not sticky; clear it anyway
            return cuda_error("cudaMalloc", e);
        }
        bytes_ = bytes;
        return Status::success();
    }
    void reset() {
        if (p_) cudaFree(p_);
        p_ = nullptr;
        bytes_ = 0;
    }
    template <class T = void>
    T* get() const {
        return static_cast<T*>(p_);
    }
    size_t bytes() const { return bytes_; }

private:
    void* p_ = nullptr;
    size_t bytes_ = 0;
};

// An instantiated CUDA graph. Owns it; destroyed in the destructor.
class GraphExec {
public:
    GraphExec() = default;
    GraphExec(const GraphExec&) = delete;
    GraphExec& operator=(const GraphExec&) = delete;
    ~GraphExec() { reset(); }
    void reset() {
        if (exec) cudaGraphExecDestroy(exec);
        exec = nullptr;
    }
    explicit operator bool() const { return exec != nullptr; }
    cudaGraphExec_t exec = nullptr;
};

// ---------------------------------------------------------------------------------------
// Device math helpers
// ---------------------------------------------------------------------------------------

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// acc[t] += Σ_i w[i] · xs[t][i] over this lane's share of one weight row (n_in elements of
// `type`). Quantized rows: lane l dequantizes 32-element chunks l, l + 32, ...; float rows:
// elements l, l + 32, ... (coalesced).
__device__ __forceinline__ void lane_dot(GgmlType type, const uint8_t* row, int64_t n_in,
                                         const float* const* xs, int n_tok, int lane, float* acc) {
    if (cuda::is_float_type(type)) {
        for (int64_t i = lane; i < n_in; i += 32) {
            const float w = cuda::float_elem(type, row, i);
#pragma unroll
            for (int t = 0; t < kMaxTok; ++t)
                if (t < n_tok) acc[t] += w * xs[t][i];
        }
        return;
    }
    float wv[cuda::kChunk];
    const int64_t n_chunks = n_in / cuda::kChunk;
    for (int64_t c = lane; c < n_chunks; c += 32) {
        cuda::dequant_chunk(type, row, c, wv);
#pragma unroll
        for (int t = 0; t < kMaxTok; ++t) {
            if (t < n_tok) {
                const float* x = xs[t] + c * cuda::kChunk;
                float s = 0.0f;
#pragma unroll
                for (int j = 0; j < cuda::kChunk; ++j) s += wv[j] * x[j];
                acc[t] += s;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------

// One weight tensor on the device: n_mat matrices of n_out rows of n_in elements.
struct DTensor {
    const uint8_t* d = nullptr;
    GgmlType type = GgmlType::kF32;
    int64_t n_in = 0, n_out = 0, n_mat = 1;
    uint64_t row_bytes = 0, mat_bytes = 0;
    explicit operator bool() const { return d != nullptr; }
};

// y[b][t][r] = W[b or 0][r] · x[b][t] for t < n_tok (≤ kMaxTok): grid (rows / 4, batches).
struct MvArgs {
    DTensor w;
    bool per_batch_matrix;  // batch b uses matrix b (heads), else matrix 0
    int n_tok;
    const float* x;
    int64_t x_tok, x_batch;  // strides, floats
    float* y;
    int64_t y_tok, y_batch;
};

__global__ void mv_kernel(MvArgs a) {
    const int lane = threadIdx.x % 32;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
    const int64_t b = blockIdx.y;
    if (row >= a.w.n_out) return;  // whole warps leave; no block-wide sync below
    const uint8_t* wr = a.w.d + (a.per_batch_matrix ? b * a.w.mat_bytes : 0) + row * a.w.row_bytes;
    const float* xs[kMaxTok];
#pragma unroll
    for (int t = 0; t < kMaxTok; ++t) xs[t] = a.x + b * a.x_batch + (t < a.n_tok ? t : 0) * a.x_tok;
    float acc[kMaxTok] = {};
    lane_dot(a.w.type, wr, a.w.n_in, xs, a.n_tok, lane, acc);
#pragma unroll
    for (int t = 0; t < kMaxTok; ++t) {
        if (t < a.n_tok) {
            const float v = warp_sum(acc[t]);
            if (lane == 0) a.y[b * a.y_batch + t * a.y_tok + row] = v;
        }
    }
}

// Routed experts over tiles of (expert, up to kMaxTok rows of the expert-sorted list):
// grid (rows / 4, max tiles). Input row of sorted position p: x[perm[p] / x_div] when perm
// is set (gate/up read the token's normed state), else x[p] (down reads the sorted rows).
// Output row p of y.
struct MoeArgs {
    DTensor w;
    const int32_t* tile_expert;
    const int32_t* tile_first;
    const int32_t* tile_count;
    const int32_t* n_tiles;
    const int32_t* perm;
    int x_div;
    const float* x;
    int64_t x_stride;
    float* y;
    int64_t y_stride;
};

__global__ void moe_mv_kernel(MoeArgs a) {
    const int tile = blockIdx.y;
    if (tile >= *a.n_tiles) return;
    const int lane = threadIdx.x % 32;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
    if (row >= a.w.n_out) return;
    const int32_t e = a.tile_expert[tile], first = a.tile_first[tile], cnt = a.tile_count[tile];
    const uint8_t* wr = a.w.d + static_cast<int64_t>(e) * a.w.mat_bytes + row * a.w.row_bytes;
    const float* xs[kMaxTok];
#pragma unroll
    for (int t = 0; t < kMaxTok; ++t) {
        const int p = first + (t < cnt ? t : 0);
        const int64_t xr = a.perm ? a.perm[p] / a.x_div : p;
        xs[t] = a.x + xr * a.x_stride;
    }
    float acc[kMaxTok] = {};
    lane_dot(a.w.type, wr, a.w.n_in, xs, cnt, lane, acc);
#pragma unroll
    for (int t = 0; t < kMaxTok; ++t) {
        if (t < cnt) {
            const float v = warp_sum(acc[t]);
            if (lane == 0) a.y[static_cast<int64_t>(first + t) * a.y_stride + row] = v;
        }
    }
}

// out[b][r][:] = row r of matrix (batched ? b : 0), dequantized, for rows r0 .. r0 + n_rows
// of each of n_batch matrices: F32 [n_batch][n_rows][n_in]. Grid-stride over chunks.
__global__ void dequant_kernel(DTensor w, int64_t n_batch, int64_t r0, int64_t n_rows, float* out) {
    const bool flt = cuda::is_float_type(w.type);
    const int64_t per_row = flt ? w.n_in : w.n_in / cuda::kChunk;
    const int64_t total = n_batch * n_rows * per_row;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t g = i / per_row, k = i % per_row;  // g: output row in [b][r]
        const int64_t b = g / n_rows, r = g % n_rows;
        const uint8_t* row = w.d + b * w.mat_bytes + (r0 + r) * w.row_bytes;
        float* o = out + g * w.n_in;
        if (flt) {
            o[k] = cuda::float_elem(w.type, row, k);
        } else {
            float v[cuda::kChunk];
            cuda::dequant_chunk(w.type, row, k, v);
#pragma unroll
            for (int j = 0; j < cuda::kChunk; ++j) o[k * cuda::kChunk + j] = v[j];
        }
    }
}

// x[t] = embedding row tokens[t]: grid T.
__global__ void embed_kernel(DTensor w, const int32_t* tokens, float* x) {
    const int64_t t = blockIdx.x;
    const uint8_t* row = w.d + static_cast<int64_t>(tokens[t]) * w.row_bytes;
    float* o = x + t * w.n_in;
    if (cuda::is_float_type(w.type)) {
        for (int64_t i = threadIdx.x; i < w.n_in; i += blockDim.x)
            o[i] = cuda::float_elem(w.type, row, i);
    } else {
        float v[cuda::kChunk];
        for (int64_t c = threadIdx.x; c < w.n_in / cuda::kChunk; c += blockDim.x) {
            cuda::dequant_chunk(w.type, row, c, v);
            for (int j = 0; j < cuda::kChunk; ++j) o[c * cuda::kChunk + j] = v[j];
        }
    }
}

// Block-wide sum in double; every thread gets the total. blockDim.x == 256.
__device__ double block_sum(double v, double* sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    const double total = sh[0];
    __syncthreads();  // sh may be reused right after
    return total;
}

constexpr int kNormThreads = 256;

// y[row] = RMSNorm(x[row]) ⊙ w over n values: grid rows. y may equal x.
__global__ void rmsnorm_kernel(const float* x, int64_t x_stride, const float* w, float* y,
                               int64_t y_stride, int64_t n, float eps) {
    __shared__ double sh[kNormThreads];
    const float* xr = x + blockIdx.x * x_stride;
    float* yr = y + blockIdx.x * y_stride;
    double ss = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += static_cast<double>(xr[i]) * xr[i];
    const double scale = cuda::rms_scale(block_sum(ss, sh), n, eps);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        yr[i] = cuda::rms_apply(xr[i], scale, w[i]);
}

// For token t (grid T) at position step[0] + t (step: device memory, so a captured graph
// serves every decode step): the cache row of this layer gets RMSNorm(c_kv)
// and RoPE(k_pe) from kva [T][L + r]; q's rope part of every head is rotated in place.
__global__ void kv_rope_kernel(const float* kva, const float* kv_norm, float eps, RopeParams rp,
                               const int32_t* step, int64_t L, int64_t r, float* cache_rows,
                               int64_t row_w, float* q, int64_t H, int64_t n, int64_t qk) {
    __shared__ double sh[kNormThreads];
    const int64_t t = blockIdx.x;
    const int32_t pos = step[0] + static_cast<int32_t>(t);
    const float* src = kva + t * (L + r);
    float* row = cache_rows + static_cast<int64_t>(pos) * row_w;
    double ss = 0;
    for (int64_t c = threadIdx.x; c < L; c += blockDim.x)
        ss += static_cast<double>(src[c]) * src[c];
    const double scale = cuda::rms_scale(block_sum(ss, sh), L, eps);
    for (int64_t c = threadIdx.x; c < L; c += blockDim.x)
        row[c] = cuda::rms_apply(src[c], scale, kv_norm[c]);
    // Pairs: (H + 1) vectors of r / 2 pairs; vector H is k_pe.
    const int64_t pairs = r / 2;
    for (int64_t idx = threadIdx.x; idx < (H + 1) * pairs; idx += blockDim.x) {
        const int64_t h = idx / pairs, i = idx % pairs;
        const double th = rope_theta(rp, pos, static_cast<int32_t>(i));
        const double c = ::cos(th) * rp.magnitude, s = ::sin(th) * rp.magnitude;
        const float* in = h == H ? src + L : q + (t * H + h) * qk + n;
        float* out = h == H ? row + L : q + (t * H + h) * qk + n;
        const double x0 = in[2 * i], x1 = in[2 * i + 1];
        out[2 * i] = static_cast<float>(x0 * c - x1 * s);
        out[2 * i + 1] = static_cast<float>(x0 * s + x1 * c);
    }
}

// Absorbed MLA attention, one pass with an online softmax: grid (ceil(H / 4), T, splits),
// one warp per head. Token t attends positions [0, n_past + t] (n_past = step[0], device
// memory); split s covers [s·len, (s + 1)·len) of the N = n_past + T positions, len =
// ceil(N / splits). Partial results: acc F32 [T][H][S][L], ml F32 [T][H][S][2] (max, sum).
template <int NL>
__global__ void mla_attn_kernel(const float* q_abs, const float* q, const float* cache_rows,
                                int64_t row_w, int64_t H, int64_t L, int64_t r, int64_t n,
                                int64_t qk, const int32_t* step, float kq_scale, float* part_acc,
                                float* part_ml) {
    constexpr int NR = kMaxRot / 32;
    const int lane = threadIdx.x % 32;
    const int64_t h = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
    const int64_t t = blockIdx.y, sp = blockIdx.z, splits = gridDim.z;
    if (h >= H) return;
    const int64_t n_past = step[0], T = gridDim.y;
    const int64_t split_len = (n_past + T + splits - 1) / splits;
    const int64_t last = n_past + t;
    const int64_t j0 = sp * split_len;
    const int64_t j1 = j0 + split_len < last + 1 ? j0 + split_len : last + 1;
    float qa[NL], acc[NL], qp[NR];
    const float* qa_src = q_abs + (t * H + h) * L;
    const float* qp_src = q + (t * H + h) * qk + n;
#pragma unroll
    for (int i = 0; i < NL; ++i) {
        const int64_t c = lane + 32 * i;
        qa[i] = c < L ? qa_src[c] : 0.0f;
        acc[i] = 0.0f;
    }
#pragma unroll
    for (int i = 0; i < NR; ++i) {
        const int64_t d = lane + 32 * i;
        qp[i] = d < r ? qp_src[d] : 0.0f;
    }
    SoftmaxState st{-INFINITY, 0.0f};
    for (int64_t j = j0; j < j1; ++j) {
        const float* row = cache_rows + j * row_w;
        float s = 0.0f;
#pragma unroll
        for (int i = 0; i < NL; ++i) {
            const int64_t c = lane + 32 * i;
            if (c < L) s += qa[i] * row[c];
        }
#pragma unroll
        for (int i = 0; i < NR; ++i) {
            const int64_t d = lane + 32 * i;
            if (d < r) s += qp[i] * row[L + d];
        }
        s = warp_sum(s) * kq_scale;
        float p;
        const float f = cuda::softmax_add(st, s, &p);
#pragma unroll
        for (int i = 0; i < NL; ++i) {
            const int64_t c = lane + 32 * i;
            if (c < L) acc[i] = acc[i] * f + p * row[c];
        }
    }
    const int64_t slot = (t * H + h) * splits + sp;
#pragma unroll
    for (int i = 0; i < NL; ++i) {
        const int64_t c = lane + 32 * i;
        if (c < L) part_acc[slot * L + c] = acc[i];
    }
    if (lane == 0) {
        part_ml[slot * 2] = st.m;
        part_ml[slot * 2 + 1] = st.l;
    }
}

// o_lat[t][h] = merge of the splits: grid T·H.
__global__ void attn_merge_kernel(const float* part_acc, const float* part_ml, int64_t splits,
                                  int64_t L, float* o_lat) {
    const int64_t th = blockIdx.x;
    const float* ml = part_ml + th * splits * 2;
    float m_max = -INFINITY;
    for (int64_t s = 0; s < splits; ++s) m_max = fmaxf(m_max, ml[s * 2]);
    float l = 0.0f;
    for (int64_t s = 0; s < splits; ++s)
        l += cuda::softmax_merge_weight(ml[s * 2], m_max) * ml[s * 2 + 1];
    const float inv = 1.0f / l;  // l > 0: split 0 always holds position 0
    for (int64_t c = threadIdx.x; c < L; c += blockDim.x) {
        float o = 0.0f;
        for (int64_t s = 0; s < splits; ++s) {
            const float w = cuda::softmax_merge_weight(ml[s * 2], m_max);
            if (w != 0.0f) o += w * part_acc[(th * splits + s) * L + c];
        }
        o_lat[th * L + c] = o * inv;
    }
}

// x[i] += y[i].
__global__ void add_kernel(float* x, const float* y, int64_t n) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
        x[i] += y[i];
}

// g[i] = silu(g[i]) · u[i].
__global__ void swiglu_kernel(float* g, const float* u, int64_t n) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
        g[i] = cuda::swiglu(g[i], u[i]);
}

// One thread per token: sel / wts [T][K] from router logits [T][X].
__global__ void route_kernel(const float* logits, const float* bias, RouterParams rp, int64_t T,
                             int32_t* sel, float* wts) {
    const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= T) return;
    float p[cuda::kMaxExperts], s[cuda::kMaxExperts];
    cuda::route_token(rp, logits + t * rp.n_expert, bias, p, s, sel + t * rp.n_used,
                      wts + t * rp.n_used);
}

constexpr int kGroupThreads = 256;

// Groups the n_items (token, slot) pairs by expert, in item order within an expert (so the
// result does not depend on thread timing): perm[p] = item at sorted position p,
// inv[item] = p, and the tiles of up to kMaxTok positions of one expert. One block.
__global__ void group_kernel(const int32_t* sel, int32_t n_items, int32_t X, int32_t* perm,
                             int32_t* inv, int32_t* tile_expert, int32_t* tile_first,
                             int32_t* tile_count, int32_t* n_tiles) {
    __shared__ int32_t counts[cuda::kMaxExperts], offs[cuda::kMaxExperts];
    for (int32_t e = threadIdx.x; e < X; e += blockDim.x) {
        int32_t c = 0;
        for (int32_t i = 0; i < n_items; ++i) c += sel[i] == e;
        counts[e] = c;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int32_t off = 0, nt = 0;
        for (int32_t e = 0; e < X; ++e) {
            offs[e] = off;
            for (int32_t j = 0; j < counts[e]; j += kMaxTok) {
                tile_expert[nt] = e;
                tile_first[nt] = off + j;
                tile_count[nt] = min(kMaxTok, counts[e] - j);
                ++nt;
            }
            off += counts[e];
        }
        *n_tiles = nt;
    }
    __syncthreads();
    for (int32_t e = threadIdx.x; e < X; e += blockDim.x) {
        int32_t p = offs[e];
        for (int32_t i = 0; i < n_items; ++i)
            if (sel[i] == e) {
                perm[p] = i;
                inv[i] = p;
                ++p;
            }
    }
}

// x[t] += Σ_k wts[t][k] · out[inv[t·K + k]] (+ shared[t]), in slot order as the reference.
// Grid T.
__global__ void moe_combine_kernel(float* x, const float* out, const int32_t* inv, const float* wts,
                                   int64_t K, int64_t E, const float* shared) {
    const int64_t t = blockIdx.x;
    for (int64_t i = threadIdx.x; i < E; i += blockDim.x) {
        float y = 0.0f;
        for (int64_t k = 0; k < K; ++k)
            y += wts[t * K + k] * out[static_cast<int64_t>(inv[t * K + k]) * E + i];
        if (shared) y += shared[t * E + i];
        x[t * E + i] += y;
    }
}

constexpr int kSampleThreads = 1024;

// Block-wide reductions for the one-block sampling kernel.
__device__ ArgMax block_argmax(ArgMax v, ArgMax* sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            sh[threadIdx.x] = cuda::argmax_merge(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    const ArgMax r = sh[0];
    __syncthreads();
    return r;
}

__device__ double block_sum_d(double v, double* sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    const double r = sh[0];
    __syncthreads();
    return r;
}

// Greedy or top-p pick from one row of logits: one block of kSampleThreads. probs: scratch of
// V floats. Writes the token to *out.
__global__ void sample_kernel(const float* logits, int32_t V, float temperature, float top_p,
                              double u, float* probs, int32_t* out) {
    __shared__ ArgMax sh_a[kSampleThreads];
    __shared__ double sh_d[kSampleThreads];
    __shared__ double part[kSampleThreads];
    ArgMax best{0.0f, -1};
    for (int32_t i = threadIdx.x; i < V; i += blockDim.x)
        best = cuda::argmax_merge(best, ArgMax{logits[i], i});
    best = block_argmax(best, sh_a);
    if (temperature <= 0.0f || best.i < 0 || !isfinite(best.v)) {
        if (threadIdx.x == 0) *out = best.i < 0 ? 0 : best.i;
        return;
    }
    // Softmax of logits / temperature (NaN counts as −inf).
    double sum = 0;
    for (int32_t i = threadIdx.x; i < V; i += blockDim.x) {
        const float l = logits[i];
        const float p = l == l ? cuda::exp_f((l - best.v) / temperature) : 0.0f;
        probs[i] = p;
        sum += p;
    }
    sum = block_sum_d(sum, sh_d);
    for (int32_t i = threadIdx.x; i < V; i += blockDim.x)
        probs[i] = static_cast<float>(probs[i] / sum);
    __syncthreads();
    // The nucleus: every p > v plus the first n_tie (by id) with p == v (kernel_math.h).
    uint32_t lo = 0, hi = 0x7f800000u;
    auto mass_ge = [&](uint32_t key) {
        double m = 0;
        for (int32_t i = threadIdx.x; i < V; i += blockDim.x)
            if (cuda::prob_key(probs[i]) >= key) m += probs[i];
        return block_sum_d(m, sh_d);
    };
    const bool all = top_p >= 1.0f || mass_ge(0) < top_p;
    if (!all) {
        while (hi - lo > 1) {
            const uint32_t mid = lo + (hi - lo) / 2;
            if (mass_ge(mid) >= top_p)
                lo = mid;
            else
                hi = mid;
        }
    }
    const float v = bits_float(lo);
    const double mass_gt = all ? 0.0 : mass_ge(lo + 1);
    int32_t n_eq = 0;
    for (int32_t i = threadIdx.x; i < V; i += blockDim.x) n_eq += probs[i] == v;
    n_eq = static_cast<int32_t>(block_sum_d(n_eq, sh_d));
    const int32_t n_tie = all ? V : cuda::nucleus_ties(mass_gt, v, top_p, n_eq);
    // Each thread's contiguous id range: its nucleus mass and tie count, then a serial scan
    // by thread 0 over the kSampleThreads partials, then the owning thread walks its range.
    const int32_t per = (V + blockDim.x - 1) / blockDim.x;
    const int32_t b = threadIdx.x * per, e = min(V, b + per);
    double m = 0;
    int32_t ties = 0;
    for (int32_t i = b; i < e; ++i) {
        if (all || probs[i] > v)
            m += probs[i];
        else if (probs[i] == v)
            ++ties;
    }
    part[threadIdx.x] = m;
    sh_d[threadIdx.x] = ties;
    __syncthreads();
    __shared__ double target;
    __shared__ int32_t owner;
    __shared__ double before_owner;
    __shared__ int32_t ties_before_owner;
    if (threadIdx.x == 0) {
        // Nucleus mass: Σ part + n_tie·v (ties only inside the first n_tie by id).
        double total = 0;
        int32_t tcount = 0;
        for (int k = 0; k < static_cast<int>(blockDim.x); ++k) {
            const int32_t tk = static_cast<int32_t>(sh_d[k]);
            const int32_t take = max(0, min(tk, n_tie - tcount));
            total += part[k] + (all ? 0.0 : take * static_cast<double>(v));
            tcount += tk;
        }
        target = u * total;
        double acc = 0;
        tcount = 0;
        owner = static_cast<int>(blockDim.x) - 1;
        before_owner = 0;
        ties_before_owner = 0;
        for (int k = 0; k < static_cast<int>(blockDim.x); ++k) {
            const int32_t tk = static_cast<int32_t>(sh_d[k]);
            const int32_t take = max(0, min(tk, n_tie - tcount));
            const double mk = part[k] + (all ? 0.0 : take * static_cast<double>(v));
            if (acc + mk > target || k == static_cast<int>(blockDim.x) - 1) {
                owner = k;
                before_owner = acc;
                ties_before_owner = tcount;
                break;
            }
            acc += mk;
            tcount += tk;
        }
        *out = -1;
    }
    __syncthreads();
    if (static_cast<int>(threadIdx.x) == owner) {
        double acc = before_owner;
        int32_t tcount = ties_before_owner, last_in = -1;
        for (int32_t i = b; i < e; ++i) {
            bool in = all || probs[i] > v;
            if (!in && probs[i] == v) in = tcount++ < n_tie;
            if (!in) continue;
            last_in = i;
            acc += probs[i];
            if (acc > target) break;
        }
        *out = last_in >= 0 ? last_in : best.i;  // rounding left nothing: the mode
    }
}

// ---------------------------------------------------------------------------------------
// Host side
// ---------------------------------------------------------------------------------------

int blocks_for(int64_t n, int threads) {
    return static_cast<int>(std::min<int64_t>((n + threads - 1) / threads, 65535));
}

struct DLayer {
    DTensor attn_norm, attn_q, attn_q_a, attn_q_a_norm, attn_q_b, kv_a, kv_a_norm;
    DTensor k_b;  // H matrices of L rows × n (W_UK^T per head)
    DTensor v_b;  // H matrices of v rows × L
    DTensor attn_output, ffn_norm;
    DTensor ffn_gate, ffn_up, ffn_down;
    DTensor gate_inp, probs_b, gate_exps, up_exps, down_exps, gate_sh, up_sh, down_sh;
};

// A sequence's device mirror of its cache rows: F32 [n_layer][cap][L + r].
struct SeqMirror {
    DevBuf rows;
    int64_t cap = 0;
    int32_t n_synced = 0;  // positions [0, n_synced) equal the host's
    const LatentCache* cache = nullptr;
    std::vector<int32_t> pages;                 // the host page ids they came from
    std::vector<std::array<float, 3>> page_fp;  // a fingerprint of each page's first row
    uint64_t last_use = 0;
    int32_t direct_steps = 0;             // one-token steps run without a graph
    GraphExec graph;                      // the decode step, captured over these rows
    const void* graph_scratch = nullptr;  // ... and this chunk scratch
};

// A full cache page on the device, F32 [n_layer][page_tokens][L + r] like the host page.
struct DevicePage {
    uint64_t generation = 0;  // the host page's LatentCache::generation when copied
    DevBuf rows;
    uint64_t last_use = 0;
};

}  // namespace

struct CudaBackend::Impl {
    CudaOptions opt;
    std::string device_name;
    cudaStream_t stream = nullptr;
    cublasHandle_t blas = nullptr;
    uint64_t peak_bytes = 0;

    // Weights of one model.
    const Model* model = nullptr;
    const uint8_t* model_key = nullptr;  // token_embd's mapping address: a reloaded model differs
    std::string model_path;
    DevBuf weight_buf;
    DTensor token_embd, output_norm, output;
    std::vector<DLayer> layers;

    std::unordered_map<const SeqCache*, SeqMirror> seqs;
    uint64_t use_clock = 0;

    // The device tier of the cache pages, by (LatentCache::id, page).
    std::map<std::pair<uint64_t, int32_t>, DevicePage> dpages;
    std::vector<DevBuf> spare_pages;  // buffers of dropped pages, reused
    DevicePageStats dstats;
    bool dbudget_set = false;

    DevBuf scratch;                      // activations of one chunk
    DevBuf wscratch;                     // dequantized weights for cuBLAS
    DevBuf sample_buf;                   // probabilities [V] + the picked token
    const float* last_logits = nullptr;  // device row of the last token's logits
    int32_t last_vocab = 0;
    bool graphs_ok = true;  // false after a capture failed (graph_note says why)
    std::string graph_note;

    ~Impl() {
        seqs.clear();
        dpages.clear();
        spare_pages.clear();
        weight_buf.reset();
        scratch.reset();
        wscratch.reset();
        sample_buf.reset();
        if (blas) cublasDestroy(blas);
        if (stream) cudaStreamDestroy(stream);
    }

    void note_memory() {
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
            peak_bytes = std::max<uint64_t>(peak_bytes, total_b - free_b);
    }

    Status upload_weights(const Model& m);
    // The device copy of `page` when it holds the page's current generation, else null.
    DevicePage* device_page(const LatentCache& cache, int32_t page);
    // Copies the mirror's rows of page `i` (full on the host) into the device tier.
    Status keep_page(const SeqCache& seq, const SeqMirror& mir, int64_t i);
    Status sync_sequence(SeqCache& seq, int32_t n_past, int32_t n_new, SeqMirror*& out);
    Status copy_back(SeqCache& seq, SeqMirror& mir, int32_t n_past, int32_t n_new);
    Status linear(const DTensor& w, const float* x, int64_t x_tok, float* y, int64_t y_tok,
                  int64_t T, int64_t n_batch = 1, int64_t x_batch = 0, int64_t y_batch = 0);
    Status rmsnorm(const float* x, int64_t x_stride, const DTensor& w, float* y, int64_t y_stride,
                   int64_t rows, float eps);
    Status run_chunk(const Model& m, SeqMirror& mir, const int32_t* tokens_host, int64_t T,
                     int32_t pos0, bool all_logits, float* logits_host);

    // Records what enqueue() launches on the stream as a graph and instantiates it. On any
    // failure the capture is ended and discarded and nothing has run.
    template <class F>
    Status capture(F& enqueue, GraphExec& out) {
        CU_TRY(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        const Status s = enqueue();
        cudaGraph_t g = nullptr;
        const cudaError_t e = cudaStreamEndCapture(stream, &g);
        if (!s || e != cudaSuccess) {
            if (g) cudaGraphDestroy(g);
            cudaGetLastError();
            if (!s) return s;
            return cuda_error("cudaStreamEndCapture", e);
        }
        cudaGraphExec_t exec = nullptr;
        const cudaError_t ie = cudaGraphInstantiate(&exec, g, 0);
        cudaGraphDestroy(g);
        if (ie != cudaSuccess) {
            cudaGetLastError();
            return cuda_error("cudaGraphInstantiate", ie);
        }
        out.exec = exec;
        return Status::success();
    }
};

namespace {

// Layout of a tensor for the kernels (n_mat matrices of n_out rows).
DTensor describe(const Tensor& t, const uint8_t* dev) {
    DTensor d;
    d.d = dev;
    d.type = t.type;
    d.n_in = t.ne[0];
    d.n_out = t.ne[1];
    d.n_mat = t.ne[2] * t.ne[3];
    d.row_bytes = t.row_size();
    d.mat_bytes = d.row_bytes * static_cast<uint64_t>(t.ne[1]);
    return d;
}

uint64_t align256(uint64_t n) { return (n + 255) & ~uint64_t{255}; }

uint64_t tensor_bytes(const Tensor& t) { return t ? t.row_size() * t.rows() : 0; }

}  // namespace

Status CudaBackend::Impl::upload_weights(const Model& m) {
    const HParams& hp = m.hparams();
    const Weights& W = m.weights();
    if (model == &m && model_key == W.token_embd.data && model_path == m.path())
        return Status::success();
    model = nullptr;
    layers.clear();
    seqs.clear();  // mirrors belong to the old model's cache rows
    dpages.clear();
    spare_pages.clear();
    dbudget_set = false;  // measured again once the new weights are up
    weight_buf.reset();

    const int64_t H = hp.n_head, n = hp.n_embd_head_qk_nope, v = hp.n_embd_head_v,
                  L = hp.kv_lora_rank;
    if (L > kMaxLatent || hp.n_rot > kMaxRot || hp.n_rot % 2)
        return make_error("cuda: kv_lora_rank " + std::to_string(L) + " / n_rot " +
                          std::to_string(hp.n_rot) + " beyond this backend's limits (" +
                          std::to_string(kMaxLatent) + " / " + std::to_string(kMaxRot) + ")");
    if (hp.n_expert > static_cast<uint32_t>(cuda::kMaxExperts) ||
        hp.n_expert_groups > static_cast<uint32_t>(cuda::kMaxGroups) ||
        hp.n_expert_used > hp.n_expert)
        return make_error("cuda: " + std::to_string(hp.n_expert) + " experts / " +
                          std::to_string(hp.n_expert_groups) +
                          " groups beyond this backend's limits");

    // Every tensor the trunk reads, uploaded as stored; legacy attn_kv_b also gets a float
    // W_UK^T [H][L][n] made on the host (as CpuBackend does).
    std::vector<const Tensor*> list = {&W.token_embd, &W.output_norm, &W.output};
    for (uint32_t il = 0; il < hp.n_layer; ++il) {
        const LayerWeights& l = W.layers[il];
        for (const Tensor* t :
             {&l.attn_norm,      &l.attn_q,        &l.attn_q_a,       &l.attn_q_a_norm,
              &l.attn_q_b,       &l.attn_kv_a_mqa, &l.attn_kv_a_norm, &l.attn_kv_b,
              &l.attn_k_b,       &l.attn_v_b,      &l.attn_output,    &l.ffn_norm,
              &l.ffn_gate,       &l.ffn_up,        &l.ffn_down,       &l.ffn_gate_inp,
              &l.exp_probs_b,    &l.ffn_gate_exps, &l.ffn_up_exps,    &l.ffn_down_exps,
              &l.ffn_gate_shexp, &l.ffn_up_shexp,  &l.ffn_down_shexp})
            if (*t) {
                if (!cuda::supported_type(t->type))
                    return make_error("cuda: tensor " + t->name + " has type " +
                                      traits(t->type).name + ", which this backend cannot read");
                list.push_back(t);
            }
    }
    uint64_t total = 0;
    for (const Tensor* t : list) total += align256(tensor_bytes(*t));
    const uint64_t wuk_bytes = align256(static_cast<uint64_t>(H * L * n) * sizeof(float));
    for (uint32_t il = 0; il < hp.n_layer; ++il)
        if (!W.layers[il].attn_k_b) total += wuk_bytes;
    if (Status s = weight_buf.alloc(total); !s) return s;

    std::unordered_map<const Tensor*, const uint8_t*> where;
    uint64_t off = 0;
    auto* base = weight_buf.get<uint8_t>();
    for (const Tensor* t : list) {
        CU_TRY(cudaMemcpy(base + off, t->data, tensor_bytes(*t), cudaMemcpyHostToDevice));
        where[t] = base + off;
        off += align256(tensor_bytes(*t));
    }
    auto dev = [&](const Tensor& t) { return t ? describe(t, where.at(&t)) : DTensor{}; };

    token_embd = dev(W.token_embd);
    output_norm = dev(W.output_norm);
    output = dev(W.output);
    layers.resize(hp.n_layer);
    std::vector<float> wt, rowf;
    for (uint32_t il = 0; il < hp.n_layer; ++il) {
        const LayerWeights& l = W.layers[il];
        DLayer& d = layers[il];
        d.attn_norm = dev(l.attn_norm);
        d.attn_q = dev(l.attn_q);
        d.attn_q_a = dev(l.attn_q_a);
        d.attn_q_a_norm = dev(l.attn_q_a_norm);
        d.attn_q_b = dev(l.attn_q_b);
        d.kv_a = dev(l.attn_kv_a_mqa);
        d.kv_a_norm = dev(l.attn_kv_a_norm);
        if (l.attn_k_b) {
            d.k_b = dev(l.attn_k_b);  // [n, L, H]: H matrices of L rows of n
            d.v_b = dev(l.attn_v_b);  // [L, v, H]: H matrices of v rows of L
        } else {
            // attn_kv_b [L, H(n+v)]: row h(n+v)+d is k_nope d of head h, row h(n+v)+n+k is v k.
            wt.assign(static_cast<size_t>(H * L * n), 0.0f);
            rowf.resize(static_cast<size_t>(L));
            for (int64_t h = 0; h < H; ++h)
                for (int64_t dd = 0; dd < n; ++dd) {
                    dequantize_row(l.attn_kv_b.type, l.attn_kv_b.row(h * (n + v) + dd), rowf.data(),
                                   L);
                    for (int64_t c = 0; c < L; ++c) wt[(h * L + c) * n + dd] = rowf[c];
                }
            CU_TRY(cudaMemcpy(base + off, wt.data(), wt.size() * sizeof(float),
                              cudaMemcpyHostToDevice));
            d.k_b.d = base + off;
            d.k_b.type = GgmlType::kF32;
            d.k_b.n_in = n;
            d.k_b.n_out = L;
            d.k_b.n_mat = H;
            d.k_b.row_bytes = static_cast<uint64_t>(n) * sizeof(float);
            d.k_b.mat_bytes = d.k_b.row_bytes * static_cast<uint64_t>(L);
            off += wuk_bytes;
            const DTensor kvb = dev(l.attn_kv_b);
            d.v_b = kvb;
            d.v_b.d = kvb.d + static_cast<uint64_t>(n) * kvb.row_bytes;
            d.v_b.n_out = v;
            d.v_b.n_mat = H;
            d.v_b.mat_bytes = static_cast<uint64_t>(n + v) * kvb.row_bytes;
        }
        d.attn_output = dev(l.attn_output);
        d.ffn_norm = dev(l.ffn_norm);
        d.ffn_gate = dev(l.ffn_gate);
        d.ffn_up = dev(l.ffn_up);
        d.ffn_down = dev(l.ffn_down);
        d.gate_inp = dev(l.ffn_gate_inp);
        d.probs_b = dev(l.exp_probs_b);
        d.gate_exps = dev(l.ffn_gate_exps);
        d.up_exps = dev(l.ffn_up_exps);
        d.down_exps = dev(l.ffn_down_exps);
        d.gate_sh = dev(l.ffn_gate_shexp);
        d.up_sh = dev(l.ffn_up_shexp);
        d.down_sh = dev(l.ffn_down_shexp);
    }
    model = &m;
    model_key = W.token_embd.data;
    model_path = m.path();
    note_memory();
    return Status::success();
}

namespace {

std::array<float, 3> page_fingerprint(const SeqCache& seq, int32_t first_pos, uint32_t n_layer,
                                      uint32_t row_w) {
    const float* a = seq.row(first_pos, 0);
    const float* b = seq.row(first_pos, n_layer - 1);
    return {a[0], a[row_w - 1], b[row_w / 2]};
}

bool same_bits(const std::array<float, 3>& a, const std::array<float, 3>& b) {
    return std::memcmp(a.data(), b.data(), sizeof(a)) == 0;
}

}  // namespace

// Makes the mirror of `seq` hold its host rows [0, n_past) with room for n_new more. Rows the
// mirror already has are trusted when the host pages holding them are the same page ids with
// the same first-row fingerprint; from the first page that differs on, rows are uploaded.
Status CudaBackend::Impl::sync_sequence(SeqCache& seq, int32_t n_past, int32_t n_new,
                                        SeqMirror*& out) {
    const LatentCache::Config& cc = seq.cache().config();
    const int64_t n_layer = cc.n_layer, row_w = cc.kv_lora_rank + cc.n_rot, pt = cc.page_tokens;
    if (seqs.size() >= kMaxSeqs && !seqs.count(&seq)) {
        auto oldest = seqs.begin();
        for (auto it = seqs.begin(); it != seqs.end(); ++it)
            if (it->second.last_use < oldest->second.last_use) oldest = it;
        seqs.erase(oldest);
    }
    SeqMirror& mir = seqs[&seq];
    mir.last_use = ++use_clock;
    int32_t valid = std::min(mir.n_synced, n_past);
    if (mir.cache != &seq.cache()) valid = 0;
    const std::vector<int32_t>& pages = seq.pages();
    for (int64_t i = 0; i * pt < valid; ++i) {
        if (static_cast<size_t>(i) >= mir.pages.size() || mir.pages[i] != pages[i] ||
            !same_bits(mir.page_fp[i],
                       page_fingerprint(seq, static_cast<int32_t>(i * pt), cc.n_layer,
                                        static_cast<uint32_t>(row_w)))) {
            valid = static_cast<int32_t>(i * pt);
            break;
        }
    }
    const int64_t need = static_cast<int64_t>(n_past) + n_new;
    if (need > mir.cap) {
        const int64_t cap = std::max<int64_t>({need, 2 * mir.cap, 256});
        DevBuf nb;
        const size_t bytes = static_cast<size_t>(n_layer * cap * row_w) * sizeof(float);
        if (Status got = nb.alloc(bytes); !got) {
            if (dpages.empty() && spare_pages.empty()) return got;
            // Out of device memory: the device tier (a cache of the host's pages) gives
            // its memory back first.
            dstats.evictions += dpages.size();
            dpages.clear();
            spare_pages.clear();
            if (Status again = nb.alloc(bytes); !again) return again;
        }
        if (valid > 0)
            CU_TRY(cudaMemcpy2DAsync(nb.get(), cap * row_w * sizeof(float), mir.rows.get(),
                                     mir.cap * row_w * sizeof(float), valid * row_w * sizeof(float),
                                     n_layer, cudaMemcpyDeviceToDevice, stream));
        CU_TRY(cudaStreamSynchronize(stream));
        mir.graph.reset();  // it points at the old rows
        mir.rows = std::move(nb);
        mir.cap = cap;
        note_memory();
    }
    if (valid < n_past) {
        // Page by page from the first row the mirror lacks: from the device tier where it
        // holds the page, else from the host (runs of such pages in one copy).
        const size_t pitch = static_cast<size_t>(mir.cap * row_w) * sizeof(float);
        std::vector<std::pair<int64_t, int64_t>> runs;  // [from, to) to upload
        for (int64_t pos = valid; pos < n_past;) {
            const int64_t i = pos / pt, end = std::min<int64_t>((i + 1) * pt, n_past);
            if (DevicePage* dp = device_page(seq.cache(), pages[static_cast<size_t>(i)])) {
                CU_TRY(cudaMemcpy2DAsync(mir.rows.get<float>() + pos * row_w, pitch,
                                         dp->rows.get<float>() + (pos - i * pt) * row_w,
                                         static_cast<size_t>(pt * row_w) * sizeof(float),
                                         static_cast<size_t>((end - pos) * row_w) * sizeof(float),
                                         n_layer, cudaMemcpyDeviceToDevice, stream));
                ++dstats.hits;
            } else {
                if (!runs.empty() && runs.back().second == pos)
                    runs.back().second = end;
                else
                    runs.emplace_back(pos, end);
                ++dstats.uploads;
            }
            pos = end;
        }
        for (const auto& [from, to] : runs) {
            const int64_t cnt = to - from;
            std::vector<float> stage(static_cast<size_t>(n_layer * cnt * row_w));
            for (int64_t il = 0; il < n_layer; ++il)
                for (int64_t j = 0; j < cnt; ++j)
                    std::memcpy(&stage[(il * cnt + j) * row_w],
                                seq.row(static_cast<int32_t>(from + j), static_cast<uint32_t>(il)),
                                row_w * sizeof(float));
            CU_TRY(cudaMemcpy2DAsync(mir.rows.get<float>() + from * row_w, pitch, stage.data(),
                                     cnt * row_w * sizeof(float), cnt * row_w * sizeof(float),
                                     n_layer, cudaMemcpyHostToDevice, stream));
            CU_TRY(cudaStreamSynchronize(stream));  // `stage` is pageable and dies here
            // Full pages that came from the host (the RAM or disk tier) join the device tier.
            for (int64_t i = from / pt; (i + 1) * pt <= to; ++i)
                if (i * pt >= from)
                    if (Status st = keep_page(seq, mir, i); !st) return st;
        }
    }
    mir.n_synced = n_past;
    mir.cache = &seq.cache();
    out = &mir;
    return Status::success();
}

// Copies rows [n_past, n_past + n_new) of every layer back into the host SeqCache and records
// the pages the mirror now matches.
Status CudaBackend::Impl::copy_back(SeqCache& seq, SeqMirror& mir, int32_t n_past, int32_t n_new) {
    const LatentCache::Config& cc = seq.cache().config();
    const int64_t n_layer = cc.n_layer, row_w = cc.kv_lora_rank + cc.n_rot, pt = cc.page_tokens;
    std::vector<float> stage(static_cast<size_t>(n_layer * n_new * row_w));
    CU_TRY(cudaMemcpy2DAsync(stage.data(), n_new * row_w * sizeof(float),
                             mir.rows.get<float>() + static_cast<int64_t>(n_past) * row_w,
                             mir.cap * row_w * sizeof(float), n_new * row_w * sizeof(float),
                             n_layer, cudaMemcpyDeviceToHost, stream));
    CU_TRY(cudaStreamSynchronize(stream));
    for (int64_t il = 0; il < n_layer; ++il)
        for (int64_t j = 0; j < n_new; ++j)
            std::memcpy(seq.row(static_cast<int32_t>(n_past + j), static_cast<uint32_t>(il)),
                        &stage[(il * n_new + j) * row_w], row_w * sizeof(float));
    const int64_t n_total = static_cast<int64_t>(n_past) + n_new;
    const int64_t n_pages = (n_total + pt - 1) / pt;
    mir.pages.assign(seq.pages().begin(), seq.pages().begin() + n_pages);
    mir.page_fp.resize(static_cast<size_t>(n_pages));
    for (int64_t i = 0; i < n_pages; ++i)
        mir.page_fp[i] = page_fingerprint(seq, static_cast<int32_t>(i * pt), cc.n_layer,
                                          static_cast<uint32_t>(row_w));
    mir.n_synced = static_cast<int32_t>(n_total);
    // Pages this pass filled join the device tier.
    for (int64_t i = n_past / pt; (i + 1) * pt <= n_total; ++i)
        if (Status st = keep_page(seq, mir, i); !st) return st;
    return Status::success();
}

DevicePage* CudaBackend::Impl::device_page(const LatentCache& cache, int32_t page) {
    auto it = dpages.find({cache.id(), page});
    if (it == dpages.end() || it->second.generation != cache.generation(page)) return nullptr;
    it->second.last_use = ++use_clock;
    return &it->second;
}

Status CudaBackend::Impl::keep_page(const SeqCache& seq, const SeqMirror& mir, int64_t i) {
    const LatentCache& cache = seq.cache();
    const LatentCache::Config& cc = cache.config();
    const int64_t n_layer = cc.n_layer, row_w = cc.kv_lora_rank + cc.n_rot, pt = cc.page_tokens;
    const int32_t page = seq.pages()[static_cast<size_t>(i)];
    const uint64_t bytes = cache.page_bytes();
    if (!dbudget_set) {
        // A quarter of what is free once the weights are up (or the option's figure).
        size_t free_b = 0, total_b = 0;
        dstats.budget = opt.device_page_bytes;
        if (dstats.budget == 0)
            dstats.budget =
                cudaMemGetInfo(&free_b, &total_b) == cudaSuccess ? uint64_t{free_b} / 4 : 0;
        if (opt.device_page_bytes == CudaOptions::kNoDevicePages) dstats.budget = 0;
        dbudget_set = true;
    }
    if (bytes > dstats.budget) return Status::success();
    const std::pair<uint64_t, int32_t> key{cache.id(), page};
    auto it = dpages.find(key);
    if (it != dpages.end() && it->second.generation == cache.generation(page)) {
        it->second.last_use = ++use_clock;
        return Status::success();
    }
    if (it == dpages.end()) {
        // Room under the budget: the least recently used pages go.
        while (!dpages.empty() && (dpages.size() + 1) * bytes > dstats.budget) {
            auto lru = dpages.begin();
            for (auto j = dpages.begin(); j != dpages.end(); ++j)
                if (j->second.last_use < lru->second.last_use) lru = j;
            if (lru->second.rows.bytes() == bytes)
                spare_pages.push_back(std::move(lru->second.rows));
            dpages.erase(lru);
            ++dstats.evictions;
        }
        DevicePage dp;
        if (!spare_pages.empty()) {
            dp.rows = std::move(spare_pages.back());
            spare_pages.pop_back();
        } else if (Status st = dp.rows.alloc(bytes); !st) {
            cudaGetLastError();
            return Status::success();  // no room on the device: the host tier still has it
        }
        it = dpages.emplace(key, std::move(dp)).first;
        note_memory();
    }
    CU_TRY(cudaMemcpy2DAsync(it->second.rows.get<float>(),
                             static_cast<size_t>(pt * row_w) * sizeof(float),
                             mir.rows.get<float>() + i * pt * row_w,
                             static_cast<size_t>(mir.cap * row_w) * sizeof(float),
                             static_cast<size_t>(pt * row_w) * sizeof(float), n_layer,
                             cudaMemcpyDeviceToDevice, stream));
    it->second.generation = cache.generation(page);
    it->second.last_use = ++use_clock;
    ++dstats.stores;
    return Status::success();
}

// y[b][t] = W[b] · x[b][t] for t < T and n_batch matrices (heads), or matrix 0 when
// n_batch == 1. Strides in floats. Small T: the fused kernel; larger: cuBLAS on F32.
Status CudaBackend::Impl::linear(const DTensor& w, const float* x, int64_t x_tok, float* y,
                                 int64_t y_tok, int64_t T, int64_t n_batch, int64_t x_batch,
                                 int64_t y_batch) {
    if (T <= kMaxTok) {
        MvArgs a{w, n_batch > 1, static_cast<int>(T), x, x_tok, x_batch, y, y_tok, y_batch};
        const dim3 grid(static_cast<unsigned>((w.n_out + kRowsPerBlock - 1) / kRowsPerBlock),
                        static_cast<unsigned>(n_batch));
        CU_TRY(launch(mv_kernel, grid, kRowsPerBlock * 32, stream, a));
        return Status::success();
    }
    const cublasComputeType_t compute =
        opt.precise ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32;
    const float alpha = 1.0f, beta = 0.0f;
    // Column-major view: W^T (k = n_in) times x (n_in × T, ld x_tok) = y (n_out × T, ld y_tok).
    if (w.type == GgmlType::kF32 && w.mat_bytes % sizeof(float) == 0) {
        CUBLAS_TRY(cublasGemmStridedBatchedEx(
            blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(w.n_out), static_cast<int>(T),
            static_cast<int>(w.n_in), &alpha, w.d, CUDA_R_32F, static_cast<int>(w.n_in),
            static_cast<long long>(w.mat_bytes / sizeof(float)), x, CUDA_R_32F,
            static_cast<int>(x_tok), x_batch, &beta, y, CUDA_R_32F, static_cast<int>(y_tok),
            y_batch, static_cast<int>(n_batch), compute, CUBLAS_GEMM_DEFAULT));
        return Status::success();
    }
    // Rows per dequantized piece: whole matrices for batches, row ranges of one big matrix.
    const int64_t rows_fit = std::max<int64_t>(1, kScratchFloats / w.n_in);
    const int64_t piece_rows = n_batch > 1 ? w.n_out : std::min(w.n_out, rows_fit);
    const uint64_t need = static_cast<uint64_t>(n_batch * piece_rows * w.n_in) * sizeof(float);
    if (wscratch.bytes() < need) {
        CU_TRY(cudaStreamSynchronize(stream));  // the old scratch may still be read
        if (Status s = wscratch.alloc(need); !s) return s;
        note_memory();
    }
    for (int64_t r0 = 0; r0 < w.n_out; r0 += piece_rows) {
        const int64_t rows = std::min(piece_rows, w.n_out - r0);
        const int64_t work =
            n_batch * rows * (cuda::is_float_type(w.type) ? w.n_in : w.n_in / cuda::kChunk);
        CU_TRY(launch(dequant_kernel, blocks_for(work, 256), 256, stream, w, n_batch, r0, rows,
                      wscratch.get<float>()));
        CUBLAS_TRY(cublasGemmStridedBatchedEx(
            blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), static_cast<int>(T),
            static_cast<int>(w.n_in), &alpha, wscratch.get<float>(), CUDA_R_32F,
            static_cast<int>(w.n_in), static_cast<long long>(rows * w.n_in), x, CUDA_R_32F,
            static_cast<int>(x_tok), x_batch, &beta, y + r0, CUDA_R_32F, static_cast<int>(y_tok),
            y_batch, static_cast<int>(n_batch), compute, CUBLAS_GEMM_DEFAULT));
    }
    return Status::success();
}

Status CudaBackend::Impl::rmsnorm(const float* x, int64_t x_stride, const DTensor& w, float* y,
                                  int64_t y_stride, int64_t rows, float eps) {
    CU_TRY(launch(rmsnorm_kernel, static_cast<unsigned>(rows), kNormThreads, stream, x, x_stride,
                  reinterpret_cast<const float*>(w.d), y, y_stride, w.n_in, eps));
    return Status::success();
}

namespace {

// Bump allocator over the chunk scratch: offsets first (size pass), then pointers.
class Arena {
public:
    explicit Arena(uint8_t* base) : base_(base) {}
    template <class T>
    T* take(int64_t count) {
        const uint64_t at = off_;
        off_ = align256(off_ + static_cast<uint64_t>(std::max<int64_t>(count, 1)) * sizeof(T));
        return base_ ? reinterpret_cast<T*>(base_ + at) : nullptr;
    }
    uint64_t used() const { return off_; }

private:
    uint8_t* base_;
    uint64_t off_ = 0;
};

template <int NL>
cudaError_t launch_attn(dim3 grid, cudaStream_t s, const float* q_abs, const float* q,
                        const float* rows, int64_t row_w, int64_t H, int64_t L, int64_t r,
                        int64_t n, int64_t qk, const int32_t* step, float kq_scale, float* acc,
                        float* ml) {
    return launch(mla_attn_kernel<NL>, grid, kWarps * 32, s, q_abs, q, rows, row_w, H, L, r, n, qk,
                  step, kq_scale, acc, ml);
}

}  // namespace

// One chunk of T tokens at positions pos0.. through every layer; logits of the last token
// (or of all when all_logits) copied into logits_host.
Status CudaBackend::Impl::run_chunk(const Model& m, SeqMirror& mir, const int32_t* tokens_host,
                                    int64_t T, int32_t pos0, bool all_logits, float* logits_host) {
    const HParams& hp = m.hparams();
    const int64_t E = hp.n_embd, H = hp.n_head, n = hp.n_embd_head_qk_nope, r = hp.n_rot,
                  v = hp.n_embd_head_v, L = hp.kv_lora_rank, qk = n + r, V = hp.n_vocab,
                  qr = hp.q_lora_rank, X = hp.n_expert, K = hp.n_expert_used, row_w = L + r,
                  n_layer = hp.n_layer;
    const float eps = hp.rms_eps, kq_scale = hp.kq_scale();
    const RopeParams rope = rope_params(hp);
    // A one-token decode step runs as a CUDA graph (captured once per sequence mirror and
    // scratch; everything that changes between steps is read from device memory).
    // The first step of each sequence runs directly: it loads every kernel and sizes local
    // memory (route_kernel's stack), which a capture could not do.
    const bool use_graph = opt.graphs && graphs_ok && T == 1 && !all_logits && mir.direct_steps > 0;
    const int64_t N = pos0 + T;  // positions attended by the last token
    const int64_t splits = use_graph ? kMaxSplits
                           : T <= kMaxTok
                               ? std::clamp<int64_t>((N + kSplitMin - 1) / kSplitMin, 1, kMaxSplits)
                               : 1;
    int64_t ff = 0, fs = 0, f = 0;
    for (const DLayer& l : layers) {
        if (l.ffn_gate) ff = std::max(ff, l.ffn_gate.n_out);
        if (l.gate_sh) fs = std::max(fs, l.gate_sh.n_out);
        if (l.gate_exps) f = std::max(f, l.gate_exps.n_out);
    }
    const int64_t n_items = T * K;
    const int64_t max_tiles = n_items / kMaxTok + std::min(X, n_items) + 1;
    const int64_t n_logit_rows = all_logits ? T : 1;

    // Scratch layout (a size pass with a null base, then the real one).
    auto layout = [&](Arena& a) {
        struct P {
            int32_t* tokens;
            float *x, *xn, *q, *cq, *kva, *q_abs, *o_lat, *o, *attn, *g, *u, *router, *wts;
            float *ge, *ue, *oute, *gs, *us, *ys, *pacc, *pml, *logits;
            int32_t *sel, *perm, *inv, *tile_e, *tile_f, *tile_c, *n_tiles;
        } p;
        p.tokens = a.take<int32_t>(T + 1);  // the token ids, then pos0
        p.x = a.take<float>(T * E);
        p.xn = a.take<float>(T * E);
        p.q = a.take<float>(T * H * qk);
        p.cq = a.take<float>(T * qr);
        p.kva = a.take<float>(T * row_w);
        p.q_abs = a.take<float>(T * H * L);
        p.o_lat = a.take<float>(T * H * L);
        p.o = a.take<float>(T * H * v);
        p.attn = a.take<float>(T * E);
        p.g = a.take<float>(T * ff);
        p.u = a.take<float>(T * ff);
        p.router = a.take<float>(T * X);
        p.wts = a.take<float>(n_items);
        p.ge = a.take<float>(n_items * f);
        p.ue = a.take<float>(n_items * f);
        p.oute = a.take<float>(n_items * E);
        p.gs = a.take<float>(T * fs);
        p.us = a.take<float>(T * fs);
        p.ys = a.take<float>(T * E);
        p.pacc = a.take<float>(T * H * splits * L);
        p.pml = a.take<float>(T * H * splits * 2);
        p.logits = a.take<float>(n_logit_rows * V);
        p.sel = a.take<int32_t>(n_items);
        p.perm = a.take<int32_t>(n_items);
        p.inv = a.take<int32_t>(n_items);
        p.tile_e = a.take<int32_t>(max_tiles);
        p.tile_f = a.take<int32_t>(max_tiles);
        p.tile_c = a.take<int32_t>(max_tiles);
        p.n_tiles = a.take<int32_t>(1);
        return p;
    };
    Arena sizing(nullptr);
    layout(sizing);
    if (scratch.bytes() < sizing.used()) {
        CU_TRY(cudaStreamSynchronize(stream));
        if (Status s = scratch.alloc(sizing.used()); !s) return s;
        note_memory();
    }
    Arena arena(scratch.get<uint8_t>());
    const auto p = layout(arena);

    std::vector<int32_t> ids(tokens_host, tokens_host + T);
    ids.push_back(pos0);
    CU_TRY(cudaMemcpyAsync(p.tokens, ids.data(), (T + 1) * sizeof(int32_t), cudaMemcpyHostToDevice,
                           stream));
    const int32_t* step = p.tokens + T;

    RouterParams rp;
    rp.n_expert = static_cast<int32_t>(X);
    rp.n_used = static_cast<int32_t>(K);
    rp.n_groups = static_cast<int32_t>(hp.n_expert_groups);
    rp.n_group_used = static_cast<int32_t>(hp.n_group_used);
    rp.sigmoid = hp.gating == GatingFunc::kSigmoid;
    rp.norm = hp.expert_weights_norm;
    rp.scale = hp.expert_weights_scale;

    // Every kernel of the chunk, on the stream: no synchronisation, no copies (capturable).
    auto enqueue = [&]() -> Status {
        CU_TRY(
            launch(embed_kernel, static_cast<unsigned>(T), 256, stream, token_embd, p.tokens, p.x));
        for (int64_t il = 0; il < n_layer; ++il) {
            const DLayer& l = layers[il];
            float* cache_rows = mir.rows.get<float>() + il * mir.cap * row_w;

            // ---- attention (MLA, absorbed) ----
            if (Status s = rmsnorm(p.x, E, l.attn_norm, p.xn, E, T, eps); !s) return s;
            if (l.attn_q) {
                if (Status s = linear(l.attn_q, p.xn, E, p.q, H * qk, T); !s) return s;
            } else {
                if (Status s = linear(l.attn_q_a, p.xn, E, p.cq, qr, T); !s) return s;
                if (Status s = rmsnorm(p.cq, qr, l.attn_q_a_norm, p.cq, qr, T, eps); !s) return s;
                if (Status s = linear(l.attn_q_b, p.cq, qr, p.q, H * qk, T); !s) return s;
            }
            if (Status s = linear(l.kv_a, p.xn, E, p.kva, row_w, T); !s) return s;
            CU_TRY(launch(kv_rope_kernel, static_cast<unsigned>(T), kNormThreads, stream, p.kva,
                          reinterpret_cast<const float*>(l.kv_a_norm.d), eps, rope, step, L, r,
                          cache_rows, row_w, p.q, H, n, qk));
            // q_abs[t][h] = W_UK[h]^T q_nope[t][h] (L values per head).
            if (Status s = linear(l.k_b, p.q, H * qk, p.q_abs, H * L, T, H, qk, L); !s) return s;

            const dim3 agrid(static_cast<unsigned>((H + kWarps - 1) / kWarps),
                             static_cast<unsigned>(T), static_cast<unsigned>(splits));
            const int64_t nl = (L + 31) / 32;
            auto attn = nl <= 1    ? launch_attn<1>
                        : nl <= 2  ? launch_attn<2>
                        : nl <= 4  ? launch_attn<4>
                        : nl <= 8  ? launch_attn<8>
                        : nl <= 16 ? launch_attn<16>
                                   : launch_attn<32>;
            CU_TRY(attn(agrid, stream, p.q_abs, p.q, cache_rows, row_w, H, L, r, n, qk, step,
                        kq_scale, p.pacc, p.pml));
            CU_TRY(launch(attn_merge_kernel, static_cast<unsigned>(T * H), 128, stream, p.pacc,
                          p.pml, splits, L, p.o_lat));
            // o[t][h] = W_UV[h] o_lat[t][h] (v values per head).
            if (Status s = linear(l.v_b, p.o_lat, H * L, p.o, H * v, T, H, L, v); !s) return s;
            if (Status s = linear(l.attn_output, p.o, H * v, p.attn, E, T); !s) return s;
            CU_TRY(launch(add_kernel, blocks_for(T * E, 256), 256, stream, p.x, p.attn, T * E));

            // ---- FFN ----
            if (Status s = rmsnorm(p.x, E, l.ffn_norm, p.xn, E, T, eps); !s) return s;
            if (!l.gate_inp) {
                const int64_t w = l.ffn_gate.n_out;
                if (Status s = linear(l.ffn_gate, p.xn, E, p.g, w, T); !s) return s;
                if (Status s = linear(l.ffn_up, p.xn, E, p.u, w, T); !s) return s;
                CU_TRY(launch(swiglu_kernel, blocks_for(T * w, 256), 256, stream, p.g, p.u, T * w));
                if (Status s = linear(l.ffn_down, p.g, w, p.attn, E, T); !s) return s;
                CU_TRY(launch(add_kernel, blocks_for(T * E, 256), 256, stream, p.x, p.attn, T * E));
                continue;
            }
            if (Status s = linear(l.gate_inp, p.xn, E, p.router, X, T); !s) return s;
            CU_TRY(launch(route_kernel, blocks_for(T, 64), 64, stream, p.router,
                          l.probs_b ? reinterpret_cast<const float*>(l.probs_b.d) : nullptr, rp, T,
                          p.sel, p.wts));
            CU_TRY(launch(group_kernel, 1, kGroupThreads, stream, p.sel,
                          static_cast<int32_t>(n_items), static_cast<int32_t>(X), p.perm, p.inv,
                          p.tile_e, p.tile_f, p.tile_c, p.n_tiles));
            const int64_t fe = l.gate_exps.n_out;
            auto moe = [&](const DTensor& w, const int32_t* perm, int x_div, const float* x,
                           int64_t x_stride, float* y, int64_t y_stride) -> Status {
                MoeArgs a{w,     p.tile_e, p.tile_f, p.tile_c, p.n_tiles, perm,
                          x_div, x,        x_stride, y,        y_stride};
                const dim3 grid(
                    static_cast<unsigned>((w.n_out + kRowsPerBlock - 1) / kRowsPerBlock),
                    static_cast<unsigned>(max_tiles));
                CU_TRY(launch(moe_mv_kernel, grid, kRowsPerBlock * 32, stream, a));
                return Status::success();
            };
            if (Status s = moe(l.gate_exps, p.perm, static_cast<int>(K), p.xn, E, p.ge, fe); !s)
                return s;
            if (Status s = moe(l.up_exps, p.perm, static_cast<int>(K), p.xn, E, p.ue, fe); !s)
                return s;
            CU_TRY(launch(swiglu_kernel, blocks_for(n_items * fe, 256), 256, stream, p.ge, p.ue,
                          n_items * fe));
            if (Status s = moe(l.down_exps, nullptr, 1, p.ge, fe, p.oute, E); !s) return s;
            const float* shared = nullptr;
            if (l.gate_sh) {
                const int64_t w = l.gate_sh.n_out;
                if (Status s = linear(l.gate_sh, p.xn, E, p.gs, w, T); !s) return s;
                if (Status s = linear(l.up_sh, p.xn, E, p.us, w, T); !s) return s;
                CU_TRY(
                    launch(swiglu_kernel, blocks_for(T * w, 256), 256, stream, p.gs, p.us, T * w));
                if (Status s = linear(l.down_sh, p.gs, w, p.ys, E, T); !s) return s;
                shared = p.ys;
            }
            CU_TRY(launch(moe_combine_kernel, static_cast<unsigned>(T), 256, stream, p.x, p.oute,
                          p.inv, p.wts, K, E, shared));
        }

        // logits = output · RMSNorm(x) for the last row or all rows.
        const int64_t first = all_logits ? 0 : T - 1;
        if (Status s = rmsnorm(p.x + first * E, E, output_norm, p.xn, E, n_logit_rows, eps); !s)
            return s;
        return linear(output, p.xn, E, p.logits, V, n_logit_rows);
    };

    if (!use_graph) {
        if (Status s = enqueue(); !s) return s;
        if (T == 1) ++mir.direct_steps;
    } else {
        if (!mir.graph || mir.graph_scratch != scratch.get()) {
            mir.graph.reset();
            if (Status s = capture(enqueue, mir.graph); !s) {
                // Capture is an optimisation: say why once, then run every step directly.
                graphs_ok = false;
                graph_note = s.error().message;
                if (Status s2 = enqueue(); !s2) return s2;
            } else {
                mir.graph_scratch = scratch.get();
            }
        }
        if (mir.graph) CU_TRY(cudaGraphLaunch(mir.graph.exec, stream));
    }
    CU_TRY(cudaMemcpyAsync(logits_host, p.logits, n_logit_rows * V * sizeof(float),
                           cudaMemcpyDeviceToHost, stream));
    CU_TRY(cudaStreamSynchronize(stream));
    last_logits = p.logits + (n_logit_rows - 1) * V;
    last_vocab = static_cast<int32_t>(V);
    return Status::success();
}

CudaBackend::CudaBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaBackend::~CudaBackend() = default;

Expected<std::unique_ptr<CudaBackend>> CudaBackend::create(const CudaOptions& options) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        cudaGetLastError();  // clear the sticky error
        return cuda_error("no usable device", e);
    }
    if (options.device < 0 || options.device >= count)
        return make_error("cuda: device " + std::to_string(options.device) + " not present (" +
                          std::to_string(count) + " devices)");
    auto impl = std::make_unique<Impl>();
    impl->opt = options;
    CU_TRY(cudaSetDevice(options.device));
    cudaDeviceProp prop{};
    CU_TRY(cudaGetDeviceProperties(&prop, options.device));
    impl->device_name = std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
                        std::to_string(prop.minor) + ", " +
                        std::to_string(prop.totalGlobalMem >> 30) + " GiB)";
    CU_TRY(cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking));
    CUBLAS_TRY(cublasCreate(&impl->blas));
    CUBLAS_TRY(cublasSetStream(impl->blas, impl->stream));
    // The FP32 path must not silently use TF32: the math mode follows opt.precise.
    CUBLAS_TRY(cublasSetMathMode(
        impl->blas, options.precise ? CUBLAS_PEDANTIC_MATH : CUBLAS_TF32_TENSOR_OP_MATH));
    return std::unique_ptr<CudaBackend>(new CudaBackend(std::move(impl)));
}

std::string CudaBackend::device_name() const { return impl_->device_name; }
uint64_t CudaBackend::peak_device_bytes() const { return impl_->peak_bytes; }
std::string CudaBackend::graph_note() const { return impl_->graph_note; }
DevicePageStats CudaBackend::device_page_stats() const {
    DevicePageStats s = impl_->dstats;
    // Held now: derived from the pages themselves (all of one model's page size).
    s.pages = impl_->dpages.size();
    s.bytes = s.pages == 0 ? 0 : s.pages * impl_->dpages.begin()->second.rows.bytes();
    return s;
}

Status CudaBackend::forward(const Model& model, SeqCache& seq, std::span<const int32_t> tokens,
                            LogitsMode mode, std::vector<float>& logits) {
    Impl& im = *impl_;
    const HParams& hp = model.hparams();
    if (Status s = check_tokens(hp, tokens); !s) return s;
    const LatentCache::Config& cc = seq.cache().config();
    if (cc.n_layer != hp.n_layer || cc.kv_lora_rank != hp.kv_lora_rank || cc.n_rot != hp.n_rot)
        return make_error("cuda: the latent cache's shape does not match the model");
    CU_TRY(cudaSetDevice(im.opt.device));
    if (Status s = im.upload_weights(model); !s) return s;
    const int32_t n_past = seq.n_tokens();
    const int64_t T = static_cast<int64_t>(tokens.size());
    if (Status s = seq.reserve(static_cast<int32_t>(T)); !s) return s;
    SeqMirror* mir = nullptr;
    if (Status s = im.sync_sequence(seq, n_past, static_cast<int32_t>(T), mir); !s) {
        im.seqs.erase(&seq);
        return s;
    }
    const bool all = mode == LogitsMode::kAll;
    const int64_t V = hp.n_vocab;
    logits.resize(static_cast<size_t>((all ? T : 1) * V));
    for (int64_t c0 = 0; c0 < T; c0 += kMaxChunk) {
        const int64_t cn = std::min(kMaxChunk, T - c0);
        const bool last = c0 + cn == T;
        if (!all && !last) {
            // Only the last chunk's last logits are wanted; earlier chunks still compute one
            // row (cheap), written to a throwaway buffer.
            std::vector<float> dummy(static_cast<size_t>(V));
            if (Status s = im.run_chunk(model, *mir, tokens.data() + c0, cn,
                                        n_past + static_cast<int32_t>(c0), false, dummy.data());
                !s) {
                im.seqs.erase(&seq);
                return s;
            }
            continue;
        }
        float* dst = all ? logits.data() + c0 * V : logits.data();
        if (Status s = im.run_chunk(model, *mir, tokens.data() + c0, cn,
                                    n_past + static_cast<int32_t>(c0), all, dst);
            !s) {
            im.seqs.erase(&seq);
            return s;
        }
    }
    if (Status s = im.copy_back(seq, *mir, n_past, static_cast<int32_t>(T)); !s) {
        im.seqs.erase(&seq);
        return s;
    }
    seq.commit(static_cast<int32_t>(T));
    return Status::success();
}

Expected<int32_t> CudaBackend::sample_last(float temperature, float top_p, double u) {
    Impl& im = *impl_;
    if (!im.last_logits) return make_error("cuda: sample_last before any forward pass");
    if (const cudaError_t e = cudaSetDevice(im.opt.device); e != cudaSuccess)
        return cuda_error("cudaSetDevice", e);
    const uint64_t need = align256(static_cast<uint64_t>(im.last_vocab) * sizeof(float)) + 256;
    if (im.sample_buf.bytes() < need)
        if (Status s = im.sample_buf.alloc(need); !s) return s.error();
    float* probs = im.sample_buf.get<float>();
    auto* out = reinterpret_cast<int32_t*>(im.sample_buf.get<uint8_t>() +
                                           align256(static_cast<uint64_t>(im.last_vocab) * 4));
    u = std::clamp(u, 0.0, 1.0);
    if (const cudaError_t e = launch(sample_kernel, 1, kSampleThreads, im.stream, im.last_logits,
                                     im.last_vocab, temperature, top_p, u, probs, out);
        e != cudaSuccess)
        return cuda_error("sample_kernel", e);
    int32_t token = 0;
    if (const cudaError_t e =
            cudaMemcpyAsync(&token, out, sizeof token, cudaMemcpyDeviceToHost, im.stream);
        e != cudaSuccess)
        return cuda_error("cudaMemcpyAsync", e);
    if (const cudaError_t e = cudaStreamSynchronize(im.stream); e != cudaSuccess)
        return cuda_error("cudaStreamSynchronize", e);
    return token;
}

}  // namespace latent::engine
