// GgufWriter: writes a GGUF v3 file as a stream — metadata and tensor infos first,
// then each tensor's bytes in declaration order — so a 30 GB model is written without
// ever holding more than the row the caller is producing. Offsets follow llama.cpp's
// rule: offset[i] = sum of the previous tensors' sizes, each padded to the alignment.
// Not a reader; see gguf.h.
//
// Thread safety: none; one writer per file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/expected.h"
#include "engine/gguf.h"
#include "engine/quant.h"

namespace latent::engine {

class GgufWriter {
public:
    GgufWriter() = default;
    ~GgufWriter();
    GgufWriter(const GgufWriter&) = delete;
    GgufWriter& operator=(const GgufWriter&) = delete;

    // Metadata, written in the order added.
    void set_u32(const std::string& key, uint32_t v);
    void set_i32(const std::string& key, int32_t v);
    void set_f32(const std::string& key, float v);
    void set_bool(const std::string& key, bool v);
    void set_string(const std::string& key, const std::string& v);
    void set_string_array(const std::string& key, const std::vector<std::string>& v);
    void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
    void set_value(const std::string& key, const GgufValue& v);  // any value, arrays too

    // Declares a tensor; ne[0] is the contiguous row (ggml order).
    void add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type);

    // Writes header, metadata and tensor infos to `path` (a temporary name beside it
    // until finish(), so a crash never leaves a half-written file under the real name).
    Status begin(const std::string& path);
    // Appends bytes to the current tensor; a tensor is complete when its size is reached.
    Status write(const void* data, uint64_t n_bytes);
    // Checks every tensor was written in full, flushes, renames into place.
    Status finish();

    uint64_t total_bytes() const { return total_; }

private:
    struct Tensor {
        std::string name;
        std::vector<int64_t> ne;
        GgmlType type;
        uint64_t n_bytes;
        uint64_t offset;
    };
    Status write_raw(const void* data, uint64_t n);
    Status pad_to_alignment(uint64_t written_in_section);

    std::vector<std::pair<std::string, GgufValue>> kv_;
    std::vector<Tensor> tensors_;
    uint32_t alignment_ = 32;
    std::FILE* out_ = nullptr;
    std::string path_, tmp_path_;
    size_t current_ = 0;         // tensor being written
    uint64_t current_done_ = 0;  // bytes of it written so far
    uint64_t total_ = 0;
};

}  // namespace latent::engine
