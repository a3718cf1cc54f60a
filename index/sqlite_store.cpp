// The SQLite store: open with checks (quick_check, schema version), rebuild when needed,
// and write a batch of files in one transaction.
#include "index/sqlite_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <algorithm>
#include <iterator>

namespace latent::index {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE files(
  id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, language TEXT NOT NULL,
  size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, hash INTEGER NOT NULL,
  flags INTEGER NOT NULL DEFAULT 0);
CREATE TABLE symbols(
  id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  name TEXT NOT NULL, kind TEXT NOT NULL, container TEXT NOT NULL,
  start_line INTEGER NOT NULL, start_col INTEGER NOT NULL,
  end_line INTEGER NOT NULL, end_col INTEGER NOT NULL,
  start_byte INTEGER NOT NULL, end_byte INTEGER NOT NULL,
  name_line INTEGER NOT NULL, name_col INTEGER NOT NULL,
  signature TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX symbols_name ON symbols(name);
CREATE INDEX symbols_file ON symbols(file_id);
CREATE TABLE refs(
  id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  line INTEGER NOT NULL, n INTEGER NOT NULL, uses TEXT NOT NULL);
CREATE INDEX refs_file_line ON refs(file_id, line, n);
CREATE TABLE imports(
  file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  line INTEGER NOT NULL, text TEXT NOT NULL);
CREATE INDEX imports_file ON imports(file_id);
CREATE TABLE chunks(
  id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  kind TEXT NOT NULL, name TEXT NOT NULL,
  start_line INTEGER NOT NULL, end_line INTEGER NOT NULL,
  start_byte INTEGER NOT NULL, end_byte INTEGER NOT NULL, text TEXT NOT NULL);
CREATE INDEX chunks_file ON chunks(file_id, start_byte);
CREATE VIRTUAL TABLE chunks_fts USING fts5(name, text, content='chunks', content_rowid='id');
CREATE VIRTUAL TABLE chunks_vocab USING fts5vocab(chunks_fts, 'row');
CREATE VIRTUAL TABLE symbols_fts USING fts5(name, content='symbols', content_rowid='id');
)sql";

// Step-by-step migrations: kMigrations[i] takes a database from version i + 1 to i + 2.
// Each runs in one transaction with the version bump, so a crash leaves either version.
constexpr const char* kMigrations[] = {
    // 1 -> 2: how many chunks hold a term.
    "CREATE VIRTUAL TABLE chunks_vocab USING fts5vocab(chunks_fts, 'row');",
    // 2 -> 3: chunks found by byte offset (the chunk holding a definition).
    "DROP INDEX chunks_file; CREATE INDEX chunks_file ON chunks(file_id, start_byte);",
    // 3 -> 4: uses of a name are found through chunks_fts; the index cost a third of refs.
    "DROP INDEX refs_name;",
    // 4 -> 5: the store writes the FTS rows itself (the triggers made every insert flush
    // FTS5's pending terms: a savepoint per statement), and refs are one b-tree keyed by
    // position instead of a table plus an index. (The key columns come first: SQLite
    // 3.40's quick_check misreads NOT NULL columns placed before them.)
    R"sql(
DROP TRIGGER chunks_ai; DROP TRIGGER chunks_ad; DROP TRIGGER symbols_ai; DROP TRIGGER symbols_ad;
ALTER TABLE refs RENAME TO refs_v4;
CREATE TABLE refs(
  file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  line INTEGER NOT NULL, col INTEGER NOT NULL, name TEXT NOT NULL,
  PRIMARY KEY(file_id, line, col)) WITHOUT ROWID;
INSERT OR IGNORE INTO refs(file_id, name, line, col) SELECT file_id, name, line, col FROM refs_v4;
DROP TABLE refs_v4;
)sql",
    // 5 -> 6: one refs row per line ("col name" lines): a third of the database was the
    // per-use keys and record headers. A rowid table: a line's uses often pass the ~1 KB
    // a WITHOUT ROWID row keeps in its page, and the overflow pages were half empty.
    // n (the line's uses) is in the index, so counting references reads only the index.
    R"sql(
ALTER TABLE refs RENAME TO refs_v5;
CREATE TABLE refs(
  id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  line INTEGER NOT NULL, n INTEGER NOT NULL, uses TEXT NOT NULL);
CREATE INDEX refs_file_line ON refs(file_id, line, n);
INSERT INTO refs(file_id, line, n, uses)
  SELECT file_id, line, count(*), group_concat(col || ' ' || name, char(10)) FROM
  (SELECT file_id, line, col, name FROM refs_v5 ORDER BY file_id, line, col)
  GROUP BY file_id, line;
DROP TABLE refs_v5;
)sql",
};
static_assert(std::size(kMigrations) == kSchemaVersion - 1, "one migration per version step");

