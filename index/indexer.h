// The indexer: decides which workspace files to (re)parse and keeps the store in step —
// listing (git's ignore rules, .latentignore, default excludes), change detection by
// content hash, parsing on worker threads, writing on one writer thread. Not the
// extraction (extract.h) nor the SQL (sqlite_store.h).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "index/extract.h"
#include "index/sqlite_store.h"

namespace latent::index {

// What makes a file "minified" (IndexerOptions::skip_minified).
inline constexpr size_t kMinifiedMinBytes = 16 * 1024;
inline constexpr size_t kMinifiedLineBytes = 200;
bool looks_minified(std::string_view data);

struct IndexerOptions {
    // Parser threads; 0 parses on the calling thread (deterministic, for tests).
    // Default: the machine's hardware threads.
    unsigned threads = 0xffffffffu;
    // Files larger than this are skipped (generated or data files; they would dominate
    // time and the database). Default 1 MiB.
    uint64_t max_file_bytes = 1 << 20;
    // Minified or machine-written code (a bundle, emscripten output) is skipped too: a file
    // of at least kMinifiedMinBytes whose lines average more than kMinifiedLineBytes. Its
    // one-letter names and page-long lines are noise as context, and tree-sitter parses
    // such text at a fifth of its usual speed.
    bool skip_minified = true;
    // Files per write transaction: fewer commits go faster, smaller ones lose less to a
    // crash. Default 200.
    size_t batch_files = 200;
    // Folders skipped at any depth even when git does not ignore them (vendored code,
    // build output). Default: see kDefaultExcludes in indexer.cpp.
    bool default_excludes = true;
    // Workspace-relative paths for which this returns true are left out of the index
    // before anything is read (the editor's exclude globs); null: none.
    std::function<bool(const std::string& path)> skip_path;
    ExtractOptions extract;
    // Called as files are stored (from the writer thread): files done, files to do.
    std::function<void(size_t done, size_t total)> progress;
    // Problems that do not stop the run (an unreadable file, a parse timeout).
    std::function<void(const std::string&)> warn;
    // Polled between files (on every parser thread): true stops index_all() early — the
    // files already written stay, nothing is removed, IndexStats::cancelled says so. Lets
    // the owner drop a workspace folder without waiting for a whole pass. Null: never.
    std::function<bool()> cancelled;
};

struct IndexStats {
    size_t listed = 0;       // candidate source files found
    size_t parsed = 0;       // files (re)parsed and written
    size_t unchanged = 0;    // same size and mtime, or same content hash
    size_t removed = 0;      // vanished (or now skipped) files deleted from the index
    size_t skipped = 0;      // binary, too large, minified, unreadable, symlinks
    size_t timed_out = 0;    // parses abandoned at the time limit (indexed as line chunks)
    uint64_t bytes = 0;      // bytes of source parsed
    bool cancelled = false;  // IndexerOptions::cancelled stopped the pass
};

// Runs argv (no shell), feeding `input` on stdin and returning stdout (stderr is
// discarded); nullopt when the program is missing or exits non-zero.
std::optional<std::string> run_program(const std::vector<std::string>& args,
                                       const std::string& input = {});
// The same with exactly `env` ("NAME=value") as the child's environment.
std::optional<std::string> run_program(const std::vector<std::string>& args,
                                       const std::string& input,
                                       const std::vector<std::string>& env);

// Runs git on a folder the user may not trust: `git -c core.fsmonitor=false ... <args>` in
// a clean environment (no GIT_* from ours, no pager, no prompt, no optional locks), so
// nothing the folder's .git/config names — an fsmonitor hook, a pager — is executed and
// git writes nothing into the user's repository.
std::optional<std::string> run_git(const std::vector<std::string>& args);

// The 64-bit content hash stored per file (a fast multiply-mix hash, not cryptographic:
// it only has to notice edits; libxxhash-dev is not on the machines).
uint64_t content_hash(std::string_view data);

// Workspace source files relative to `root` ('/'-separated, sorted): `git ls-files` in a
// work tree (tracked + untracked, honouring .gitignore), git's matcher over a scratch
// repository elsewhere, a plain walk if git is missing; minus .latentignore (gitignore
// syntax) and the default excludes. Only files with a known language are returned.
// `how` (optional) says which method was used.
std::vector<std::string> list_workspace_files(const std::string& root, bool default_excludes,
                                              std::string* how = nullptr);

// Thread-safety: one Indexer per store; its methods must not run concurrently with
// each other (it starts and joins its own threads inside index_all).
class Indexer {
public:
    Indexer(std::string root, Store& store, IndexerOptions options = {});

    // Brings the index in step with the workspace. Never throws for a bad file;
    // throws StoreError when the database itself fails.
    IndexStats index_all();

    // Re-indexes one file now: from `content` when given (an editor's unsaved document),
    // else from disk (removing it from the index if it is gone or now skipped).
    // `path` is absolute or relative to the root. Returns false if it is not indexable.
    bool update_file(std::string_view path, std::optional<std::string_view> content = {});
    void remove_file(std::string_view path);

    const std::string& root() const { return root_; }

private:
    std::string root_;
    Store& store_;
    IndexerOptions options_;
    std::string relative(std::string_view path) const;
};

}  // namespace latent::index
