// The index's SQLite database: schema, open/check/rebuild, batched writes, and the
// statement handles readers use. Not the indexer (indexer.h decides what to write and
// owns the writer thread) nor the ranking of results (retrieval.h).
//
// Schema (version kSchemaVersion). An index at an older version is migrated step by step
// (each step one transaction, in sqlite_store.cpp's kMigrations); an unknown or newer
// version, or a damaged file, is rebuilt — the index is a cache of the workspace — and
// the warning callback says so.
//
//   meta(key TEXT PRIMARY KEY, value TEXT)   -- "schema_version", "root" (workspace dir)
//   files(id INTEGER PRIMARY KEY, path TEXT UNIQUE   -- relative to the root, '/'-separated
//         language TEXT, size INTEGER (bytes), mtime_ns INTEGER, hash INTEGER (64-bit
//         content hash, stored as signed), flags INTEGER (1 parse timed out, 2 had errors))
//   symbols(id INTEGER PRIMARY KEY, file_id -> files ON DELETE CASCADE, name, kind,
//         container, start_line, start_col, end_line, end_col, start_byte, end_byte,
//         name_line, name_col, signature, doc)        -- lines/cols 0-based, cols in bytes
//   refs(id INTEGER PRIMARY KEY, file_id -> files ON DELETE CASCADE, line, n, uses)
//         -- one row per line, indexed by (file_id, line, n); uses: the line's n
//         references as "col name" lines in column order (parse_uses)
//   imports(file_id -> files ON DELETE CASCADE, line, text)
//   chunks(id INTEGER PRIMARY KEY, file_id -> files ON DELETE CASCADE, kind, name,
//         start_line, end_line, start_byte, end_byte, text)
//   chunks_fts  FTS5(name, text)  external content = chunks (rows written by the store)
//   chunks_vocab fts5vocab(chunks_fts, 'row')  -- how many chunks hold each term
//   symbols_fts FTS5(name)        external content = symbols (rows written by the store)
//
// Versions: 1 first; 2 added chunks_vocab; 3 indexes chunks by (file_id,
// start_byte); 4 drops the refs(name) index (a third of the refs cost; uses of a name are
// found through chunks_fts); 5 drops the FTS triggers (the store writes FTS rows itself:
// a trigger made every insert flush FTS5's pending terms) and keys refs by position; 6
// stores one refs row per line (a third smaller, fewer rows to write).
//
// A file's rows are written in the same transaction as its `files` row, so a crash
// leaves either the old or the new version of a file, never half of one.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "index/extract.h"

namespace latent::index {

constexpr int kSchemaVersion = 6;

// One reference of a refs row: its column (bytes) and name (a view into the row's text).
struct Use {
    uint32_t col = 0;
    std::string_view name;
};
// The uses of a refs.uses value, in stored (column) order; only those with columns in
// [min_col, max_col] (the scan stops past max_col: a minified line holds thousands).
std::vector<Use> parse_uses(std::string_view uses, uint32_t min_col = 0,
                            uint32_t max_col = UINT32_MAX);

struct SqliteCloser {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
    void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};

// One prepared statement. Binds are 1-based like SQLite's; text binds are copied
// (SQLITE_TRANSIENT), so arguments need not outlive the call. Not thread-safe.
class Statement {
public:
    Statement() = default;
    explicit Statement(sqlite3_stmt* s) : stmt_(s) {}
    explicit operator bool() const { return stmt_ != nullptr; }
    Statement& bind(int i, int64_t v);
    Statement& bind(int i, std::string_view v);
    Statement& bind_null(int i);
    // SQLITE_ROW -> true, SQLITE_DONE -> false; an error throws StoreError.
    bool step();
    void reset();  // also clears the bindings
    int64_t int64(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
    std::string text(int col) const;
    sqlite3_stmt* get() const { return stmt_.get(); }

private:
    std::unique_ptr<sqlite3_stmt, StmtFinalizer> stmt_;
};

// Errors from SQLite inside the index (disk full, corruption found while running).
// Caught at the index's public API; never crosses a thread.
struct StoreError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct FileRecord {
    int64_t id = 0;
    std::string path;
    std::string language;
    int64_t size = 0;
    int64_t mtime_ns = 0;
    uint64_t hash = 0;
    int flags = 0;
};

// One file's new state. When `extraction` is empty and `stat_only` is set, only size
// and mtime change (the content hash matched).
struct FileUpdate {
    FileRecord file;
    bool stat_only = false;
    std::string text;  // the content the extraction came from (chunk text is cut from it)
    Extraction extraction;
};

// Latent's indexes carry this SQLite application_id (header bytes 68-71, "LtIx"), readable
// even when the rest of the file is damaged.
inline constexpr uint32_t kApplicationId = 0x4C744978;

// True when `path` may be (re)written as an index: it does not exist, is empty, or is a
// SQLite file with kApplicationId in its header — or, from before the id, a readable
// SQLite database with Latent's meta table and a schema_version. A user's notes.txt, a
// file of zeros or another program's database is not.
bool is_latent_index(const std::string& path);

struct StoreOptions {
    bool read_only = false;
    // Warnings (a corrupt database rebuilt, a schema rebuilt). Default: ignored.
    std::function<void(const std::string&)> warn;
    // Run PRAGMA quick_check at open (reads the whole file). Default on.
    bool check = true;
};

// One connection. Thread-safety: none — use a Store from one thread at a time; open
// another Store (connection) per reader thread. WAL lets readers run while a writer
// commits; busy_timeout waits out the short locks WAL still takes.
class Store {
public:
    // Opens or creates the database; a corrupt index or another schema version is
    // rebuilt (with a warning). A file that is not a Latent index (not SQLite, or another
    // program's database: see is_latent_index) is never touched: nullptr with `error` set,
    // as when it cannot open.
    static std::unique_ptr<Store> open(const std::string& path, std::string* error,
                                       StoreOptions options = {});

    // Writes all updates in one transaction (all or nothing).
    void write(const std::vector<FileUpdate>& updates);
    // Deletes files (and their rows) by path, in one transaction.
    void remove(const std::vector<std::string>& paths);

    std::vector<FileRecord> files();
    std::optional<FileRecord> file(std::string_view path);
    std::optional<std::string> meta(std::string_view key);
    void set_meta(std::string_view key, std::string_view value);

    struct Counts {
        int64_t files = 0, symbols = 0, refs = 0, chunks = 0;
    };
    Counts counts();

    // For retrieval: a statement on this connection (throws StoreError on bad SQL).
    Statement prepare(std::string_view sql);
    // The same, prepared once per connection and reset for reuse: for queries run often.
    // The reference is valid until the Store closes; do not nest two uses of one SQL.
    Statement& cached(const std::string& sql);
    void exec(const char* sql);
    sqlite3* handle() const { return db_.get(); }
    const std::string& path() const { return path_; }

private:
    Store() = default;
    std::unique_ptr<sqlite3, SqliteCloser> db_;
    std::string path_;
    std::unordered_map<std::string, Statement> cache_;
    Statement insert_file_, update_stat_, find_file_, delete_file_, delete_chunks_fts_,
        delete_symbols_fts_, insert_symbol_, insert_symbol_fts_, insert_ref_, insert_import_,
        insert_chunk_, insert_chunk_fts_;
    std::vector<uint32_t> order_;  // scratch for write()
    void prepare_writes();
    void delete_file(std::string_view path);
};

}  // namespace latent::index
