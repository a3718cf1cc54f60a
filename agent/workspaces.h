// Workspaces: the client's workspace folders and one index per folder — adding and
// removing folders (a removed folder's pass is cancelled, and the call returns at once),
// starting passes, and path containment: which files a client may make us read. Not the
// index itself (workspace_index.h, index/) and not prompts.
//
// Containment: a path from the client (a file event, a closed document) is read from disk
// only when its real path — symlinks and ".." resolved, "%2F" decoded before — lies inside
// the real path of a folder, compared by whole components ("/ws" does not contain
// "/ws2/x"). Documents the user opens are the editor's text and need no disk read.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/settings.h"
#include "agent/workspace_index.h"

namespace latent::agent {

// The real path of `path` (symlinks and ".." resolved; for a file that does not exist, its
// folder's real path and its name), or "" when neither exists or the name is "." or "..".
std::string real_path(const std::string& path);
// True when `path` is `root` or lies under it, by whole components (both real paths).
bool path_within(std::string_view root, std::string_view path);

// How an index pass reports to the user (LSP work-done progress in the server). Both are
// called on the index's thread, in order: progress(done, total)..., then done(summary).
struct IndexReport {
    std::function<void(size_t done, size_t total)> progress;
    std::function<void(const std::string& summary)> done;
};

struct WorkspacesOptions {
    // Made on the index's thread when a folder's first pass starts (it may wait on the
    // client, e.g. for window/workDoneProgress/create). Null: no reports.
    std::function<IndexReport(const std::string& root)> report;
    std::function<void(const std::string&)> log;
};

// Thread safety: every method may be called from any thread; none waits for an index pass.
class Workspaces {
public:
    explicit Workspaces(WorkspacesOptions options);
    ~Workspaces();  // cancels every pass and joins every index thread
    Workspaces(const Workspaces&) = delete;
    Workspaces& operator=(const Workspaces&) = delete;

    // Folder URIs (file:) from initialize or didChangeWorkspaceFolders. Folders that do not
    // exist are kept (they may appear) but never indexed until they do.
    void set_folders(const std::vector<std::string>& uris);
    void add_folder(const std::string& uri);
    // Cancels the folder's pass and forgets its index; returns at once (the index thread
    // ends on a thread of this class's own).
    void remove_folder(const std::string& uri);
    std::vector<std::string> folders() const;  // real paths

    // The settings for passes started from now on (index.enabled, index.exclude, index.db).
    void set_settings(const Settings& settings);
    // Starts a pass for every folder without an index (after `initialized`, and after
    // folders were added). Returns at once.
    void start_indexing();

    // The real path of a file: URI that lies in a folder, else "" (see the header comment).
    std::string resolve(std::string_view uri) const;
    // The index of the innermost folder holding `real` (a path from resolve()), or null.
    std::shared_ptr<WorkspaceIndex> index_for(const std::string& real) const;
    // Every folder's index (folders not yet indexed have none), in folder order.
    std::vector<std::shared_ptr<WorkspaceIndex>> indexes() const;
    // The path as the prompt shows it: folder-relative inside a folder, else as given.
    std::string shown_path(const std::string& real) const;
    nlohmann::json stats() const;

private:
    void retire(std::shared_ptr<WorkspaceIndex> index);  // with mu_ held
    void reap_loop();

    WorkspacesOptions options_;
    mutable std::mutex mu_;             // everything below
    std::vector<std::string> folders_;  // real paths, as the client named them when absent
    std::vector<std::shared_ptr<WorkspaceIndex>> indexes_;
    Settings settings_;
    bool stopping_ = false;
    // Removed folders' indexes, destroyed (threads joined) on reaper_ and not on the
    // caller's thread.
    std::deque<std::shared_ptr<WorkspaceIndex>> retired_;
    std::condition_variable reap_cv_;
    std::thread reaper_;
};

}  // namespace latent::agent
