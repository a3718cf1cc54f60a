// GgufFile: a read-only, memory-mapped GGUF file (format v2/v3, ENGINE_SPEC §2), every
// count, offset, string length, alignment and tensor size validated against the file.
// A truncated or hostile file is an Error, never a crash or an out-of-bounds read.
// It does not interpret the model: model.h maps names and keys to DeepSeek's weights.
//
// Layout read (little-endian): "GGUF" u32 version, i64 n_tensors, i64 n_kv,
//   n_kv x { string key, i32 type, value }, n_tensors x { string name, u32 n_dims,
//   i64 ne[n_dims], i32 ggml_type, u64 offset }, zero padding to `alignment`, data.
//   string = u64 length + bytes. Offsets are relative to the (aligned) data section.
//
// Thread safety: immutable after open(); any number of threads may read it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/expected.h"
#include "engine/quant.h"

namespace latent::engine {

enum class GgufType : int32_t {
    kUint8 = 0,
    kInt8 = 1,
    kUint16 = 2,
    kInt16 = 3,
    kUint32 = 4,
    kInt32 = 5,
    kFloat32 = 6,
    kBool = 7,
    kString = 8,
    kArray = 9,
    kUint64 = 10,
    kInt64 = 11,
    kFloat64 = 12,
};
const char* gguf_type_name(GgufType t);

// One metadata value. Scalars live in the field of their kind; arrays keep their
// element type and fill exactly one of the arr_* vectors.
struct GgufValue {
    GgufType type = GgufType::kUint32;
    uint64_t u = 0;  // unsigned integers and bool
    int64_t i = 0;   // signed integers
    double f = 0;    // float32 / float64
    std::string s;   // string
    GgufType arr_type = GgufType::kUint8;
    std::vector<std::string> arr_str;
    std::vector<int64_t> arr_int;  // every integer / bool element type
    std::vector<double> arr_float;

    bool is_integer() const;
    bool is_array() const { return type == GgufType::kArray; }
    size_t array_size() const;
};

struct GgufTensorInfo {
    std::string name;
    uint32_t n_dims = 0;
    int64_t ne[4] = {1, 1, 1, 1};  // ne[0] is the contiguous row
    GgmlType type = GgmlType::kF32;
    uint64_t offset = 0;  // relative to the data section
    uint64_t n_bytes = 0;
    const uint8_t* data = nullptr;  // into the mapping

    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    std::string shape_string() const;  // "[32, 129280]"
};

// A read-only memory map of a whole file (RAII).
class MappedFile {
public:
    static Expected<std::shared_ptr<MappedFile>> open(const std::string& path);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }
    uint64_t size() const { return size_; }
    const std::string& path() const { return path_; }

private:
    MappedFile() = default;
    const uint8_t* data_ = nullptr;
    uint64_t size_ = 0;
    std::string path_;
};

class GgufFile {
public:
    // Opens and validates `path`. Errors name the file and the problem.
    static Expected<std::unique_ptr<GgufFile>> open(const std::string& path);
    // Parses a buffer the caller keeps alive (tests and the fuzzer); borrows it.
    static Expected<std::unique_ptr<GgufFile>> parse(const uint8_t* data, uint64_t size,
                                                     std::string name = "<memory>");

    uint32_t version() const { return version_; }
    uint32_t alignment() const { return alignment_; }
    const std::string& path() const { return path_; }
    uint64_t file_size() const { return size_; }
    uint64_t data_offset() const { return data_offset_; }

    const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
    const GgufValue* find(std::string_view key) const;

    // Typed lookups. Integers of any width are accepted when the value fits;
    // a value of the wrong kind is an error rather than a silent default.
    Expected<std::optional<uint64_t>> get_uint(std::string_view key) const;
    Expected<std::optional<double>> get_float(std::string_view key) const;
    Expected<std::optional<bool>> get_bool(std::string_view key) const;
    Expected<std::optional<std::string>> get_string(std::string_view key) const;

    const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
    const GgufTensorInfo* find_tensor(std::string_view name) const;

private:
    GgufFile() = default;
    std::shared_ptr<MappedFile> map_;
    std::string path_;
    uint64_t size_ = 0;
    uint32_t version_ = 0;
    uint32_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string, GgufValue>> kv_;
    std::map<std::string, size_t, std::less<>> kv_index_;
    std::vector<GgufTensorInfo> tensors_;
    std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace latent::engine
