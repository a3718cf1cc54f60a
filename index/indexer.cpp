// The indexer: listing through git (spawned without a shell), a work queue of files for
// the parser threads and a bounded queue of results for the one writer.
#include "index/indexer.h"

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

extern char** environ;

namespace latent::index {
namespace {

// Skipped at any depth unless a caller turns default_excludes off.
constexpr const char* kDefaultExcludes[] = {
    ".git/",    "node_modules/",  "vendor/",   "third_party/", "third-party/", "build/",
    "build-*/", "cmake-build-*/", "dist/",     "out/",         "target/",      ".venv/",
    "venv/",    "__pycache__/",   ".cache/",   ".tox/",        "bazel-*/",     ".idea/",
    ".gradle/", ".next/",         "coverage/", "*.min.js"};

struct Fd {
    int fd = -1;
    explicit Fd(int f = -1) : fd(f) {}
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

std::vector<std::string> split_nul(const std::string& s) {
    std::vector<std::string> out;
    size_t b = 0;
    while (b < s.size()) {
        size_t e = s.find('\0', b);
        if (e == std::string::npos) e = s.size();
        if (e > b) out.emplace_back(s, b, e - b);
        b = e + 1;
    }
    return out;
}

bool glob_match(std::string_view pat, std::string_view s) {
    // Only "prefix*suffix" shapes occur in kDefaultExcludes.
    const auto star = pat.find('*');
    if (star == std::string_view::npos) return pat == s;
    const auto pre = pat.substr(0, star), suf = pat.substr(star + 1);
    return s.size() >= pre.size() + suf.size() && s.substr(0, pre.size()) == pre &&
           s.substr(s.size() - suf.size()) == suf;
}

// Without git: a walk that never follows symlinks (so no loops), honouring only the
// default excludes.
void walk(const std::string& root, const std::string& rel, bool excludes, int depth,
          std::vector<std::string>& out) {
    if (depth > 64) return;  // deeper than any real tree; guards against odd mounts
    DIR* d = ::opendir((root + "/" + rel).c_str());
    if (!d) return;
    while (dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        const std::string path = rel.empty() ? name : rel + "/" + name;
        struct stat st {};
        if (::lstat((root + "/" + path).c_str(), &st) != 0) continue;
        bool skip = false;
        if (excludes) {
            for (std::string_view p : kDefaultExcludes) {
                const bool dir_pat = p.back() == '/';
                if (dir_pat != S_ISDIR(st.st_mode)) continue;
                if (glob_match(dir_pat ? p.substr(0, p.size() - 1) : p, name)) skip = true;
            }
        }
        if (skip) continue;
        if (S_ISDIR(st.st_mode))
            walk(root, path, excludes, depth + 1, out);
        else if (S_ISREG(st.st_mode))
            out.push_back(path);
    }
    ::closedir(d);
}

int64_t mtime_ns(const struct stat& st) {
    return int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// Reads at most `cap` + 1 bytes (so the caller sees "too large").
std::optional<std::string> read_file(const std::string& path, uint64_t cap) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (fd.fd < 0) return std::nullopt;
    std::string data;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(fd.fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::nullopt;
        if (n == 0) break;
        data.append(buf, static_cast<size_t>(n));
        if (data.size() > cap) break;
    }
    return data;
}

bool looks_binary(std::string_view data) {
    return std::memchr(data.data(), '\0', std::min<size_t>(data.size(), 8192)) != nullptr;
}

}  // namespace

bool looks_minified(std::string_view data) {
    if (data.size() < kMinifiedMinBytes) return false;
    const size_t lines = static_cast<size_t>(std::count(data.begin(), data.end(), '\n')) + 1;
    return data.size() / lines > kMinifiedLineBytes;
}

namespace {

struct Work {
    std::string path;  // relative
    const Language* language = nullptr;
    struct stat st {};
    std::optional<FileRecord> old;
};

// Parses one file into an update; nullopt with `skip` set when it must not be indexed.
std::optional<FileUpdate> prepare_update(const std::string& root, const Work& w,
                                         std::optional<std::string_view> content,
                                         const IndexerOptions& o, Extractor& ex, bool* skip) {
    *skip = false;
    std::string data;
    if (content) {
        data.assign(content->substr(0, std::min<size_t>(content->size(), o.max_file_bytes + 1)));
    } else {
        auto d = read_file(root + "/" + w.path, o.max_file_bytes);
        if (!d) {
            *skip = true;
            return std::nullopt;
        }
        data = std::move(*d);
    }
    if (data.size() > o.max_file_bytes || looks_binary(data) ||
        (o.skip_minified && looks_minified(data))) {
        *skip = true;
        return std::nullopt;
    }
    FileUpdate u;
    u.file.path = w.path;
    u.file.language = std::string(w.language->name);
    u.file.size = static_cast<int64_t>(data.size());
    u.file.mtime_ns = mtime_ns(w.st);
    u.file.hash = content_hash(data);
    if (w.old && w.old->hash == u.file.hash && w.old->language == u.file.language) {
        u.stat_only = true;
        return u;
    }
    u.extraction = ex.extract(*w.language, data);
    u.file.flags = (u.extraction.timed_out ? 1 : 0) | (u.extraction.has_errors ? 2 : 0);
    u.text = std::move(data);
    return u;
}

}  // namespace

// Output is capped at 1 GiB (a listing of a few million paths), beyond which something
// is wrong.
std::optional<std::string> run_program(const std::vector<std::string>& args,
                                       const std::string& input) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    return run_program(args, input, env);
}

std::optional<std::string> run_git(const std::vector<std::string>& args) {
    // A repository's own config may name programs that git runs: core.fsmonitor (run by
    // ls-files), core.pager, diff drivers. Overridden on the command line, which wins.
    std::vector<std::string> argv = {"git",
                                     "-c",
                                     "core.fsmonitor=false",
                                     "-c",
                                     "core.untrackedCache=false",
                                     "-c",
                                     "core.pager=cat",
                                     "-c",
                                     "core.hooksPath=/dev/null",
                                     "--no-pager"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> env = {"GIT_OPTIONAL_LOCKS=0", "GIT_TERMINAL_PROMPT=0",
                                    "GIT_PAGER=cat", "PAGER=cat", "LC_ALL=C"};
    // Only what finds git and the user's own (trusted) global config.
    for (const char* keep : {"PATH", "HOME", "XDG_CONFIG_HOME"})
        if (const char* v = std::getenv(keep)) env.push_back(std::string(keep) + "=" + v);
    return run_program(argv, {}, env);
}

std::optional<std::string> run_program(const std::vector<std::string>& args,
                                       const std::string& input,
                                       const std::vector<std::string>& env) {
    int out[2], in[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return std::nullopt;
    Fd out_r(out[0]), out_w(out[1]);
    if (::pipe2(in, O_CLOEXEC) != 0) return std::nullopt;
    Fd in_r(in[0]), in_w(in[1]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_r.fd, 0);
    posix_spawn_file_actions_adddup2(&fa, out_w.fd, 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return std::nullopt;
    ::close(out_w.fd);
    out_w.fd = -1;
    ::close(in_r.fd);
    in_r.fd = -1;
    std::thread writer([&] {
        size_t off = 0;
        while (off < input.size()) {
            const ssize_t n = ::write(in_w.fd, input.data() + off, input.size() - off);
            if (n <= 0) break;
            off += static_cast<size_t>(n);
        }
        ::close(in_w.fd);
        in_w.fd = -1;
    });
    std::string result;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(out_r.fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (result.size() < (size_t{1} << 30)) result.append(buf, static_cast<size_t>(n));
    }
    writer.join();
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
    return result;
}

uint64_t content_hash(std::string_view data) {
    constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
    uint64_t h = 0x243F6A8885A308D3ull ^ (data.size() * kMul);
    size_t i = 0;
    for (; i + 8 <= data.size(); i += 8) {
        uint64_t w;
        std::memcpy(&w, data.data() + i, 8);
        h = (h ^ w) * kMul;
        h ^= h >> 31;
    }
    uint64_t tail = 0;
    std::memcpy(&tail, data.data() + i, data.size() - i);
    h = (h ^ tail) * kMul;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
}

std::vector<std::string> list_workspace_files(const std::string& root, bool default_excludes,
                                              std::string* how) {
    std::vector<std::string> excludes;
    const bool has_latentignore = ::access((root + "/.latentignore").c_str(), R_OK) == 0;
    if (has_latentignore) excludes.push_back("--exclude-from=" + root + "/.latentignore");
    if (default_excludes)
        for (const char* p : kDefaultExcludes) excludes.push_back(std::string("--exclude=") + p);

    std::vector<std::string> files;
    const auto inside = run_git({"-C", root, "rev-parse", "--is-inside-work-tree"});
    // An ignored folder inside a work tree (say node_modules) lists nothing through
    // ls-files; it is indexed as a plain folder.
    const bool ignored_root =
        inside && run_git({"-C", root, "check-ignore", "-q", "."}).has_value();
    if (inside && inside->rfind("true", 0) == 0 && !ignored_root) {
        std::vector<std::string> args = {"-C", root, "ls-files", "-co", "--exclude-standard", "-z"};
        args.insert(args.end(), excludes.begin(), excludes.end());
        if (auto out = run_git(args)) {
            files = split_nul(*out);
            // Tracked files are listed whatever the excludes; drop those they match.
            if (!excludes.empty()) {
                std::vector<std::string> ign = {"-C", root, "ls-files", "-ci", "-z"};
                ign.insert(ign.end(), excludes.begin(), excludes.end());
                if (auto o2 = run_git(ign)) {
                    auto drop = split_nul(*o2);
                    std::unordered_set<std::string> d(drop.begin(), drop.end());
                    std::erase_if(files, [&](const std::string& f) { return d.count(f) > 0; });
                }
            }
            if (how) *how = "git ls-files";
        }
    } else {
        // Not a work tree: git's matcher (per-directory .gitignore too) over a scratch
        // empty repository whose work tree is the folder.
        bool listed = false;
        char tmpl[] = "/tmp/latent-git-XXXXXX";
        if (const char* dir = ::mkdtemp(tmpl)) {
            const std::string gitdir = std::string(dir) + "/g";
            if (run_git({"init", "-q", "--bare", "--template=", gitdir})) {
                std::vector<std::string> args = {"--git-dir=" + gitdir,
                                                 "--work-tree=.",
                                                 "-C",
                                                 root,
                                                 "ls-files",
                                                 "-o",
                                                 "-z",
                                                 "--exclude-per-directory=.gitignore"};
                args.insert(args.end(), excludes.begin(), excludes.end());
                if (auto out = run_git(args)) {
                    files = split_nul(*out);
                    listed = true;
                    if (how) *how = "git ls-files (no repository)";
                }
            }
            std::error_code ec;
            std::filesystem::remove_all(dir, ec);
        }
        if (!listed) {
            walk(root, "", default_excludes, 0, files);
            if (how) *how = "directory walk (git not found)";
        }
    }
    std::erase_if(files, [](const std::string& f) { return language_for_path(f) == nullptr; });
    std::sort(files.begin(), files.end());
    files.erase(std::unique(files.begin(), files.end()), files.end());
    return files;
}

Indexer::Indexer(std::string root, Store& store, IndexerOptions options)
    : root_(std::move(root)), store_(store), options_(std::move(options)) {
    while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
    if (options_.threads == 0xffffffffu)
        options_.threads = std::max(1u, std::thread::hardware_concurrency());
}

std::string Indexer::relative(std::string_view path) const {
    std::string p(path);
    if (p.size() > root_.size() && p.compare(0, root_.size(), root_) == 0 && p[root_.size()] == '/')
        p = p.substr(root_.size() + 1);
    return p;
}

IndexStats Indexer::index_all() {
    IndexStats stats;
    const auto listed = list_workspace_files(root_, options_.default_excludes);
    std::unordered_map<std::string, FileRecord> stored;
    for (auto& f : store_.files()) stored.emplace(f.path, std::move(f));
    if (store_.meta("root") != root_) store_.set_meta("root", root_);

    std::vector<Work> work;
    std::unordered_set<std::string> keep;
    for (const auto& path : listed) {
        if (options_.skip_path && options_.skip_path(path)) {
            ++stats.skipped;  // excluded by the caller: never read, gone from the index
            continue;
        }
        Work w;
        w.path = path;
        w.language = language_for_path(path);
        if (::lstat((root_ + "/" + path).c_str(), &w.st) != 0 || !S_ISREG(w.st.st_mode) ||
            static_cast<uint64_t>(w.st.st_size) > options_.max_file_bytes) {
            ++stats.skipped;  // gone, a symlink (never followed: no loops), or too large
            continue;
        }
        ++stats.listed;
        auto it = stored.find(path);
        if (it != stored.end()) {
            if (it->second.size == w.st.st_size && it->second.mtime_ns == mtime_ns(w.st) &&
                it->second.language == w.language->name) {
                keep.insert(path);
                ++stats.unchanged;
                continue;
            }
            w.old = it->second;
        }
        keep.insert(path);
        work.push_back(std::move(w));
    }
    std::vector<std::string> vanished;
    for (const auto& [path, rec] : stored)
        if (!keep.count(path)) vanished.push_back(path);
    std::sort(vanished.begin(), vanished.end());

    const size_t total = work.size();
    std::mutex mu;
    std::condition_variable cv_space, cv_items;
    std::deque<std::optional<FileUpdate>> queue;  // nullopt: a skipped file (progress only)
    std::vector<std::string> skipped_paths;
    // Bounds memory (each item holds a file's text and extraction) yet holds more than a
    // batch: while the writer commits one batch the parsers fill the next instead of
    // waiting for it.
    const size_t queue_cap = std::max<size_t>(64, 2 * options_.batch_files);
    constexpr size_t kQueueBytes = size_t{96} << 20;
    size_t queued_bytes = 0;
    auto bytes_of = [](const std::optional<FileUpdate>& u) {
        return u && !u->stat_only ? u->text.size() : 0;
    };
    std::atomic<size_t> next{0};
    size_t producers_left = options_.threads;
    std::atomic<uint64_t> bytes{0};
    std::atomic<size_t> timeouts{0};

    std::atomic<bool> stop{false};
    auto produce = [&](Extractor& ex) -> bool {  // false when no work is left
        if (options_.cancelled && options_.cancelled()) {
            stop = true;
            return false;
        }
        const size_t i = next.fetch_add(1);
        if (i >= work.size()) return false;
        bool skip = false;
        std::optional<FileUpdate> u;
        try {
            u = prepare_update(root_, work[i], std::nullopt, options_, ex, &skip);
        } catch (const std::exception& e) {  // e.g. bad_alloc on one file: skip it
            skip = true;
        }
        if (u && !u->stat_only) {
            bytes += u->text.size();
            if (u->extraction.timed_out) {
                ++timeouts;
                if (options_.warn) options_.warn(work[i].path + ": parse timed out");
            }
        }
        std::unique_lock lock(mu);
        if (skip) skipped_paths.push_back(work[i].path);
        cv_space.wait(lock, [&] {
            return queue.empty() || (queue.size() < queue_cap && queued_bytes < kQueueBytes);
        });
        queued_bytes += bytes_of(u);
        queue.push_back(std::move(u));
        cv_items.notify_one();
        return true;
    };

    size_t done = 0;
    std::vector<FileUpdate> batch;
    auto flush = [&] {
        store_.write(batch);
        batch.clear();
        if (options_.progress) options_.progress(done, total);
    };
    auto consume = [&](std::optional<FileUpdate> u) {
        ++done;
        if (u) {
            if (!u->stat_only)
                ++stats.parsed;
            else
                ++stats.unchanged;
            batch.push_back(std::move(*u));
        }
        if (batch.size() >= options_.batch_files) flush();
    };

    auto pop = [&] {  // with mu held
        auto u = std::move(queue.front());
        queue.pop_front();
        queued_bytes -= bytes_of(u);
        return u;
    };
    if (options_.threads == 0) {
        Extractor ex(options_.extract);
        while (produce(ex)) {
            std::unique_lock lock(mu);
            auto u = pop();
            lock.unlock();
            consume(std::move(u));
        }
    } else {
        std::vector<std::thread> workers;
        for (unsigned t = 0; t < options_.threads; ++t) {
            workers.emplace_back([&] {
                Extractor ex(options_.extract);
                while (produce(ex)) {
                }
                std::lock_guard lock(mu);
                --producers_left;
                cv_items.notify_all();
            });
        }
        // This thread is the one writer.
        std::exception_ptr failure;
        for (;;) {
            std::unique_lock lock(mu);
            cv_items.wait(lock, [&] { return !queue.empty() || producers_left == 0; });
            if (queue.empty()) break;
            auto u = pop();
            cv_space.notify_all();
            lock.unlock();
            if (failure || stop) continue;  // drain so the workers can finish
            if (options_.cancelled && options_.cancelled()) {
                stop = true;
                next = work.size();  // stop handing out work
                continue;
            }
            try {
                consume(std::move(u));
            } catch (...) {
                failure = std::current_exception();
                next = work.size();  // stop handing out work
            }
        }
        for (auto& t : workers) t.join();
        if (failure) std::rethrow_exception(failure);
    }
    if (!batch.empty() || total == 0) flush();
    if (stop) {  // what was written stays; removals wait for a whole pass
        stats.cancelled = true;
        stats.bytes = bytes;
        return stats;
    }

    vanished.insert(vanished.end(), skipped_paths.begin(), skipped_paths.end());
    stats.skipped += skipped_paths.size();
    store_.remove(vanished);
    stats.removed = vanished.size() - skipped_paths.size();
    stats.bytes = bytes;
    stats.timed_out = timeouts;
    return stats;
}

bool Indexer::update_file(std::string_view path, std::optional<std::string_view> content) {
    Work w;
    w.path = relative(path);
    w.language = language_for_path(w.path);
    if (!w.language) return false;
    if (options_.skip_path && options_.skip_path(w.path)) {
        remove_file(w.path);
        return false;
    }
    const std::string abs = root_ + "/" + w.path;
    if (::lstat(abs.c_str(), &w.st) != 0 || !S_ISREG(w.st.st_mode)) {
        if (!content) {
            remove_file(w.path);
            return false;
        }
        w.st = {};
    }
    w.old = store_.file(w.path);
    Extractor ex(options_.extract);
    bool skip = false;
    auto u = prepare_update(root_, w, content, options_, ex, &skip);
    if (!u) {
        remove_file(w.path);
        return false;
    }
    store_.write({std::move(*u)});
    return true;
}

void Indexer::remove_file(std::string_view path) { store_.remove({relative(path)}); }

}  // namespace latent::index
