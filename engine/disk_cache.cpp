// DiskCache: page files of the prefix cache (see disk_cache.h for the format).
#include "engine/disk_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

namespace latent::engine {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'L', 'T', 'N', 'T', 'K', 'V', 'P', '1'};
constexpr size_t kHeaderBytes = 40;

uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return h;
}

// Reads or writes all of `n` bytes; false on any short transfer or error.
bool write_all(int fd, const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w <= 0) return false;
        p += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

bool read_all(int fd, void* data, size_t n) {
    char* p = static_cast<char*>(data);
    while (n > 0) {
        const ssize_t r = ::read(fd, p, n);
        if (r <= 0) return false;
        p += r;
        n -= static_cast<size_t>(r);
    }
    return true;
}

struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

// Streaming form of hash_bytes over several buffers (8-byte words; the tail padded).
class Hasher {
public:
    explicit Hasher(uint64_t seed) : h_(seed) {}
    void add(const void* data, size_t n) {
        const auto* p = static_cast<const unsigned char*>(data);
        while (n > 0) {
            const size_t take = std::min(n, sizeof(buf_) - fill_);
            std::memcpy(buf_ + fill_, p, take);
            fill_ += take, p += take, n -= take, total_ += take;
            if (fill_ == sizeof(buf_)) flush();
        }
    }
    uint64_t done() {
        if (fill_ > 0) {
            std::memset(buf_ + fill_, 0, sizeof(buf_) - fill_);
            flush();
        }
        return mix(h_ ^ total_);
    }

private:
    void flush() {
        for (size_t i = 0; i < sizeof(buf_); i += 8) {
            uint64_t w;
            std::memcpy(&w, buf_ + i, 8);
            h_ = (h_ ^ mix(w + i)) * 0x100000001B3ull;
            h_ = (h_ << 29) | (h_ >> 35);
        }
        fill_ = 0;
    }
    uint64_t h_;
    unsigned char buf_[64];
    size_t fill_ = 0;
    uint64_t total_ = 0;
};

std::string hex16(uint64_t v) {
    char s[17];
    std::snprintf(s, sizeof(s), "%016llx", static_cast<unsigned long long>(v));
    return s;
}

}  // namespace

uint64_t hash_bytes(const void* data, size_t n, uint64_t seed) {
    Hasher h(seed);
    h.add(data, n);
    return h.done();
}

Expected<std::string> model_identity(const std::string& path, uint64_t data_offset) {
    Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (f.fd < 0 || ::fstat(f.fd, &st) != 0) return make_error(path + ": cannot open");
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (data_offset > size) return make_error(path + ": data offset past the end");
    Hasher h(size);
    // The header: metadata and tensor infos (capped: a vocabulary makes it a few MB).
    std::vector<unsigned char> buf(std::min<uint64_t>(data_offset, 64ull << 20));
    if (::pread(f.fd, buf.data(), buf.size(), 0) != static_cast<ssize_t>(buf.size()))
        return make_error(path + ": cannot read");
    h.add(buf.data(), buf.size());
    // Samples of the tensor data.
    constexpr uint64_t kSamples = 64, kSample = 4096;
    const uint64_t span = size - data_offset;
    buf.resize(kSample);
    for (uint64_t i = 0; i < kSamples && span > 0; ++i) {
        const uint64_t at = data_offset + span * i / kSamples;
        const ssize_t got = ::pread(f.fd, buf.data(), kSample, static_cast<off_t>(at));
        if (got < 0) return make_error(path + ": cannot read");
        h.add(buf.data(), static_cast<size_t>(got));
    }
    return hex16(h.done());
}

bool is_stale_temp_name(std::string_view name) {
    // <16 hex digits>.kvp.tmp.<pid>, as store() names them.
    constexpr std::string_view kMid = ".kvp.tmp.";
    if (name.size() <= 16 + kMid.size() || name.substr(16, kMid.size()) != kMid) return false;
    for (size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        const bool ok = i < 16                 ? std::isxdigit(static_cast<unsigned char>(c)) != 0
                        : i < 16 + kMid.size() ? true
                                               : c >= '0' && c <= '9';
        if (!ok) return false;
    }
    return true;
}

std::string default_kv_dir(const std::string& model_id) {
    std::string base;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
        base = x;
    } else if (const char* home = std::getenv("HOME"); home && *home) {
        base = std::string(home) + "/.cache";
    } else {
        base = "/tmp";
    }
    return base + "/latent/kv/" + model_id;
}

Expected<std::unique_ptr<DiskCache>> DiskCache::open(const Options& options) {
    if (options.n_layer == 0 || options.page_tokens == 0 || options.row_width == 0)
        return make_error("disk cache: page shape not set");
    std::error_code ec;
    fs::create_directories(options.dir, ec);
    if (ec) return make_error(options.dir + ": " + ec.message());
    std::unique_ptr<DiskCache> d(new DiskCache(options));
    // Known files, oldest first by mtime; stray temp files of a crashed writer go — only
    // names store() writes, and only old ones: a young one may be another process's page
    // being written now, and any other name is not ours to delete.
    std::vector<std::pair<fs::file_time_type, uint64_t>> found;
    const auto now = fs::file_time_type::clock::now();
    for (const auto& e : fs::directory_iterator(options.dir, ec)) {
        const std::string name = e.path().filename().string();
        if (is_stale_temp_name(name)) {
            std::error_code tec;
            const auto t = e.last_write_time(tec);
            if (!tec && now - t > kStaleTempAge && e.is_regular_file(tec))
                fs::remove(e.path(), tec);
            continue;
        }
        if (name.size() != 20 || name.substr(16) != ".kvp") continue;
        char* end = nullptr;
        const std::string hex = name.substr(0, 16);
        const uint64_t key = std::strtoull(hex.c_str(), &end, 16);
        if (*end != '\0') continue;
        found.emplace_back(e.last_write_time(ec), key);
    }
    std::sort(found.begin(), found.end());
    for (const auto& [t, key] : found) d->files_[key].last_use = ++d->clock_;
    d->trim();
    return d;
}

