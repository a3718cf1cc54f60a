// The tile matmul of kernels.h (pack_tokens, matmul_packed) in plain C++: what the AMX
// table computes — weights and activations rounded to BF16 (nearest even), products
// summed in float — on any CPU, so that the forward pass's tile path (prompt chunks of
// 16+ tokens: weight matmuls, both prefill forms of MLA) runs and is checked against the
// reference on machines without AMX. For tests and comparisons: slow (no BF16
// instructions), never chosen by best_kernels().
//
// Packed layout (its own; within packed_bytes(n_act, n)): token t's n values as BF16 at
// dst + t * n * 2, padding tokens up to a multiple of 16 zero.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/cpu/kernels.h"
#include "engine/fp16.h"
#include "engine/quant.h"

namespace latent::engine::cpu {
namespace {

void pack_tokens(const uint8_t* const* acts, int64_t n_act, int64_t n, uint8_t* dst) {
    auto* out = reinterpret_cast<uint16_t*>(dst);
    const int64_t padded = (n_act + 15) / 16 * 16;
    for (int64_t t = 0; t < padded; ++t) {
        const auto* x = t < n_act ? reinterpret_cast<const float*>(acts[t]) : nullptr;
        for (int64_t i = 0; i < n; ++i) out[t * n + i] = x ? fp32_to_bf16(x[i]) : 0;
    }
}

void matmul_packed(GgmlType type, const uint8_t* w, uint64_t row_bytes, int64_t r0, int64_t r1,
                   const uint8_t* packed, int64_t n_act, int64_t n, float* y, int64_t y_stride) {
    const auto* b = reinterpret_cast<const uint16_t*>(packed);
    std::vector<float> row(static_cast<size_t>(n));
    for (int64_t r = r0; r < r1; ++r) {
        dequantize_row(type, w + static_cast<uint64_t>(r) * row_bytes, row.data(), n);
        for (float& v : row) v = bf16_to_fp32(fp32_to_bf16(v));
        for (int64_t t = 0; t < n_act; ++t) {
            const uint16_t* a = b + t * n;
            float sum = 0.0f;
            for (int64_t i = 0; i < n; ++i) sum += row[i] * bf16_to_fp32(a[i]);
            y[t * y_stride + r] = sum;
        }
    }
}

}  // namespace

const Kernels& with_portable_tiles(const Kernels& base) {
    struct Table {
        std::string name;
        Kernels kernels;
    };
    static std::mutex mu;
    static std::map<const Kernels*, std::unique_ptr<Table>> made;
    std::lock_guard<std::mutex> lock(mu);
    auto& t = made[&base];
    if (!t) {
        t = std::make_unique<Table>(Table{std::string(base.name) + "+tiles", base});
        t->kernels.name = t->name.c_str();
        t->kernels.pack_tokens = &pack_tokens;
        t->kernels.matmul_packed = &matmul_packed;
    }
    return t->kernels;
}

}  // namespace latent::engine::cpu