std::string errmsg(sqlite3* db) { return db ? sqlite3_errmsg(db) : "out of memory"; }

const std::string kSetApplicationId = "PRAGMA application_id=" + std::to_string(kApplicationId);

void exec_on(sqlite3* db, const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string m = err ? err : errmsg(db);
        sqlite3_free(err);
        throw StoreError(m);
    }
}

void remove_db_files(const std::string& path) {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) ::unlink((path + suffix).c_str());
}

// RAII transaction: commits on commit(), rolls back otherwise.
class Transaction {
public:
    explicit Transaction(sqlite3* db) : db_(db) { exec_on(db_, "BEGIN IMMEDIATE"); }
    void commit() {
        exec_on(db_, "COMMIT");
        done_ = true;
    }
    ~Transaction() {
        if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

private:
    sqlite3* db_;
    bool done_ = false;
};

}  // namespace

std::vector<Use> parse_uses(std::string_view uses, uint32_t min_col, uint32_t max_col) {
    std::vector<Use> out;
    size_t b = 0;
    while (b < uses.size()) {
        size_t e = uses.find('\n', b);
        if (e == std::string_view::npos) e = uses.size();
        const std::string_view row = uses.substr(b, e - b);
        const size_t sp = row.find(' ');
        if (sp != std::string_view::npos) {
            uint32_t col = 0;
            for (char c : row.substr(0, sp))
                if (c >= '0' && c <= '9') col = col * 10 + static_cast<uint32_t>(c - '0');
            if (col > max_col) break;  // stored in column order
            if (col >= min_col) out.push_back({col, row.substr(sp + 1)});
        }
        b = e + 1;
    }
    return out;
}

