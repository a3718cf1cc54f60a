// WorkspaceIndex (see workspace_index.h).
#include "agent/workspace_index.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "agent/glob.h"
#include "index/indexer.h"
#include "index/sqlite_store.h"

namespace latent::agent {

namespace fs = std::filesystem;

std::string default_index_db(const std::string& root) {
    std::string base;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
        base = x;
    } else if (const char* h = std::getenv("HOME"); h && *h) {
        base = std::string(h) + "/.cache";
    } else {
        base = "/tmp";
    }
    char name[32];
    std::snprintf(name, sizeof name, "%016llx",
                  static_cast<unsigned long long>(index::content_hash(root)));
    const fs::path dir = fs::path(base) / "latent" / "index";
    std::error_code ec;
    fs::create_directories(dir, ec);
    return (dir / (std::string(name) + ".sqlite")).string();
}

bool excluded(const std::string& path, const std::vector<std::string>& globs) {
    return glob_excludes(globs, path);
}

WorkspaceIndex::WorkspaceIndex(WorkspaceIndexOptions options) : options_(std::move(options)) {
    if (options_.db.empty()) options_.db = default_index_db(options_.root);
}

WorkspaceIndex::~WorkspaceIndex() {
    cancel();
    if (thread_.joinable()) thread_.join();
}

void WorkspaceIndex::cancel() {
    cancel_ = true;
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    idle_cv_.notify_all();
}

void WorkspaceIndex::note_change(const std::string& path) {
    ++generation_;
    if (path != newest_path_) {
        newest_other_ = generation_ - 1;
        newest_path_ = path;
    }
}

uint64_t WorkspaceIndex::generation() const {
    std::lock_guard<std::mutex> lock(mu_);
    return generation_;
}

uint64_t WorkspaceIndex::generation_except(const std::string& abs_path) const {
    std::lock_guard<std::mutex> lock(mu_);
    return abs_path == newest_path_ ? newest_other_ : generation_;
}

void WorkspaceIndex::start() {
    std::lock_guard<std::mutex> lock(mu_);
    if (thread_.joinable()) return;
    state_ = "indexing";
    thread_ = std::thread([this] { loop(); });
}

std::string WorkspaceIndex::relative(const std::string& abs_path) const {
    const std::string& r = options_.root;
    if (abs_path.size() > r.size() && abs_path.compare(0, r.size(), r) == 0 &&
        abs_path[r.size()] == '/')
        return abs_path.substr(r.size() + 1);
    return abs_path;
}

bool WorkspaceIndex::contains(const std::string& abs_path) const {
    return relative(abs_path) != abs_path;
}

void WorkspaceIndex::update(const std::string& abs_path, std::optional<std::string> content) {
    if (!contains(abs_path) || excluded(relative(abs_path), options_.exclude)) return;
    {
        std::lock_guard<std::mutex> lock(mu_);
        pending_[abs_path] = Pending{std::move(content), nullptr};
    }
    cv_.notify_all();
}

void WorkspaceIndex::update_open(const std::string& abs_path, Fetch fetch) {
    if (!contains(abs_path) || excluded(relative(abs_path), options_.exclude)) return;
    {
        std::lock_guard<std::mutex> lock(mu_);
        pending_[abs_path] = Pending{std::nullopt, std::move(fetch)};
    }
    cv_.notify_all();
}

void WorkspaceIndex::remove(const std::string& abs_path) {
    if (!contains(abs_path)) return;
    {
        std::lock_guard<std::mutex> lock(mu_);
        pending_.erase(abs_path);
        pending_removals_.push_back(abs_path);
    }
    cv_.notify_all();
}

std::unique_ptr<index::Store> WorkspaceIndex::open_store(std::string* error) const {
    index::StoreOptions so;
    so.check = false;  // the writer checked it at open
    so.warn = options_.log;
    return index::Store::open(options_.db, error, so);
}

