// GGUF parsing with every read bounds-checked: a Reader never reads past the end of
// the buffer, and every count is checked against the bytes that remain before any
// allocation is sized by it.
#include "engine/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

namespace latent::engine {
namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint32_t kMaxDims = 4;
// ggml's GGML_MAX_NAME: tensor names are stored in a 64-byte field there, so a longer
// name cannot come from a file llama.cpp wrote or can read.
constexpr uint64_t kMaxTensorName = 63;
// Keys are short identifiers; a 64 KiB key is a corrupt or hostile file.
constexpr uint64_t kMaxKeyLength = 65536;

class Reader {
public:
    Reader(const uint8_t* data, uint64_t size) : data_(data), size_(size) {}
    uint64_t pos() const { return pos_; }
    uint64_t remaining() const { return size_ - pos_; }
    bool failed() const { return failed_; }
    const std::string& why() const { return why_; }

    bool fail(std::string why) {
        if (!failed_) {
            failed_ = true;
            why_ = std::move(why) + " (at byte " + std::to_string(pos_) + ")";
        }
        return false;
    }

    template <class T>
    bool read(T& out) {
        if (failed_) return false;
        if (remaining() < sizeof(T)) return fail("unexpected end of file");
        std::memcpy(&out, data_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return true;
    }

    bool read_string(std::string& out, uint64_t max_len) {
        uint64_t len = 0;
        if (!read(len)) return false;
        if (len > remaining())
            return fail("string length " + std::to_string(len) + " exceeds file");
        if (len > max_len) return fail("string length " + std::to_string(len) + " over the limit");
        out.assign(reinterpret_cast<const char*>(data_ + pos_), len);
        pos_ += len;
        return true;
    }

private:
    const uint8_t* data_;
    uint64_t size_;
    uint64_t pos_ = 0;
    bool failed_ = false;
    std::string why_;
};

// The smallest encoded size of one value of a scalar type (for count sanity checks).
uint64_t min_encoded_size(GgufType t) {
    switch (t) {
        case GgufType::kUint8:
        case GgufType::kInt8:
        case GgufType::kBool:
            return 1;
        case GgufType::kUint16:
        case GgufType::kInt16:
            return 2;
        case GgufType::kUint32:
        case GgufType::kInt32:
        case GgufType::kFloat32:
            return 4;
        case GgufType::kUint64:
        case GgufType::kInt64:
        case GgufType::kFloat64:
        case GgufType::kString:  // its u64 length
            return 8;
        case GgufType::kArray:
            return 12;
    }
    return 1;
}

bool valid_type(int32_t t) { return t >= 0 && t <= 12; }

// Reads one scalar (not an array) of type t into v's fields.
bool read_scalar(Reader& r, GgufType t, GgufValue& v) {
    switch (t) {
        case GgufType::kUint8: {
            uint8_t x = 0;
            if (!r.read(x)) return false;
            v.u = x;
            return true;
        }
        case GgufType::kInt8: {
            int8_t x = 0;
            if (!r.read(x)) return false;
            v.i = x;
            return true;
        }
        case GgufType::kUint16: {
            uint16_t x = 0;
            if (!r.read(x)) return false;
            v.u = x;
            return true;
        }
        case GgufType::kInt16: {
            int16_t x = 0;
            if (!r.read(x)) return false;
            v.i = x;
            return true;
        }
        case GgufType::kUint32: {
            uint32_t x = 0;
            if (!r.read(x)) return false;
            v.u = x;
            return true;
        }
        case GgufType::kInt32: {
            int32_t x = 0;
            if (!r.read(x)) return false;
            v.i = x;
            return true;
        }
        case GgufType::kFloat32: {
            float x = 0;
            if (!r.read(x)) return false;
            v.f = x;
            return true;
        }
        case GgufType::kBool: {
            uint8_t x = 0;
            if (!r.read(x)) return false;
            if (x > 1) return r.fail("bool value " + std::to_string(x) + " is not 0 or 1");
            v.u = x;
            return true;
        }
        case GgufType::kString:
            return r.read_string(v.s, r.remaining());
        case GgufType::kUint64:
            return r.read(v.u);
        case GgufType::kInt64:
            return r.read(v.i);
        case GgufType::kFloat64:
            return r.read(v.f);
        case GgufType::kArray:
            return r.fail("nested array");
    }
    return r.fail("bad value type");
}

bool read_value(Reader& r, GgufType t, GgufValue& v) {
    v.type = t;
    if (t != GgufType::kArray) return read_scalar(r, t, v);
    int32_t et = 0;
    uint64_t count = 0;
    if (!r.read(et) || !r.read(count)) return false;
    if (!valid_type(et)) return r.fail("array element type " + std::to_string(et) + " unknown");
    v.arr_type = static_cast<GgufType>(et);
    if (v.arr_type == GgufType::kArray) return r.fail("nested arrays are not supported");
    // Check the count against the bytes left before reserving anything for it.
    if (count > r.remaining() / min_encoded_size(v.arr_type))
        return r.fail("array count " + std::to_string(count) + " exceeds file");
    GgufValue elem;
    if (v.arr_type == GgufType::kString) {
        v.arr_str.reserve(count);
        for (uint64_t k = 0; k < count; ++k) {
            if (!r.read_string(elem.s, r.remaining())) return false;
            v.arr_str.push_back(std::move(elem.s));
        }
    } else if (v.arr_type == GgufType::kFloat32 || v.arr_type == GgufType::kFloat64) {
        v.arr_float.reserve(count);
        for (uint64_t k = 0; k < count; ++k) {
            if (!read_scalar(r, v.arr_type, elem)) return false;
            v.arr_float.push_back(elem.f);
        }
    } else {
        v.arr_int.reserve(count);
        const bool is_unsigned = v.arr_type == GgufType::kUint8 ||
                                 v.arr_type == GgufType::kUint16 ||
                                 v.arr_type == GgufType::kUint32 ||
                                 v.arr_type == GgufType::kUint64 || v.arr_type == GgufType::kBool;
        for (uint64_t k = 0; k < count; ++k) {
            if (!read_scalar(r, v.arr_type, elem)) return false;
            v.arr_int.push_back(is_unsigned ? static_cast<int64_t>(elem.u) : elem.i);
        }
    }
    return true;
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t& out) {
    return __builtin_mul_overflow(a, b, &out);
}

}  // namespace

const char* gguf_type_name(GgufType t) {
    static const char* kNames[] = {"uint8",  "int8",    "uint16", "int16",  "uint32",
                                   "int32",  "float32", "bool",   "string", "array",
                                   "uint64", "int64",   "float64"};
    const int i = static_cast<int>(t);
    return i >= 0 && i <= 12 ? kNames[i] : "unknown";
}

bool GgufValue::is_integer() const {
    switch (type) {
        case GgufType::kUint8:
        case GgufType::kInt8:
        case GgufType::kUint16:
        case GgufType::kInt16:
        case GgufType::kUint32:
        case GgufType::kInt32:
        case GgufType::kUint64:
        case GgufType::kInt64:
            return true;
        default:
            return false;
    }
}

size_t GgufValue::array_size() const { return arr_str.size() + arr_int.size() + arr_float.size(); }

std::string GgufTensorInfo::shape_string() const {
    std::string s = "[";
    for (uint32_t d = 0; d < std::max<uint32_t>(n_dims, 1); ++d) {
        if (d) s += ", ";
        s += std::to_string(ne[d]);
    }
    return s + "]";
}

Expected<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return make_error(path + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        return make_error(path + ": cannot stat: " + std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return make_error(path + ": not a regular file");
    }
    auto m = std::shared_ptr<MappedFile>(new MappedFile());
    m->path_ = path;
    m->size_ = static_cast<uint64_t>(st.st_size);
    if (m->size_ > 0) {
        void* p = mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            const int e = errno;
            ::close(fd);
            return make_error(path + ": cannot map " + std::to_string(m->size_) +
                              " bytes: " + std::strerror(e));
        }
        m->data_ = static_cast<const uint8_t*>(p);
        // Weights are used in place from this mapping (no second copy). When the file fits
        // in the memory the system has available, ask the kernel to read it ahead now, in
        // the background, instead of one page fault at a time during the first passes.
        const long page = sysconf(_SC_PAGESIZE), avail = sysconf(_SC_AVPHYS_PAGES);
        if (page > 0 && avail > 0 &&
            m->size_ < static_cast<uint64_t>(avail) * static_cast<uint64_t>(page))
            madvise(p, m->size_, MADV_WILLNEED);
    }
    ::close(fd);
    return m;
}