Statement& Statement::bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_.get(), i, v);
    return *this;
}
Statement& Statement::bind(int i, std::string_view v) {
    sqlite3_bind_text(stmt_.get(), i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
}
Statement& Statement::bind_null(int i) {
    sqlite3_bind_null(stmt_.get(), i);
    return *this;
}
bool Statement::step() {
    const int rc = sqlite3_step(stmt_.get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    std::string m = errmsg(sqlite3_db_handle(stmt_.get()));
    sqlite3_reset(stmt_.get());
    throw StoreError(m);
}
void Statement::reset() {
    sqlite3_reset(stmt_.get());
    sqlite3_clear_bindings(stmt_.get());
}
std::string Statement::text(int col) const {
    const auto* p = sqlite3_column_text(stmt_.get(), col);
    const int n = sqlite3_column_bytes(stmt_.get(), col);
    return p ? std::string(reinterpret_cast<const char*>(p), n) : std::string();
}

bool is_latent_index(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return errno == ENOENT;
    if (!S_ISREG(st.st_mode)) return false;
    if (st.st_size == 0) return true;
    unsigned char header[100] = {};
    {
        FILE* f = std::fopen(path.c_str(), "rb");
        if (!f) return false;
        const size_t n = std::fread(header, 1, sizeof header, f);
        std::fclose(f);
        if (n < sizeof header) return false;
    }
    if (std::memcmp(header, "SQLite format 3", 16) != 0) return false;
    const uint32_t app = (uint32_t(header[68]) << 24) | (uint32_t(header[69]) << 16) |
                         (uint32_t(header[70]) << 8) | uint32_t(header[71]);
    if (app == kApplicationId) return true;
    if (app != 0) return false;  // another program's database
    // An index from before the application id: Latent's meta table with a version.
    sqlite3* raw = nullptr;
    bool ours = false;
    if (sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
        // Waits out a writer that is creating the schema right now.
        sqlite3_busy_timeout(raw, 5000);
        sqlite3_stmt* st2 = nullptr;
        if (sqlite3_prepare_v2(raw, "SELECT value FROM meta WHERE key='schema_version'", -1, &st2,
                               nullptr) == SQLITE_OK &&
            sqlite3_step(st2) == SQLITE_ROW)
            ours = true;
        sqlite3_finalize(st2);
        // A database with no table at all holds nothing to lose: one that another
        // connection of ours has just created (its first pragma writes the header, the
        // schema comes next), as when a folder is removed and added again at once.
        st2 = nullptr;
        if (!ours &&
            sqlite3_prepare_v2(raw, "SELECT count(*) FROM sqlite_master", -1, &st2, nullptr) ==
                SQLITE_OK &&
            sqlite3_step(st2) == SQLITE_ROW && sqlite3_column_int64(st2, 0) == 0)
            ours = true;
        sqlite3_finalize(st2);
    }
    sqlite3_close(raw);
    return ours;
}

std::unique_ptr<Store> Store::open(const std::string& path, std::string* error,
                                   StoreOptions options) {
    auto warn = [&](const std::string& m) {
        if (options.warn) options.warn(m);
    };
    // Never overwrite what is not ours: `--db notes.txt` or the index.db setting pointing at
    // a user's file must be an error, not a rebuild.
    if (!options.read_only && !is_latent_index(path)) {
        if (error)
            *error = path +
                     " exists and is not a Latent index; refusing to overwrite it "
                     "(choose another path, or delete it yourself)";
        return nullptr;
    }
    for (int attempt = 0; attempt < 2; ++attempt) {
        std::unique_ptr<Store> s(new Store());
        s->path_ = path;
        sqlite3* raw = nullptr;
        const int flags =
            options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
        const int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
        s->db_.reset(raw);
        if (rc != SQLITE_OK) {
            if (error) *error = "cannot open " + path + ": " + errmsg(raw);
            return nullptr;
        }
        std::string problem;  // non-empty: corrupt, rebuild
        try {
            sqlite3_busy_timeout(raw, 5000);  // waits out another writer's commit
            exec_on(raw, "PRAGMA foreign_keys=ON");
            // Reads through the page cache without a copy per page; 1 GiB of address
            // space covers the largest index we expect (a few hundred MB).
            exec_on(raw, "PRAGMA mmap_size=1073741824");
            if (!options.read_only) {
                exec_on(raw, "PRAGMA journal_mode=WAL");
                // WAL + NORMAL: a crash loses at most the last commits, never consistency.
                exec_on(raw, "PRAGMA synchronous=NORMAL");
                exec_on(raw, "PRAGMA temp_store=MEMORY");
            }
            exec_on(raw, "PRAGMA cache_size=-32768");  // 32 MiB per connection
            if (options.check) {
                Statement qc = s->prepare("PRAGMA quick_check(1)");
                if (qc.step() && qc.text(0) != "ok") problem = qc.text(0);
            }
        } catch (const StoreError& e) {
            problem = e.what();
        }
        if (problem.empty()) {
            try {
                std::optional<int> version;
                {
                    Statement t = s->prepare(
                        "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'");
                    t.step();
                    if (t.int64(0) > 0) {
                        auto v = s->meta("schema_version");
                        version = v ? std::atoi(v->c_str()) : -1;
                    }
                }
                Statement any = s->prepare("SELECT count(*) FROM sqlite_master");
                any.step();
                const bool empty = any.int64(0) == 0;
                any.reset();  // a running statement would lock the tables a migration drops
                if (version == kSchemaVersion) {
                    if (!options.read_only)  // indexes from before the id get it now
                        exec_on(raw, kSetApplicationId.c_str());
                    s->prepare_writes();
                    return s;
                }
                if (version && *version >= 1 && *version < kSchemaVersion && !options.read_only) {
                    // An older index: migrated step by step, each step with its version.
                    for (int v = *version; v < kSchemaVersion; ++v) {
                        Transaction tx(raw);
                        exec_on(raw, kMigrations[v - 1]);
                        s->set_meta("schema_version", std::to_string(v + 1));
                        tx.commit();
                    }
                    exec_on(raw, kSetApplicationId.c_str());
                    s->prepare_writes();
                    return s;
                }
                if (options.read_only) {
                    if (error) *error = path + ": not an index of this version of latent";
                    return nullptr;
                }
                if (!empty) {
                    warn("index " + path + ": schema version " +
                         (version ? std::to_string(*version) : std::string("unknown")) +
                         " is not " + std::to_string(kSchemaVersion) + "; rebuilding the index");
                    s.reset();
                    remove_db_files(path);
                    continue;
                }
                exec_on(raw, kSetApplicationId.c_str());
                exec_on(raw, "BEGIN");
                exec_on(raw, kSchema);
                s->set_meta("schema_version", std::to_string(kSchemaVersion));
                exec_on(raw, "COMMIT");
                s->prepare_writes();
                return s;
            } catch (const StoreError& e) {
                problem = e.what();
            }
        }
        if (options.read_only) {
            if (error) *error = path + ": " + problem;
            return nullptr;
        }
        warn("index " + path + " is damaged (" + problem + "); rebuilding it");
        s.reset();
        remove_db_files(path);
    }
    if (error) *error = "cannot create a usable index at " + path;
    return nullptr;
}

void Store::prepare_writes() {
    if (sqlite3_db_readonly(db_.get(), "main") == 1) return;
    insert_file_ = prepare(
        "INSERT INTO files(path, language, size, mtime_ns, hash, flags) VALUES (?,?,?,?,?,?)");
    update_stat_ = prepare("UPDATE files SET size=?, mtime_ns=? WHERE path=?");
    find_file_ = prepare("SELECT id FROM files WHERE path=?");
    delete_file_ = prepare("DELETE FROM files WHERE id=?");
    delete_chunks_fts_ = prepare(
        "INSERT INTO chunks_fts(chunks_fts, rowid, name, text) "
        "SELECT 'delete', id, name, text FROM chunks WHERE file_id=?");
    delete_symbols_fts_ = prepare(
        "INSERT INTO symbols_fts(symbols_fts, rowid, name) "
        "SELECT 'delete', id, name FROM symbols WHERE file_id=?");
    insert_symbol_ = prepare(
        "INSERT INTO symbols(file_id, name, kind, container, start_line, start_col, end_line, "
        "end_col, start_byte, end_byte, name_line, name_col, signature, doc) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    insert_symbol_fts_ = prepare("INSERT INTO symbols_fts(rowid, name) VALUES (?,?)");
    insert_ref_ = prepare("INSERT INTO refs(file_id, line, n, uses) VALUES (?,?,?,?)");
    insert_import_ = prepare("INSERT INTO imports(file_id, line, text) VALUES (?,?,?)");
    insert_chunk_ = prepare(
        "INSERT INTO chunks(file_id, kind, name, start_line, end_line, start_byte, end_byte, "
        "text) VALUES (?,?,?,?,?,?,?,?)");
    insert_chunk_fts_ = prepare("INSERT INTO chunks_fts(rowid, name, text) VALUES (?,?,?)");
}

// The FTS rows go first (external content: FTS5 needs the old text to delete), then the
// file row, whose deletion cascades to its other rows.
void Store::delete_file(std::string_view path) {
    find_file_.reset();
    find_file_.bind(1, path);
    if (!find_file_.step()) return;
    const int64_t id = find_file_.int64(0);
    find_file_.reset();
    delete_chunks_fts_.reset();
    delete_chunks_fts_.bind(1, id).step();
    delete_symbols_fts_.reset();
    delete_symbols_fts_.bind(1, id).step();
    delete_file_.reset();
    delete_file_.bind(1, id).step();
}

Statement Store::prepare(std::string_view sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_.get(), sql.data(), static_cast<int>(sql.size()), &st, nullptr) !=
        SQLITE_OK)
        throw StoreError(errmsg(db_.get()));
    return Statement(st);
}

Statement& Store::cached(const std::string& sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) it = cache_.emplace(sql, prepare(sql)).first;
    it->second.reset();
    return it->second;
}

