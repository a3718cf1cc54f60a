// Streaming GGUF v3 writer (see gguf_writer.h for the layout rules it follows).
#include "engine/gguf_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace latent::engine {
namespace {

constexpr uint32_t kGgufMagic = 0x46554747;

}  // namespace

GgufWriter::~GgufWriter() {
    if (out_) {
        std::fclose(out_);
        std::remove(tmp_path_.c_str());
    }
}

void GgufWriter::set_value(const std::string& key, const GgufValue& v) {
    if (key == "general.alignment") alignment_ = static_cast<uint32_t>(v.u);
    for (auto& kv : kv_) {
        if (kv.first == key) {
            kv.second = v;
            return;
        }
    }
    kv_.emplace_back(key, v);
}

void GgufWriter::set_u32(const std::string& key, uint32_t v) {
    GgufValue x;
    x.type = GgufType::kUint32;
    x.u = v;
    set_value(key, x);
}

void GgufWriter::set_i32(const std::string& key, int32_t v) {
    GgufValue x;
    x.type = GgufType::kInt32;
    x.i = v;
    set_value(key, x);
}

void GgufWriter::set_f32(const std::string& key, float v) {
    GgufValue x;
    x.type = GgufType::kFloat32;
    x.f = v;
    set_value(key, x);
}

void GgufWriter::set_bool(const std::string& key, bool v) {
    GgufValue x;
    x.type = GgufType::kBool;
    x.u = v ? 1 : 0;
    set_value(key, x);
}

void GgufWriter::set_string(const std::string& key, const std::string& v) {
    GgufValue x;
    x.type = GgufType::kString;
    x.s = v;
    set_value(key, x);
}

void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& v) {
    GgufValue x;
    x.type = GgufType::kArray;
    x.arr_type = GgufType::kString;
    x.arr_str = v;
    set_value(key, x);
}

void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& v) {
    GgufValue x;
    x.type = GgufType::kArray;
    x.arr_type = GgufType::kInt32;
    x.arr_int.assign(v.begin(), v.end());
    set_value(key, x);
}

void GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type) {
    uint64_t n = row_bytes(type, ne[0]);
    for (size_t d = 1; d < ne.size(); ++d) n *= static_cast<uint64_t>(ne[d]);
    tensors_.push_back(Tensor{name, std::move(ne), type, n, 0});
}

Status GgufWriter::write_raw(const void* data, uint64_t n) {
    if (n == 0) return Status::success();
    if (std::fwrite(data, 1, n, out_) != n)
        return make_error(path_ + ": write failed: " + std::strerror(errno));
    total_ += n;
    return Status::success();
}

Status GgufWriter::pad_to_alignment(uint64_t written) {
    static const uint8_t kZeros[256] = {};
    uint64_t pad = (alignment_ - written % alignment_) % alignment_;
    while (pad > 0) {
        const uint64_t k = pad < sizeof(kZeros) ? pad : sizeof(kZeros);
        if (Status s = write_raw(kZeros, k); !s) return s;
        pad -= k;
    }
    return Status::success();
}

