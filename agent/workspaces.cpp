// Workspaces (see workspaces.h).
#include "agent/workspaces.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "agent/documents.h"

namespace latent::agent {

namespace fs = std::filesystem;

std::string real_path(const std::string& path) {
    if (path.empty() || path[0] != '/') return "";
    if (char* r = ::realpath(path.c_str(), nullptr)) {
        std::string out(r);
        std::free(r);
        return out;
    }
    // A file that is gone (a deletion event) or not yet saved: its folder must exist.
    const fs::path p(path);
    const std::string name = p.filename().string();
    if (name.empty() || name == "." || name == "..") return "";
    char* dir = ::realpath(p.parent_path().c_str(), nullptr);
    if (!dir) return "";
    std::string out(dir);
    std::free(dir);
    return out == "/" ? "/" + name : out + "/" + name;
}

bool path_within(std::string_view root, std::string_view path) {
    if (root.empty() || path.size() < root.size() || path.compare(0, root.size(), root) != 0)
        return false;
    return path.size() == root.size() || root.back() == '/' || path[root.size()] == '/';
}

Workspaces::Workspaces(WorkspacesOptions options) : options_(std::move(options)) {
    reaper_ = std::thread([this] { reap_loop(); });
}

Workspaces::~Workspaces() {
    std::vector<std::shared_ptr<WorkspaceIndex>> left;
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
        left.swap(indexes_);
    }
    for (auto& ix : left) ix->cancel();  // all at once, then joined one by one
    left.clear();
    reap_cv_.notify_all();
    reaper_.join();
}

namespace {
// The folder a URI names: its real path when it exists, else the lexical path.
std::string folder_path(const std::string& uri) {
    const std::string path = uri_to_path(uri);
    if (path.empty()) return "";
    const std::string real = real_path(path);
    return real.empty() ? path : real;
}
}  // namespace

void Workspaces::set_folders(const std::vector<std::string>& uris) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& ix : indexes_) retire(std::move(ix));
    indexes_.clear();
    folders_.clear();
    for (const auto& uri : uris)
        if (auto f = folder_path(uri);
            !f.empty() && std::find(folders_.begin(), folders_.end(), f) == folders_.end())
            folders_.push_back(f);
}

void Workspaces::add_folder(const std::string& uri) {
    const std::string f = folder_path(uri);
    if (f.empty()) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (std::find(folders_.begin(), folders_.end(), f) == folders_.end()) folders_.push_back(f);
}

void Workspaces::remove_folder(const std::string& uri) {
    const std::string f = folder_path(uri);
    std::lock_guard<std::mutex> lock(mu_);
    std::erase(folders_, f);
    for (auto it = indexes_.begin(); it != indexes_.end();) {
        if ((*it)->root() == f) {
            retire(std::move(*it));
            it = indexes_.erase(it);
        } else {
            ++it;
        }
    }
}

void Workspaces::retire(std::shared_ptr<WorkspaceIndex> index) {
    index->cancel();
    retired_.push_back(std::move(index));
    reap_cv_.notify_all();
}

void Workspaces::reap_loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
        reap_cv_.wait(lock, [this] { return stopping_ || !retired_.empty(); });
        while (!retired_.empty()) {
            auto ix = std::move(retired_.front());
            retired_.pop_front();
            lock.unlock();
            ix.reset();  // joins its thread (cancelled: it stops at its next file)
            lock.lock();
        }
        if (stopping_) return;
    }
}

std::vector<std::string> Workspaces::folders() const {
    std::lock_guard<std::mutex> lock(mu_);
    return folders_;
}

void Workspaces::set_settings(const Settings& settings) {
    std::lock_guard<std::mutex> lock(mu_);
    settings_ = settings;
}

void Workspaces::start_indexing() {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || !settings_.index) return;
    for (const auto& folder : folders_) {
        bool has = false;
        for (const auto& ix : indexes_) has = has || ix->root() == folder;
        std::error_code e;
        if (has || !fs::is_directory(folder, e)) continue;
        WorkspaceIndexOptions o;
        o.root = folder;
        if (!settings_.index_db.empty() && folders_.size() == 1) o.db = settings_.index_db;
        o.exclude = settings_.exclude;
        o.log = options_.log;
        if (options_.report) {
            // The report is made on the index thread, when the pass first reports.
            struct Lazy {
                std::function<IndexReport(const std::string&)> make;
                std::string root;
                std::optional<IndexReport> report;
                IndexReport& get() {
                    if (!report) report = make(root);
                    return *report;
                }
            };
            auto lazy = std::make_shared<Lazy>(Lazy{options_.report, folder, std::nullopt});
            o.progress = [lazy](size_t done, size_t total) {
                if (auto& r = lazy->get(); r.progress) r.progress(done, total);
            };
            o.done = [lazy](const std::string& summary) {
                if (auto& r = lazy->get(); r.done) r.done(summary);
            };
        }
        auto ix = std::make_shared<WorkspaceIndex>(std::move(o));
        ix->start();
        indexes_.push_back(std::move(ix));
    }
}

std::string Workspaces::resolve(std::string_view uri) const {
    const std::string real = real_path(uri_to_path(uri));
    if (real.empty()) return "";
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& f : folders_)
        if (path_within(f, real)) return real;
    return "";
}

std::shared_ptr<WorkspaceIndex> Workspaces::index_for(const std::string& real) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::shared_ptr<WorkspaceIndex> best;
    for (const auto& ix : indexes_)
        if (path_within(ix->root(), real) && real != ix->root() &&
            (!best || ix->root().size() > best->root().size()))
            best = ix;
    return best;
}

std::vector<std::shared_ptr<WorkspaceIndex>> Workspaces::indexes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return indexes_;
}

std::string Workspaces::shown_path(const std::string& real) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string best;
    for (const auto& f : folders_)
        if (path_within(f, real) && real.size() > f.size() && f.size() > best.size()) best = f;
    if (best.empty()) return real;
    return real.substr(best.size() + (best.back() == '/' ? 0 : 1));
}

nlohmann::json Workspaces::stats() const {
    std::vector<std::shared_ptr<WorkspaceIndex>> indexes;
    {
        std::lock_guard<std::mutex> lock(mu_);
        indexes = indexes_;
    }
    nlohmann::json out = nlohmann::json::array();
    for (const auto& ix : indexes) out.push_back(ix->stats());
    return out;
}

}  // namespace latent::agent