void Store::exec(const char* sql) { exec_on(db_.get(), sql); }

void Store::write(const std::vector<FileUpdate>& updates) {
    if (updates.empty()) return;
    Transaction tx(db_.get());
    for (const auto& u : updates) {
        const FileRecord& f = u.file;
        if (u.stat_only) {
            update_stat_.reset();
            update_stat_.bind(1, f.size).bind(2, f.mtime_ns).bind(3, f.path).step();
            continue;
        }
        delete_file(f.path);
        insert_file_.reset();
        insert_file_.bind(1, f.path)
            .bind(2, f.language)
            .bind(3, f.size)
            .bind(4, f.mtime_ns)
            .bind(5, static_cast<int64_t>(f.hash))
            .bind(6, int64_t{f.flags})
            .step();
        const int64_t id = sqlite3_last_insert_rowid(db_.get());
        const Extraction& x = u.extraction;
        for (const auto& d : x.definitions) {
            auto& s = insert_symbol_;
            s.reset();
            s.bind(1, id).bind(2, d.name).bind(3, d.kind).bind(4, d.container);
            s.bind(5, int64_t{d.range.start.line}).bind(6, int64_t{d.range.start.column});
            s.bind(7, int64_t{d.range.end.line}).bind(8, int64_t{d.range.end.column});
            s.bind(9, int64_t{d.range.start_byte}).bind(10, int64_t{d.range.end_byte});
            s.bind(11, int64_t{d.name_range.start.line});
            s.bind(12, int64_t{d.name_range.start.column});
            s.bind(13, d.signature).bind(14, d.doc).step();
            insert_symbol_fts_.reset();
            insert_symbol_fts_.bind(1, sqlite3_last_insert_rowid(db_.get())).bind(2, d.name).step();
        }
        // One row per line, uses by column.
        order_.resize(x.references.size());
        for (size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<uint32_t>(i);
        std::stable_sort(order_.begin(), order_.end(), [&](uint32_t a, uint32_t b) {
            const Point& pa = x.references[a].position;
            const Point& pb = x.references[b].position;
            return std::pair(pa.line, pa.column) < std::pair(pb.line, pb.column);
        });
        std::string uses;
        int64_t n = 0;
        for (size_t i = 0; i < order_.size(); ++i) {
            const Reference& r = x.references[order_[i]];
            if (!uses.empty()) uses += '\n';
            uses += std::to_string(r.position.column);
            uses += ' ';
            uses += r.name;
            ++n;
            if (i + 1 == order_.size() ||
                x.references[order_[i + 1]].position.line != r.position.line) {
                insert_ref_.reset();
                insert_ref_.bind(1, id).bind(2, int64_t{r.position.line}).bind(3, n).bind(4, uses);
                insert_ref_.step();
                uses.clear();
                n = 0;
            }
        }
        for (const auto& i : x.imports) {
            insert_import_.reset();
            insert_import_.bind(1, id).bind(2, int64_t{i.line}).bind(3, i.text).step();
        }
        const std::string_view text = u.text;
        for (const auto& c : x.chunks) {
            const uint32_t b = std::min<uint32_t>(c.range.start_byte, text.size());
            const uint32_t e = std::min<uint32_t>(c.range.end_byte, text.size());
            auto& s = insert_chunk_;
            s.reset();
            s.bind(1, id).bind(2, c.kind).bind(3, c.name);
            s.bind(4, int64_t{c.range.start.line}).bind(5, int64_t{c.range.end.line});
            s.bind(6, int64_t{b}).bind(7, int64_t{e}).bind(8, text.substr(b, e - b)).step();
            insert_chunk_fts_.reset();
            insert_chunk_fts_.bind(1, sqlite3_last_insert_rowid(db_.get()))
                .bind(2, c.name)
                .bind(3, text.substr(b, e - b))
                .step();
        }
    }
    tx.commit();
}

void Store::remove(const std::vector<std::string>& paths) {
    if (paths.empty()) return;
    Transaction tx(db_.get());
    for (const auto& p : paths) delete_file(p);
    tx.commit();
}

namespace {
FileRecord read_file_row(const Statement& s) {
    FileRecord f;
    f.id = s.int64(0);
    f.path = s.text(1);
    f.language = s.text(2);
    f.size = s.int64(3);
    f.mtime_ns = s.int64(4);
    f.hash = static_cast<uint64_t>(s.int64(5));
    f.flags = static_cast<int>(s.int64(6));
    return f;
}
}  // namespace

std::vector<FileRecord> Store::files() {
    std::vector<FileRecord> out;
    Statement s =
        prepare("SELECT id, path, language, size, mtime_ns, hash, flags FROM files ORDER BY path");
    while (s.step()) out.push_back(read_file_row(s));
    return out;
}

std::optional<FileRecord> Store::file(std::string_view path) {
    Statement& s =
        cached("SELECT id, path, language, size, mtime_ns, hash, flags FROM files WHERE path=?");
    s.bind(1, path);
    if (!s.step()) return std::nullopt;
    FileRecord f = read_file_row(s);
    s.reset();
    return f;
}

std::optional<std::string> Store::meta(std::string_view key) {
    Statement s = prepare("SELECT value FROM meta WHERE key=?");
    s.bind(1, key);
    if (!s.step()) return std::nullopt;
    return s.text(0);
}

void Store::set_meta(std::string_view key, std::string_view value) {
    Statement s = prepare("INSERT OR REPLACE INTO meta(key, value) VALUES (?,?)");
    s.bind(1, key).bind(2, value).step();
}

Store::Counts Store::counts() {
    Counts c;
    Statement s = prepare(
        "SELECT (SELECT count(*) FROM files), (SELECT count(*) FROM symbols), "
        "(SELECT ifnull(sum(n), 0) FROM refs), "
        "(SELECT count(*) FROM chunks)");
    if (s.step()) c = {s.int64(0), s.int64(1), s.int64(2), s.int64(3)};
    return c;
}

}  // namespace latent::index