Status GgufWriter::begin(const std::string& path) {
    path_ = path;
    tmp_path_ = path + ".partial";
    out_ = std::fopen(tmp_path_.c_str(), "wb");
    if (!out_) return make_error(tmp_path_ + ": cannot create: " + std::strerror(errno));

    std::string buf;
    auto put = [&](const void* p, size_t n) { buf.append(static_cast<const char*>(p), n); };
    auto put_u32 = [&](uint32_t v) { put(&v, 4); };
    auto put_u64 = [&](uint64_t v) { put(&v, 8); };
    auto put_str = [&](const std::string& s) {
        put_u64(s.size());
        buf.append(s);
    };
    auto put_scalar = [&](GgufType t, const GgufValue& v, size_t k) {
        switch (t) {
            case GgufType::kUint8:
            case GgufType::kInt8:
            case GgufType::kBool: {
                const uint8_t x = static_cast<uint8_t>(
                    v.is_array() ? v.arr_int[k] : (t == GgufType::kInt8 ? v.i : v.u));
                put(&x, 1);
                break;
            }
            case GgufType::kUint16:
            case GgufType::kInt16: {
                const uint16_t x = static_cast<uint16_t>(
                    v.is_array() ? v.arr_int[k] : (t == GgufType::kInt16 ? v.i : v.u));
                put(&x, 2);
                break;
            }
            case GgufType::kUint32:
            case GgufType::kInt32: {
                const uint32_t x = static_cast<uint32_t>(
                    v.is_array() ? v.arr_int[k] : (t == GgufType::kInt32 ? v.i : v.u));
                put(&x, 4);
                break;
            }
            case GgufType::kUint64:
            case GgufType::kInt64: {
                const uint64_t x = static_cast<uint64_t>(
                    v.is_array() ? v.arr_int[k] : (t == GgufType::kInt64 ? v.i : v.u));
                put(&x, 8);
                break;
            }
            case GgufType::kFloat32: {
                const float x = static_cast<float>(v.is_array() ? v.arr_float[k] : v.f);
                put(&x, 4);
                break;
            }
            case GgufType::kFloat64: {
                const double x = v.is_array() ? v.arr_float[k] : v.f;
                put(&x, 8);
                break;
            }
            case GgufType::kString:
                put_str(v.is_array() ? v.arr_str[k] : v.s);
                break;
            case GgufType::kArray:
                break;
        }
    };

    put_u32(kGgufMagic);
    put_u32(3);
    put_u64(tensors_.size());
    put_u64(kv_.size());
    for (const auto& [key, v] : kv_) {
        put_str(key);
        put_u32(static_cast<uint32_t>(v.type));
        if (v.is_array()) {
            put_u32(static_cast<uint32_t>(v.arr_type));
            put_u64(v.array_size());
            for (size_t k = 0; k < v.array_size(); ++k) put_scalar(v.arr_type, v, k);
        } else {
            put_scalar(v.type, v, 0);
        }
    }
    uint64_t offset = 0;
    for (Tensor& t : tensors_) {
        t.offset = offset;
        put_str(t.name);
        put_u32(static_cast<uint32_t>(t.ne.size()));
        for (int64_t d : t.ne) put_u64(static_cast<uint64_t>(d));
        put_u32(static_cast<uint32_t>(t.type));
        put_u64(t.offset);
        offset += (t.n_bytes + alignment_ - 1) / alignment_ * alignment_;
    }
    if (Status s = write_raw(buf.data(), buf.size()); !s) return s;
    current_ = 0;
    current_done_ = 0;
    return pad_to_alignment(total_);
}

Status GgufWriter::write(const void* data, uint64_t n_bytes) {
    const auto* p = static_cast<const uint8_t*>(data);
    while (n_bytes > 0) {
        if (current_ >= tensors_.size())
            return make_error(path_ + ": more tensor data written than declared");
        Tensor& t = tensors_[current_];
        const uint64_t k = std::min(n_bytes, t.n_bytes - current_done_);
        if (Status s = write_raw(p, k); !s) return s;
        p += k;
        n_bytes -= k;
        current_done_ += k;
        if (current_done_ == t.n_bytes) {
            if (Status s = pad_to_alignment(t.n_bytes); !s) return s;
            ++current_;
            current_done_ = 0;
        }
    }
    return Status::success();
}

Status GgufWriter::finish() {
    // Zero-sized tensors complete without a write call.
    while (current_ < tensors_.size() && tensors_[current_].n_bytes == 0) ++current_;
    if (current_ != tensors_.size())
        return make_error(path_ + ": tensor '" + tensors_[current_].name +
                          "' was not written in full");
    if (std::fflush(out_) != 0 || std::fclose(out_) != 0) {
        out_ = nullptr;
        return make_error(path_ + ": write failed: " + std::strerror(errno));
    }
    out_ = nullptr;
    if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0)
        return make_error(path_ + ": cannot rename from " + tmp_path_ + ": " +
                          std::strerror(errno));
    return Status::success();
}

}  // namespace latent::engine