MappedFile::~MappedFile() {
    if (data_) munmap(const_cast<uint8_t*>(data_), size_);
}

Expected<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path) {
    auto map = MappedFile::open(path);
    if (!map) return map.error();
    auto file = parse((*map)->data(), (*map)->size(), path);
    if (!file) return file.error();
    (*file)->map_ = std::move(*map);
    return file;
}

Expected<std::unique_ptr<GgufFile>> GgufFile::parse(const uint8_t* data, uint64_t size,
                                                    std::string name) {
    auto fail = [&](const std::string& why) { return make_error(name + ": " + why); };
    std::unique_ptr<GgufFile> f(new GgufFile());
    f->path_ = name;
    f->size_ = size;
    Reader r(data, size);

    uint32_t magic = 0;
    if (!r.read(magic) || magic != kGgufMagic) return fail("not a GGUF file (bad magic)");
    if (!r.read(f->version_)) return fail(r.why());
    if (f->version_ != 2 && f->version_ != 3)
        return fail("unsupported GGUF version " + std::to_string(f->version_) + " (need 2 or 3)");
    int64_t n_tensors = 0, n_kv = 0;
    if (!r.read(n_tensors) || !r.read(n_kv)) return fail(r.why());
    // Each kv needs >= 13 bytes (key length, type, 1-byte value); each tensor info >= 32.
    if (n_kv < 0 || static_cast<uint64_t>(n_kv) > r.remaining() / 13)
        return fail("metadata count " + std::to_string(n_kv) + " is impossible for the file size");
    if (n_tensors < 0 || static_cast<uint64_t>(n_tensors) > r.remaining() / 32)
        return fail("tensor count " + std::to_string(n_tensors) +
                    " is impossible for the file size");

    f->kv_.reserve(static_cast<size_t>(n_kv));
    for (int64_t k = 0; k < n_kv; ++k) {
        std::string key;
        int32_t type = 0;
        if (!r.read_string(key, kMaxKeyLength) || !r.read(type)) return fail(r.why());
        if (key.empty()) return fail("empty metadata key");
        if (!valid_type(type))
            return fail("metadata '" + key + "' has unknown type " + std::to_string(type));
        GgufValue v;
        if (!read_value(r, static_cast<GgufType>(type), v))
            return fail("metadata '" + key + "': " + r.why());
        if (!f->kv_index_.emplace(key, f->kv_.size()).second)
            return fail("duplicate metadata key '" + key + "'");
        f->kv_.emplace_back(std::move(key), std::move(v));
    }

    if (const GgufValue* a = f->find("general.alignment")) {
        if (!a->is_integer() || a->u == 0 || a->u > (1u << 30) || (a->u & (a->u - 1)) != 0)
            return fail("general.alignment must be a power of two");
        f->alignment_ = static_cast<uint32_t>(a->u);
    }

    f->tensors_.reserve(static_cast<size_t>(n_tensors));
    for (int64_t t = 0; t < n_tensors; ++t) {
        GgufTensorInfo ti;
        if (!r.read_string(ti.name, r.remaining()) || !r.read(ti.n_dims)) return fail(r.why());
        if (ti.name.size() > kMaxTensorName)
            return fail("tensor name of " + std::to_string(ti.name.size()) +
                        " bytes is longer than 63");
        if (ti.n_dims == 0 || ti.n_dims > kMaxDims)
            return fail("tensor '" + ti.name + "' has " + std::to_string(ti.n_dims) +
                        " dimensions (1 to 4 allowed)");
        for (uint32_t d = 0; d < ti.n_dims; ++d) {
            if (!r.read(ti.ne[d])) return fail(r.why());
            if (ti.ne[d] < 0) return fail("tensor '" + ti.name + "' has a negative dimension");
        }
        uint32_t type = 0;
        if (!r.read(type) || !r.read(ti.offset)) return fail(r.why());
        const TypeTraits* tr = type_traits(type);
        if (!tr)
            return fail("tensor '" + ti.name + "' has unknown ggml type " + std::to_string(type));
        ti.type = static_cast<GgmlType>(type);
        if (ti.ne[0] % tr->block_size != 0)
            return fail("tensor '" + ti.name + "' row of " + std::to_string(ti.ne[0]) +
                        " is not a multiple of the " + tr->name + " block size " +
                        std::to_string(tr->block_size));
        uint64_t n =
            static_cast<uint64_t>(ti.ne[0] / tr->block_size) * static_cast<uint64_t>(tr->type_size);
        for (uint32_t d = 1; d < 4; ++d) {
            if (mul_overflows(n, static_cast<uint64_t>(ti.ne[d]), n))
                return fail("tensor '" + ti.name + "' size overflows");
        }
        uint64_t elems = 1;
        for (uint32_t d = 0; d < 4; ++d) {
            if (mul_overflows(elems, static_cast<uint64_t>(ti.ne[d]), elems) ||
                elems > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                return fail("tensor '" + ti.name + "' element count overflows");
        }
        ti.n_bytes = n;
        if (ti.offset % f->alignment_ != 0)
            return fail("tensor '" + ti.name + "' offset " + std::to_string(ti.offset) +
                        " is not aligned to " + std::to_string(f->alignment_));
        if (!f->tensor_index_.emplace(ti.name, f->tensors_.size()).second)
            return fail("duplicate tensor name '" + ti.name + "'");
        f->tensors_.push_back(std::move(ti));
    }

    // A file without tensors (llama.cpp's vocabulary-only GGUFs) may end right after the
    // metadata, without padding to a data section.
    const uint64_t pad = f->tensors_.empty() && r.pos() == size
                             ? 0
                             : (f->alignment_ - r.pos() % f->alignment_) % f->alignment_;
    if (r.pos() + pad > size) return fail("file ends before the tensor data section");
    f->data_offset_ = r.pos() + pad;
    const uint64_t data_size = size - f->data_offset_;

    // Every tensor inside the data section, and no two overlapping.
    std::vector<const GgufTensorInfo*> by_offset;
    by_offset.reserve(f->tensors_.size());
    for (GgufTensorInfo& ti : f->tensors_) {
        if (ti.offset > data_size || ti.n_bytes > data_size - ti.offset)
            return fail("tensor '" + ti.name + "' (" + std::to_string(ti.n_bytes) +
                        " bytes at data offset " + std::to_string(ti.offset) +
                        ") extends past the end of the file; the file is truncated or corrupt");
        ti.data = data + f->data_offset_ + ti.offset;
        by_offset.push_back(&ti);
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [](auto* a, auto* b) { return a->offset < b->offset; });
    for (size_t k = 1; k < by_offset.size(); ++k) {
        const GgufTensorInfo* prev = by_offset[k - 1];
        if (prev->offset + prev->n_bytes > by_offset[k]->offset && prev->n_bytes > 0 &&
            by_offset[k]->n_bytes > 0)
            return fail("tensors '" + prev->name + "' and '" + by_offset[k]->name + "' overlap");
    }
    return f;
}

const GgufValue* GgufFile::find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Expected<std::optional<uint64_t>> GgufFile::get_uint(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) return std::optional<uint64_t>();
    if (v->is_integer()) {
        const bool is_signed = v->type == GgufType::kInt8 || v->type == GgufType::kInt16 ||
                               v->type == GgufType::kInt32 || v->type == GgufType::kInt64;
        if (is_signed && v->i < 0)
            return make_error(path_ + ": metadata '" + std::string(key) + "' is negative");
        return std::optional<uint64_t>(is_signed ? static_cast<uint64_t>(v->i) : v->u);
    }
    return make_error(path_ + ": metadata '" + std::string(key) + "' is " +
                      gguf_type_name(v->type) + ", expected an integer");
}

Expected<std::optional<double>> GgufFile::get_float(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) return std::optional<double>();
    if (v->type == GgufType::kFloat32 || v->type == GgufType::kFloat64)
        return std::optional<double>(v->f);
    return make_error(path_ + ": metadata '" + std::string(key) + "' is " +
                      gguf_type_name(v->type) + ", expected a float");
}

Expected<std::optional<bool>> GgufFile::get_bool(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) return std::optional<bool>();
    if (v->type == GgufType::kBool) return std::optional<bool>(v->u != 0);
    return make_error(path_ + ": metadata '" + std::string(key) + "' is " +
                      gguf_type_name(v->type) + ", expected a bool");
}

Expected<std::optional<std::string>> GgufFile::get_string(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) return std::optional<std::string>();
    if (v->type == GgufType::kString) return std::optional<std::string>(v->s);
    return make_error(path_ + ": metadata '" + std::string(key) + "' is " +
                      gguf_type_name(v->type) + ", expected a string");
}

}  // namespace latent::engine