void WorkspaceIndex::loop() {
    auto log = [&](const std::string& m) {
        if (options_.log) options_.log(m);
    };
    std::string err;
    index::StoreOptions so;
    so.warn = options_.log;
    std::unique_ptr<index::Store> store;
    std::unique_ptr<index::Indexer> indexer;
    try {
        store = index::Store::open(options_.db, &err, so);
        if (store) {
            index::IndexerOptions io;
            if (options_.threads > 0) io.threads = options_.threads;
            io.progress = options_.progress;
            io.warn = [](const std::string&) {};  // per-file problems: too many to log
            io.cancelled = [this] { return cancel_.load(); };
            if (!options_.exclude.empty())
                io.skip_path = [globs = options_.exclude](const std::string& path) {
                    return excluded(path, globs);
                };
            indexer = std::make_unique<index::Indexer>(options_.root, *store, io);
            const auto st = indexer->index_all();
            if (st.cancelled) {
                log("index " + options_.root + ": pass cancelled");
                if (options_.done) options_.done("cancelled");
                return;
            }
            const auto c = store->counts();
            {
                std::lock_guard<std::mutex> lock(mu_);
                state_ = "ready";
                files_ = c.files;
                symbols_ = c.symbols;
                note_change("");
            }
            char buf[200];
            std::snprintf(buf, sizeof buf, "%zu files (%zu parsed, %zu unchanged), %lld symbols",
                          st.listed, st.parsed, st.unchanged, static_cast<long long>(c.symbols));
            log("index " + options_.root + ": " + buf);
            if (options_.done) options_.done(buf);
        }
    } catch (const std::exception& e) {  // bad_alloc included: this folder fails, not us
        err = e.what();
        indexer.reset();
        store.reset();
    }
    if (!store) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            state_ = "failed";
            error_ = err;
        }
        idle_cv_.notify_all();
        log("error: index " + options_.root + ": " + err);
        if (options_.done) options_.done("failed: " + err);
        return;
    }
    while (true) {
        std::map<std::string, Pending> batch;
        std::vector<std::string> removals;
        {
            std::unique_lock<std::mutex> lock(mu_);
            if (pending_.empty() && pending_removals_.empty()) {
                busy_ = false;
                idle_cv_.notify_all();
            }
            cv_.wait(lock,
                     [&] { return stopping_ || !pending_.empty() || !pending_removals_.empty(); });
            if (stopping_) return;
            busy_ = true;
            batch.swap(pending_);
            removals.swap(pending_removals_);
        }
        try {
            for (const auto& p : removals) indexer->remove_file(p);
            for (auto& [path, p] : batch) {
                if (p.fetch) {
                    p.content = p.fetch();
                    if (!p.content) continue;
                }
                if (p.content)
                    indexer->update_file(path, std::string_view(*p.content));
                else
                    indexer->update_file(path);
            }
            const auto c = store->counts();
            std::lock_guard<std::mutex> lock(mu_);
            files_ = c.files;
            symbols_ = c.symbols;
            for (const auto& p : removals) note_change(p);
            for (const auto& [path, p] : batch) note_change(path);
        } catch (const std::exception& e) {
            log("error: index update: " + std::string(e.what()));
        }
    }
}

std::vector<ContextBlock> WorkspaceIndex::context_for(const std::string& abs_path, uint32_t line,
                                                      uint32_t column, size_t token_budget,
                                                      const index::ContextOptions& options) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (state_ != "ready") return {};
    }
    std::lock_guard<std::mutex> lock(read_mu_);
    std::vector<ContextBlock> out;
    try {
        if (!reader_) {
            std::string err;
            reader_ = open_store(&err);
            if (!reader_) return {};
            retrieval_ = std::make_unique<index::Retrieval>(*reader_);
        }
        for (auto& s :
             retrieval_->context_for(relative(abs_path), {line, column}, token_budget, options))
            out.push_back({s.path, s.start_line, s.end_line, std::move(s.text)});
    } catch (const std::exception& e) {
        if (options_.log) options_.log(std::string("context_for: ") + e.what());
    }
    return out;
}

std::vector<index::SymbolHit> WorkspaceIndex::definitions(const std::string& name, size_t limit) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (state_ != "ready") return {};
    }
    std::lock_guard<std::mutex> lock(read_mu_);
    try {
        if (!reader_) {
            std::string err;
            reader_ = open_store(&err);
            if (!reader_) return {};
            retrieval_ = std::make_unique<index::Retrieval>(*reader_);
        }
        return retrieval_->definitions(name, limit);
    } catch (const std::exception& e) {
        if (options_.log) options_.log(std::string("definitions: ") + e.what());
    }
    return {};
}

template <class R, class F>
R WorkspaceIndex::read(const char* what, F&& f) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (state_ != "ready") return R{};
    }
    std::lock_guard<std::mutex> lock(read_mu_);
    try {
        if (!reader_) {
            std::string err;
            reader_ = open_store(&err);
            if (!reader_) return R{};
            retrieval_ = std::make_unique<index::Retrieval>(*reader_);
        }
        return f(*retrieval_);
    } catch (const std::exception& e) {
        if (options_.log) options_.log(std::string(what) + ": " + e.what());
    }
    return R{};
}

std::vector<index::ChunkHit> WorkspaceIndex::search(std::string_view query, size_t k) {
    return read<std::vector<index::ChunkHit>>(
        "search", [&](index::Retrieval& r) { return r.search(query, k); });
}

std::vector<index::ReferenceHit> WorkspaceIndex::references(std::string_view name, size_t limit) {
    return read<std::vector<index::ReferenceHit>>(
        "references", [&](index::Retrieval& r) { return r.references(name, limit); });
}

std::vector<std::string> WorkspaceIndex::files_mentioning(std::string_view name, size_t limit) {
    return read<std::vector<std::string>>(
        "files_mentioning", [&](index::Retrieval& r) { return r.files_mentioning(name, limit); });
}

std::vector<std::string> WorkspaceIndex::files(std::string_view query, size_t limit) {
    return read<std::vector<std::string>>(
        "files", [&](index::Retrieval& r) { return r.files(query, limit); });
}

std::vector<index::SymbolHit> WorkspaceIndex::symbols(std::string_view query, size_t limit) {
    return read<std::vector<index::SymbolHit>>(
        "symbols", [&](index::Retrieval& r) { return r.symbols(query, limit); });
}

void WorkspaceIndex::block_until_idle_for_test() {
    std::unique_lock<std::mutex> lock(mu_);
    idle_cv_.wait(lock, [this] {
        return stopping_ || state_ == "failed" ||
               (!busy_ && pending_.empty() && pending_removals_.empty());
    });
}

nlohmann::json WorkspaceIndex::stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    nlohmann::json j = {{"root", options_.root},
                        {"state", state_},
                        {"files", files_},
                        {"symbols", symbols_},
                        {"db", options_.db}};
    if (!error_.empty()) j["error"] = error_;
    return j;
}

}  // namespace latent::agent
