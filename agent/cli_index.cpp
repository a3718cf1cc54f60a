// `latent index`, `latent search`, `latent symbols` and `latent bench index`: the
// workspace index from the command line. The index itself lives in index/; this file
// only parses options, picks the database location and prints.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "agent/commands.h"
#include "agent/scratch_dir.h"
#include "index/indexer.h"
#include "index/retrieval.h"
#include "index/sqlite_store.h"

namespace latent::agent {
namespace {

namespace fs = std::filesystem;
using namespace latent::index;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

// CPU seconds (user + system) of this process, or of its waited-for children: on a
// shared machine these compare work where wall-clock times also count the neighbours.
double cpu_seconds(int who) {
    rusage u{};
    ::getrusage(who, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double thread_cpu_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::string absolute_dir(const std::string& dir) {
    std::error_code ec;
    fs::path p = fs::canonical(dir, ec);
    if (ec) p = fs::absolute(dir);
    return p.string();
}

// $XDG_CACHE_HOME/latent/index/<hash of the absolute workspace path>.sqlite (or
// ~/.cache/...): never inside the user's repository.
std::string default_db(const std::string& workspace) {
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
                  static_cast<unsigned long long>(content_hash(workspace)));
    const fs::path dir = fs::path(base) / "latent" / "index";
    std::error_code ec;
    fs::create_directories(dir, ec);
    return (dir / (std::string(name) + ".sqlite")).string();
}

void warn(const std::string& m) { std::fprintf(stderr, "latent: warning: %s\n", m.c_str()); }

std::unique_ptr<Store> open_store(const std::string& db, bool must_exist, std::string* error) {
    if (must_exist && !fs::exists(db)) {
        *error = db + ": no index there (run `latent index DIR` first)";
        return nullptr;
    }
    StoreOptions o;
    o.warn = warn;
    return Store::open(db, error, o);
}

std::string json_line(const nlohmann::json& j) {
    // Source text may hold invalid UTF-8: replace rather than throw.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

double file_mb(const std::string& path) {
    double mb = 0;
    for (const char* s : {"", "-wal"}) {
        std::error_code ec;
        const auto n = fs::file_size(path + s, ec);
        if (!ec) mb += n / 1e6;
    }
    return mb;
}

struct Progress {
    Clock::time_point last = Clock::now();
    void operator()(size_t done, size_t total) {
        if (done != total && seconds_since(last) < 0.25) return;  // a few lines a second
        last = Clock::now();
        std::fprintf(stderr, "\rindexing: %zu/%zu files", done, total);
        if (done == total) std::fprintf(stderr, "\n");
        std::fflush(stderr);
    }
};

void register_index(CLI::App& app, int& exit_code) {
    auto* cmd = app.add_subcommand("index", "Index a workspace folder (tree-sitter -> SQLite).");
    struct Args {
        std::string dir, db;
        unsigned threads = 0;
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("DIR", a->dir, "Workspace folder")->required();
    cmd->add_option("--db", a->db, "Database file (default: under $XDG_CACHE_HOME/latent/index)");
    cmd->add_option("--threads", a->threads, "Parser threads (default: all cores)");
    cmd->callback([&exit_code, a] {
        if (!fs::is_directory(a->dir)) {
            exit_code = fail(a->dir + ": not a directory");
            return;
        }
        const std::string root = absolute_dir(a->dir);
        const std::string db = a->db.empty() ? default_db(root) : a->db;
        std::string err;
        auto store = open_store(db, false, &err);
        if (!store) {
            exit_code = fail(err);
            return;
        }
        IndexerOptions o;
        if (a->threads > 0) o.threads = a->threads;
        o.progress = Progress{};
        o.warn = warn;
        const auto t0 = Clock::now();
        try {
            const IndexStats st = Indexer(root, *store, o).index_all();
            const auto c = store->counts();
            std::printf(
                "indexed %s in %.2f s: %zu files (%zu parsed, %zu unchanged, %zu removed, %zu "
                "skipped); %lld symbols, %lld references, %lld chunks; database %s (%.1f MB)\n",
                root.c_str(), seconds_since(t0), st.listed, st.parsed, st.unchanged, st.removed,
                st.skipped, static_cast<long long>(c.symbols), static_cast<long long>(c.refs),
                static_cast<long long>(c.chunks), db.c_str(), file_mb(db));
        } catch (const StoreError& e) {
            exit_code = fail(db + ": " + e.what());
        }
    });
}

void register_search(CLI::App& app, int& exit_code) {
    auto* cmd = app.add_subcommand("search", "Search the index's chunks (BM25).");
    struct Args {
        std::string query, db, dir = ".";
        size_t k = 10;
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("QUERY", a->query, "Words to look for")->required();
    cmd->add_option("--db", a->db, "Database file (default: the one for --dir)");
    cmd->add_option("--dir", a->dir, "Workspace folder (default: the current one)");
    cmd->add_option("-k", a->k, "Results")->capture_default_str()->check(CLI::Range(1, 1000));
    cmd->callback([&exit_code, a] {
        const std::string db = a->db.empty() ? default_db(absolute_dir(a->dir)) : a->db;
        std::string err;
        auto store = open_store(db, true, &err);
        if (!store) {
            exit_code = fail(err);
            return;
        }
        try {
            Retrieval r(*store);
            for (const auto& h : r.search(a->query, a->k)) {
                std::printf("%s:%u-%u: %s%s%s (%.2f)\n", h.path.c_str(), h.start_line + 1,
                            h.end_line + 1, h.kind.c_str(), h.name.empty() ? "" : " ",
                            h.name.c_str(), -h.score);
                size_t pos = 0;
                for (int line = 0; line < 3 && pos < h.text.size(); ++line) {
                    size_t nl = h.text.find('\n', pos);
                    if (nl == std::string::npos) nl = h.text.size();
                    std::printf("    %.*s\n", static_cast<int>(std::min<size_t>(nl - pos, 160)),
                                h.text.c_str() + pos);
                    pos = nl + 1;
                }
            }
        } catch (const StoreError& e) {
            exit_code = fail(db + ": " + e.what());
        }
    });
}

void register_symbols(CLI::App& app, int& exit_code) {
    auto* cmd = app.add_subcommand("symbols", "Definitions of a name in the index.");
    struct Args {
        std::string name, db, dir = ".";
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("NAME", a->name, "Exact name")->required();
    cmd->add_option("--db", a->db, "Database file (default: the one for --dir)");
    cmd->add_option("--dir", a->dir, "Workspace folder (default: the current one)");
    cmd->callback([&exit_code, a] {
        const std::string db = a->db.empty() ? default_db(absolute_dir(a->dir)) : a->db;
        std::string err;
        auto store = open_store(db, true, &err);
        if (!store) {
            exit_code = fail(err);
            return;
        }
        try {
            Retrieval r(*store);
            const auto hits = r.definitions(a->name, 1000);
            for (const auto& h : hits) {
                const auto& d = h.definition;
                std::printf("%s:%u:%u: %s %s%s%s  %s\n", h.path.c_str(),
                            d.name_range.start.line + 1, d.name_range.start.column + 1,
                            d.kind.c_str(), d.name.c_str(), d.container.empty() ? "" : " in ",
                            d.container.c_str(), d.signature.c_str());
            }
            if (hits.empty()) std::fprintf(stderr, "no definition of %s\n", a->name.c_str());
        } catch (const StoreError& e) {
            exit_code = fail(db + ": " + e.what());
        }
    });
}

void register_bench_index(CLI::App& app, int& exit_code) {
    CLI::App* bench = bench_command(app);
    auto* cmd = bench->add_subcommand(
        "index", "Cold index, warm re-index, one-file update and context_for queries.");
    struct Args {
        std::string dir;
        unsigned threads = 0;
        int queries = 500;
        bool ctags = true;
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("--dir", a->dir, "Source tree")->required();
    cmd->add_option("--threads", a->threads, "Parser threads (default: all cores)");
    cmd->add_option("--queries", a->queries, "context_for calls timed")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000000));
    cmd->add_flag("!--no-ctags", a->ctags,
                  "Skip the comparisons with ctags (over the same files, and -R over the folder)");
    cmd->callback([&exit_code, a] {
        if (!fs::is_directory(a->dir)) {
            exit_code = fail(a->dir + ": not a directory");
            return;
        }
        const std::string root = absolute_dir(a->dir);
        const ScratchDir scratch("latent-bench-index");
        if (!scratch.ok()) {
            exit_code = fail("cannot create a temporary folder");
            return;
        }
        const std::string db = scratch.path() + "/index.sqlite";
        try {
            std::string err;
            auto store = open_store(db, false, &err);
            if (!store) {
                exit_code = fail(err);
                return;
            }
            IndexerOptions o;
            o.threads =
                a->threads > 0 ? a->threads : std::max(1u, std::thread::hardware_concurrency());
            o.progress = Progress{};
            o.warn = [](const std::string&) {};
            Indexer ix(root, *store, o);
            std::fprintf(stderr, "bench index: cold index of %s\n", root.c_str());
            auto t0 = Clock::now();
            const double cold_cpu0 = cpu_seconds(RUSAGE_SELF);
            const IndexStats cold = ix.index_all();
            const double cold_cpu_s = cpu_seconds(RUSAGE_SELF) - cold_cpu0;
            const double cold_s = seconds_since(t0);
            t0 = Clock::now();
            const IndexStats warm = ix.index_all();
            const double warm_s = seconds_since(t0);
            std::fprintf(stderr, "bench index: cold %.2f s, warm %.3f s (%zu parsed)\n", cold_s,
                         warm_s, warm.parsed);

            // One changed file (as an editor's unsaved buffer), median of a few.
            const auto files = store->files();
            std::vector<double> one_ms;
            std::vector<FileRecord> sample;
            std::mt19937_64 rng(12345);
            for (int i = 0; i < 9 && !files.empty(); ++i)
                sample.push_back(files[rng() % files.size()]);
            for (const auto& f : sample) {
                std::FILE* fp = std::fopen((root + "/" + f.path).c_str(), "rb");
                if (!fp) continue;
                std::string text;
                char buf[65536];
                size_t n;
                while ((n = std::fread(buf, 1, sizeof buf, fp)) > 0) text.append(buf, n);
                std::fclose(fp);
                text += "\n";
                t0 = Clock::now();
                ix.update_file(f.path, std::string_view(text));
                one_ms.push_back(seconds_since(t0) * 1e3);
                ix.update_file(f.path);  // back to the disk's version
            }
            std::sort(one_ms.begin(), one_ms.end());

            // context_for at identifier uses picked at random (each use equally likely:
            // a file by its share of the uses, then a use within it).
            Retrieval r(*store);
            std::vector<std::pair<int64_t, int64_t>> per_file;  // (file id, uses so far)
            int64_t total_refs = 0;
            {
                Statement s = store->prepare("SELECT file_id, sum(n) FROM refs GROUP BY file_id");
                while (s.step()) per_file.emplace_back(s.int64(0), total_refs += s.int64(1));
            }
            Statement lines = store->prepare(
                "SELECT f.path, r.line, r.uses FROM refs r JOIN files f ON f.id = r.file_id "
                "WHERE r.file_id = ? ORDER BY r.line");
            std::vector<double> q_ms, q_cpu_ms;
            for (int i = 0; i < a->queries && total_refs > 0; ++i) {
                const int64_t k = static_cast<int64_t>(rng() % static_cast<uint64_t>(total_refs));
                const auto it = std::upper_bound(
                    per_file.begin(), per_file.end(), k,
                    [](int64_t v, const std::pair<int64_t, int64_t>& e) { return v < e.second; });
                int64_t skip = k - (it == per_file.begin() ? 0 : std::prev(it)->second);
                std::string path;
                Point p;
                bool found = false;
                lines.reset();
                lines.bind(1, it->first);
                while (!found && lines.step()) {
                    const std::string row = lines.text(2);
                    const auto uses = parse_uses(row);
                    if (skip >= static_cast<int64_t>(uses.size())) {
                        skip -= static_cast<int64_t>(uses.size());
                        continue;
                    }
                    path = lines.text(0);
                    p = {static_cast<uint32_t>(lines.int64(1)), uses[skip].col};
                    found = true;
                }
                lines.reset();
                if (!found) continue;
                t0 = Clock::now();
                const double c0 = thread_cpu_seconds();
                r.context_for(path, p, 2048);
                q_cpu_ms.push_back((thread_cpu_seconds() - c0) * 1e3);
                q_ms.push_back(seconds_since(t0) * 1e3);
            }
            std::sort(q_ms.begin(), q_ms.end());
            std::sort(q_cpu_ms.begin(), q_cpu_ms.end());
            auto pct = [](const std::vector<double>& v, double q) {
                return v.empty() ? 0.0
                                 : v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
            };
            const auto c = store->counts();
            const double mb = cold.bytes / 1e6;
            // The database as it stays: the write-ahead log folded in and emptied.
            store->exec("PRAGMA wal_checkpoint(TRUNCATE)");
            nlohmann::json j = {{"bench", "index"},
                                {"dir", root},
                                {"files", cold.parsed},
                                {"mb", mb},
                                {"cold_s", cold_s},
                                {"mb_s", cold_s > 0 ? mb / cold_s : 0},
                                {"warm_s", warm_s},
                                {"one_file_ms", pct(one_ms, 0.5)},
                                {"symbols", c.symbols},
                                {"refs", c.refs},
                                {"chunks", c.chunks},
                                {"db_mb", file_mb(db)},
                                {"query_p50_ms", pct(q_ms, 0.5)},
                                {"query_p99_ms", pct(q_ms, 0.99)},
                                {"query_cpu_p50_ms", pct(q_cpu_ms, 0.5)},
                                {"query_cpu_p99_ms", pct(q_cpu_ms, 0.99)},
                                {"cold_cpu_s", cold_cpu_s},
                                {"threads", o.threads}};
            if (a->ctags) {
                // ctags over exactly the files the cold index parsed (`ctags -R` would also
                // read what the index skips: files over the size cap, minified code, dist/ and
                // vendored folders, other languages), so both throughputs are over the same bytes.
                const std::string tags = scratch.path() + "/tags";
                const std::string list = scratch.path() + "/files";
                if (std::FILE* fp = std::fopen(list.c_str(), "w")) {
                    for (const auto& f : files)
                        std::fprintf(fp, "%s/%s\n", root.c_str(), f.path.c_str());
                    std::fclose(fp);
                }
                t0 = Clock::now();
                const double ctags_cpu0 = cpu_seconds(RUSAGE_CHILDREN);
                const bool ok = run_program({"ctags", "-L", list, "-f", tags}).has_value();
                const double ctags_s = seconds_since(t0);
                const double ctags_cpu_s = cpu_seconds(RUSAGE_CHILDREN) - ctags_cpu0;
                if (ok) {
                    j["ctags_s"] = ctags_s;
                    j["ctags_mb_s"] = ctags_s > 0 ? mb / ctags_s : 0;
                    j["ctags_ratio"] = cold_s > 0 ? ctags_s / cold_s : 0;
                    j["ctags_cpu_s"] = ctags_cpu_s;
                    std::fprintf(stderr,
                                 "bench index: ctags on the same %zu files %.2f s, latent %.2f s\n",
                                 files.size(), ctags_s, cold_s);
                }
                // And `ctags -R` on the folder, as a user would run it: the same tree, but
                // every file ctags knows (what the index skips too).
                t0 = Clock::now();
                if (run_program({"ctags", "-R", "-f", tags + "-R", root})) {
                    const double tree_s = seconds_since(t0);
                    j["ctags_tree_s"] = tree_s;
                    j["ctags_tree_ratio"] = cold_s > 0 ? tree_s / cold_s : 0;
                    std::fprintf(stderr, "bench index: ctags -R on the folder %.2f s\n", tree_s);
                }
            }
            std::printf("%s\n", json_line(j).c_str());
        } catch (const StoreError& e) {
            exit_code = fail(db + ": " + e.what());
        }
    });
}

}  // namespace

void register_index_commands(CLI::App& app, int& exit_code) {
    register_index(app, exit_code);
    register_search(app, exit_code);
    register_symbols(app, exit_code);
    register_bench_index(app, exit_code);
}

}  // namespace latent::agent
