// ggml tensor element types: their block layouts, and plain (reference) conversion
// between them and float. These are the formats GGUF files store (ENGINE_SPEC §5).
// Not the fast kernels: engine/cpu and engine/cuda have those, tested against these.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace latent::engine {

enum class GgmlType : uint32_t {
    kF32 = 0,
    kF16 = 1,
    kQ4_0 = 2,
    kQ4_1 = 3,
    kQ5_0 = 6,
    kQ5_1 = 7,
    kQ8_0 = 8,
    kQ8_1 = 9,
    kQ2_K = 10,
    kQ3_K = 11,
    kQ4_K = 12,
    kQ5_K = 13,
    kQ6_K = 14,
    kQ8_K = 15,
    kBF16 = 30,
};

struct TypeTraits {
    const char* name;    // ggml's spelling: "f32", "q4_K", ...
    int64_t block_size;  // elements per block (1 for float types)
    int64_t type_size;   // bytes per block
    bool computable;     // Latent can dequantize / compute with it (the 8 of ENGINE_SPEC)
};

// Traits of a raw type id as read from a file; nullptr for an id ggml does not define.
const TypeTraits* type_traits(uint32_t type_id);
inline const TypeTraits& traits(GgmlType t) { return *type_traits(static_cast<uint32_t>(t)); }

// "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k" (case-insensitive) -> type.
std::optional<GgmlType> parse_type_name(std::string_view name);

// Bytes of a row of n elements; n must be a multiple of the block size.
inline uint64_t row_bytes(GgmlType t, int64_t n) {
    const TypeTraits& tr = traits(t);
    return static_cast<uint64_t>(n / tr.block_size) * static_cast<uint64_t>(tr.type_size);
}

// dst[0..n) = the values of the n elements at src. n % block_size == 0; type computable or
// Q8_K (activation rows Latent makes itself, readable back for tests). Anything else is a
// programmer error and aborts.
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

// Writes n elements of src into dst in the given format (row_bytes(type, n) bytes),
// rounding to nearest the way ggml's reference quantizers do. n % block_size == 0.
// Q4_0 / Q8_0 are bit-identical to ggml's quantize_row_*_ref. The K-quants use Latent's own
// deterministic search (ggml's make_qkx2_quants / make_qx_quants idea, not bit-identical).
// Q8_K is accepted too and means quantize_row_q8_k. src and dst may have any alignment.
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);

// Q8_K activation quantization, as ggml does it for the CPU K-quant dots (ENGINE_SPEC §5): per
// 256 elements, v = the element of largest |x| (sign kept), iscale = −127/v,
// q = min(127, nearest_int(iscale·x)), d = 1/iscale, bsums = sums of each 16 q's; an all-zero
// block gets d = 0. dst: n/256 BlockQ8_K (engine/quant_blocks.h). n % 256 == 0.
void quantize_row_q8_k(const float* x, void* dst, int64_t n);

}  // namespace latent::engine