uint64_t DiskCache::file_bytes() const {
    return kHeaderBytes + uint64_t(opt_.page_tokens) * 4 +
           uint64_t(opt_.n_layer) * opt_.page_tokens * opt_.row_width * 4 + 8;
}

std::string DiskCache::path_of(uint64_t key) const { return opt_.dir + "/" + hex16(key) + ".kvp"; }

void DiskCache::forget(uint64_t key) {
    std::error_code ec;
    fs::remove(path_of(key), ec);
    files_.erase(key);
    ++counters_.deleted;
}

Status DiskCache::store(uint64_t key, uint64_t parent, std::span<const int32_t> tokens,
                        const float* rows) {
    if (tokens.size() != opt_.page_tokens) return make_error("disk cache: not a whole page");
    if (auto it = files_.find(key); it != files_.end()) {
        it->second.last_use = ++clock_;
        return Status::success();
    }
    unsigned char header[kHeaderBytes] = {};
    std::memcpy(header, kMagic, 8);
    const uint32_t shape[4] = {opt_.n_layer, opt_.page_tokens, opt_.row_width, 0};
    std::memcpy(header + 8, shape, sizeof(shape));
    std::memcpy(header + 24, &key, 8);
    std::memcpy(header + 32, &parent, 8);
    const size_t row_bytes = size_t(opt_.n_layer) * opt_.page_tokens * opt_.row_width * 4;
    Hasher h(0);
    h.add(header, sizeof(header));
    h.add(tokens.data(), tokens.size_bytes());
    h.add(rows, row_bytes);
    const uint64_t sum = h.done();

    const std::string final_path = path_of(key);
    const std::string tmp = final_path + ".tmp." + std::to_string(::getpid());
    {
        Fd f(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        if (f.fd < 0) return make_error(tmp + ": cannot create");
        if (!write_all(f.fd, header, sizeof(header)) ||
            !write_all(f.fd, tokens.data(), tokens.size_bytes()) ||
            !write_all(f.fd, rows, row_bytes) || !write_all(f.fd, &sum, 8)) {
            std::error_code ec;
            fs::remove(tmp, ec);
            return make_error(tmp + ": write failed (disk full?)");
        }
    }
    if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
        std::error_code ec;
        fs::remove(tmp, ec);
        return make_error(final_path + ": rename failed");
    }
    files_[key].last_use = ++clock_;
    ++counters_.stores;
    trim();
    return Status::success();
}

bool DiskCache::load(uint64_t key, uint64_t parent, std::span<const int32_t> tokens, float* rows) {
    auto it = files_.find(key);
    if (it == files_.end() || tokens.size() != opt_.page_tokens) {
        ++counters_.misses;
        return false;
    }
    const std::string path = path_of(key);
    Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    bool ok =
        f.fd >= 0 && ::fstat(f.fd, &st) == 0 && static_cast<uint64_t>(st.st_size) == file_bytes();
    unsigned char header[kHeaderBytes];
    std::vector<int32_t> stored(opt_.page_tokens);
    const size_t row_bytes = size_t(opt_.n_layer) * opt_.page_tokens * opt_.row_width * 4;
    uint64_t sum = 0;
    ok = ok && read_all(f.fd, header, sizeof(header)) &&
         read_all(f.fd, stored.data(), stored.size() * 4) && read_all(f.fd, rows, row_bytes) &&
         read_all(f.fd, &sum, 8);
    if (ok) {
        const uint32_t shape[4] = {opt_.n_layer, opt_.page_tokens, opt_.row_width, 0};
        ok = std::memcmp(header, kMagic, 8) == 0 &&
             std::memcmp(header + 8, shape, sizeof(shape)) == 0 &&
             std::memcmp(header + 24, &key, 8) == 0;
    }
    if (ok) {
        Hasher h(0);
        h.add(header, sizeof(header));
        h.add(stored.data(), stored.size() * 4);
        h.add(rows, row_bytes);
        ok = h.done() == sum;
    }
    if (!ok) {
        // Truncated, corrupt, or of another shape: never trust it again.
        ++counters_.corrupt;
        forget(key);
        return false;
    }
    uint64_t stored_parent;
    std::memcpy(&stored_parent, header + 32, 8);
    if (stored_parent != parent || !std::equal(stored.begin(), stored.end(), tokens.begin())) {
        ++counters_.misses;  // a 64-bit key collision: another prefix's page
        return false;
    }
    it->second.last_use = ++clock_;
    ++counters_.loads;
    return true;
}

void DiskCache::trim() {
    const uint64_t each = file_bytes();
    while (!files_.empty() && files_.size() * each > opt_.budget_bytes) {
        auto oldest = std::min_element(
            files_.begin(), files_.end(),
            [](const auto& a, const auto& b) { return a.second.last_use < b.second.last_use; });
        forget(oldest->first);
    }
}

DiskCache::Stats DiskCache::stats() const {
    Stats s = counters_;
    s.files = files_.size();
    s.bytes = files_.size() * file_bytes();
    return s;
}

}  // namespace latent::engine
