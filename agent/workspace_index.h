// WorkspaceIndex: one workspace folder's index as the language server uses it — a
// background thread that indexes the folder, then applies file events and open
// documents' edits (coalesced per path), and a reader connection for retrieval. The
// indexing and retrieval themselves are index/'s; this file only owns threads and queues.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/completion.h"
#include "index/retrieval.h"

namespace latent::index {
class Store;
class Indexer;
}  // namespace latent::index

namespace latent::agent {

// $XDG_CACHE_HOME/latent/index/<hash of the folder>.sqlite (the same file `latent index`
// uses), or ~/.cache/..., never inside the user's repository.
std::string default_index_db(const std::string& root);

// True when the workspace-relative `path` or a folder it lies in matches one of the globs,
// with VS Code's meaning (glob.h).
bool excluded(const std::string& path, const std::vector<std::string>& globs);

struct WorkspaceIndexOptions {
    std::string root;  // absolute folder
    std::string db;    // database path; empty: default_index_db(root)
    std::vector<std::string> exclude;
    unsigned threads = 0;  // parser threads; 0: the indexer's default
    // Called from the index thread: (done, total) while indexing, then (total, total).
    std::function<void(size_t, size_t)> progress;
    // Called once when the first full pass ends (or fails), from the index thread.
    std::function<void(const std::string& summary)> done;
    std::function<void(const std::string&)> log;
};

// Thread safety: every public method may be called from any thread.
class WorkspaceIndex {
public:
    explicit WorkspaceIndex(WorkspaceIndexOptions options);
    ~WorkspaceIndex();  // cancel(), then joins the thread (a pass stops at its next file)

    // Stops a pass in progress at its next file and the thread after it; returns at once.
    void cancel();

    // Starts the background thread with a full pass.
    void start();
    // Queue a single-file update: from `content` (an open document) or from disk.
    void update(const std::string& abs_path, std::optional<std::string> content = {});
    // Queue an open document's update, its text read by `fetch` when the index thread gets
    // to it: a burst of keystrokes costs one copy of the document, not one per change.
    // `fetch` returning nullopt (the document closed meanwhile) skips it.
    using Fetch = std::function<std::optional<std::string>()>;
    void update_open(const std::string& abs_path, Fetch fetch);
    void remove(const std::string& abs_path);

    bool contains(const std::string& abs_path) const;
    std::string relative(const std::string& abs_path) const;
    const std::string& root() const { return options_.root; }

    // Retrieval on the reader connection (empty while the first pass has not finished).
    std::vector<ContextBlock> context_for(const std::string& abs_path, uint32_t line,
                                          uint32_t column, size_t token_budget,
                                          const index::ContextOptions& options = {});
    std::vector<index::SymbolHit> definitions(const std::string& name, size_t limit);
    // index::Retrieval's queries, on the same reader connection (see retrieval.h); paths
    // in the answers are relative to root(). Empty while the first pass has not
    // finished, or on an error (logged).
    std::vector<index::ChunkHit> search(std::string_view query, size_t k);
    std::vector<index::ReferenceHit> references(std::string_view name, size_t limit);
    std::vector<std::string> files_mentioning(std::string_view name, size_t limit);
    std::vector<std::string> files(std::string_view query, size_t limit);
    std::vector<index::SymbolHit> symbols(std::string_view query, size_t limit);
    // Bumped whenever the index changes: after each pass and for every file updated or
    // removed since (open documents' edits included).
    uint64_t generation() const;
    // The generation of the newest change to a file other than `abs_path`: what context
    // retrieved for `abs_path` depends on. Typing in a file leaves it alone, an edit to a
    // definition elsewhere moves it, so callers cache a file's context per this value.
    uint64_t generation_except(const std::string& abs_path) const;

    nlohmann::json stats() const;  // state, files, symbols, last error

    // Blocks until the first pass ended and no update is queued or running.
    void block_until_idle_for_test();

private:
    void loop();
    std::unique_ptr<index::Store> open_store(std::string* error) const;

    WorkspaceIndexOptions options_;
    std::thread thread_;

    mutable std::mutex mu_;  // queue and figures
    std::condition_variable cv_;
    bool stopping_ = false;
    struct Pending {
        std::optional<std::string> content;  // else from fetch, else from disk
        Fetch fetch;
    };
    std::map<std::string, Pending> pending_;  // path -> what to index
    std::vector<std::string> pending_removals_;
    std::string state_ = "idle";  // idle | indexing | ready | failed | off
    std::string error_;
    int64_t files_ = 0, symbols_ = 0;
    std::atomic<bool> cancel_{false};
    bool busy_ = true;  // a pass or a batch is running (or the thread has not started)
    std::condition_variable idle_cv_;
    // Changes, newest first: the generation and the path of the newest, and the generation
    // of the newest change to any other path (see generation_except).
    void note_change(const std::string& path);  // with mu_ held
    uint64_t generation_ = 0;
    std::string newest_path_;
    uint64_t newest_other_ = 0;

    std::mutex read_mu_;  // the reader connection
    std::unique_ptr<index::Store> reader_;
    std::unique_ptr<index::Retrieval> retrieval_;
    // Runs `f(retrieval)` under read_mu_ once the first pass is ready, opening the reader
    // on first use; an exception is logged as `what` and gives R{}.
    template <class R, class F>
    R read(const char* what, F&& f);
};

}  // namespace latent::agent
