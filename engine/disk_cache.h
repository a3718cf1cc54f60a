// DiskCache: the prefix cache's second tier — latent-cache pages in files, one per
// page, named by the hash chain of their tokens, in a folder per model identity
// (default $XDG_CACHE_HOME/latent/kv/<model id>/), so a restarted process or a reopened
// file gets its prompt prefix back without recomputing it. It knows nothing of the tree:
// PrefixCache decides what to store and what to look up.
//
// Page file format, version 1 (little-endian, as the host writes it):
//   offset 0   char[8]  magic "LTNTKVP1"
//          8   u32      n_layer
//         12   u32      page_tokens
//         16   u32      row_width (kv_lora_rank + n_rot)
//         20   u32      reserved (0)
//         24   u64      key (hash chain through this page)
//         32   u64      parent key
//         40   i32      tokens[page_tokens]
//          .   f32      rows[n_layer][page_tokens][row_width]
//        end   u64      checksum of every byte before it (word-wise multiply-xor hash)
// Files are written to "<key>.tmp.<pid>" and renamed to "<key>.kvp" (atomic on POSIX);
// a file of the wrong size, magic, shape, key, tokens or checksum is deleted and
// reported as a miss. Size budget: least recently used files (by access time kept in
// memory, seeded from mtime at open) are deleted past it.
//
// Thread safety: none; one thread (the scheduler's) uses an instance. Two processes on
// one folder are safe for readers (atomic rename) but each keeps its own size count.
#pragma once

#include <chrono>
#include <string_view>

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "engine/expected.h"

namespace latent::engine {

// 64-bit checksum used by the page files (and model_identity).
uint64_t hash_bytes(const void* data, size_t n, uint64_t seed = 0x9E3779B97F4A7C15ull);

// A model file's identity, 16 hex digits: a hash of its size, its GGUF header (metadata
// and tensor infos) and 64 samples of 4 KiB spread over the tensor data (two files made
// with different seeds share a header but not their data; reading all of an 8 GB file
// at every start would cost seconds). Error when the file cannot be read.
Expected<std::string> model_identity(const std::string& path, uint64_t data_offset);

// $XDG_CACHE_HOME/latent/kv/<model_id> (or ~/.cache/latent/kv/<model_id>).
std::string default_kv_dir(const std::string& model_id);

// True for the names of store()'s temporary files ("<16 hex>.kvp.tmp.<pid>"): the only
// files besides pages that open() may delete, and only once older than kStaleTempAge (a
// younger one may be another process's page being written).
bool is_stale_temp_name(std::string_view name);
inline constexpr std::chrono::minutes kStaleTempAge{10};

class DiskCache {
public:
    struct Options {
        std::string dir;                     // created if missing
        uint64_t budget_bytes = 8ull << 30;  // files past it are deleted, LRU first
        uint32_t n_layer = 0, page_tokens = 0, row_width = 0;
    };
    struct Stats {
        uint64_t files = 0, bytes = 0;
        uint64_t stores = 0, loads = 0, misses = 0, corrupt = 0, deleted = 0;
    };

    static Expected<std::unique_ptr<DiskCache>> open(const Options& options);

    bool contains(uint64_t key) const { return files_.count(key) != 0; }
    // Writes one page (F32 [n_layer][page_tokens][row_width]); a key already stored is
    // not written again. Then deletes LRU files past the budget.
    Status store(uint64_t key, uint64_t parent, std::span<const int32_t> tokens, const float* rows);
    // Reads the page stored under `key` into `rows` if its header names the same parent
    // and tokens and its checksum holds; false on a miss or a bad file (then deleted).
    bool load(uint64_t key, uint64_t parent, std::span<const int32_t> tokens, float* rows);

    void trim();
    Stats stats() const;
    const std::string& dir() const { return opt_.dir; }
    uint64_t file_bytes() const;  // size of one page file

private:
    explicit DiskCache(const Options& o) : opt_(o) {}
    std::string path_of(uint64_t key) const;
    void forget(uint64_t key);

    struct Entry {
        uint64_t last_use = 0;
    };
    Options opt_;
    std::map<uint64_t, Entry> files_;
    uint64_t clock_ = 0;
    Stats counters_;
};

}  // namespace latent::engine
