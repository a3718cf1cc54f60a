// `latent bench lifecycle`: what the language server's lifecycle costs the user, through a
// `latent lsp` child as an editor drives it — how long latent/status takes while a large
// folder is removed in the middle of its first index pass (and whether the pass stops),
// and the memory held after a storm of backend setting changes (local <-> remote <-> none)
// against one model loaded once.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "agent/cli_client.h"
#include "agent/commands.h"
#include "agent/documents.h"

namespace latent::agent {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace cli;

double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// VmRSS and VmHWM (peak) of a process, in MB; -1 when unreadable.
std::pair<double, double> rss_mb(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    double rss = -1, hwm = -1;
    while (std::getline(in, line)) {
        std::istringstream ss(line);
        std::string key;
        double kb = 0;
        ss >> key >> kb;
        if (key == "VmRSS:") rss = kb / 1024;
        if (key == "VmHWM:") hwm = kb / 1024;
    }
    return {rss, hwm};
}

// latent/status round trip; its result (null when it did not come).
json status(LspChild& c, double* ms) {
    const auto t0 = Clock::now();
    auto r = c.wait_response(c.request("latent/status", json::object()), std::chrono::seconds(60));
    if (ms) *ms = ms_since(t0);
    return r ? (*r)["result"] : json();
}

// Removes `dir` (a workspace folder) once its first index pass has reported progress, then
// times latent/status every 10 ms for `seconds`.
json folder_removal(const std::string& dir, const std::string& tmp, double seconds,
                    const std::string& exe) {
    auto c = start_server(tmp + "/lsp.log", false, exe);
    if (!c) return {{"error", "cannot start latent lsp"}};
    const std::string uri = path_to_uri(dir);
    c->initialize({{"backend", "none"}, {"index", {{"db", tmp + "/index.sqlite"}}}}, uri,
                  {{"window", {{"workDoneProgress", true}}}});
    // The first progress report: the pass is under way.
    size_t total = 0, done_before = 0;
    auto report = c->wait_for(
        [](const json& m) {
            return m.value("method", "") == "$/progress" && m["params"]["value"].is_object() &&
                   m["params"]["value"].value("kind", "") == "report";
        },
        std::chrono::seconds(600));
    if (!report) return {{"error", "no index progress (is the folder empty?)"}};
    std::sscanf((*report)["params"]["value"].value("message", "").c_str(), "%zu/%zu", &done_before,
                &total);
    const auto t_remove = Clock::now();
    c->notify(
        "workspace/didChangeWorkspaceFolders",
        {{"event", {{"added", json::array()}, {"removed", {{{"uri", uri}, {"name", "x"}}}}}}});
    std::vector<double> lat;
    double gone_ms = -1;
    while (ms_since(t_remove) < seconds * 1000) {
        double ms = 0;
        const json st = status(*c, &ms);
        lat.push_back(ms);
        if (gone_ms < 0 && st.is_object() && st["index"].empty()) gone_ms = ms_since(t_remove);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // the polling interval
    }
    // The last progress the removed folder's pass sent.
    size_t done_after = done_before;
    for (const auto& m : c->seen)
        if (m.value("method", "") == "$/progress" && m["params"]["value"].is_object() &&
            m["params"]["value"].value("kind", "") == "report") {
            size_t d = 0, t = 0;
            if (std::sscanf(m["params"]["value"].value("message", "").c_str(), "%zu/%zu", &d, &t) ==
                2)
                done_after = std::max(done_after, d);
        }
    std::sort(lat.begin(), lat.end());
    c->wait_response(c->request("shutdown", nullptr));
    c->notify("exit", nullptr);
    c->wait_exit(std::chrono::seconds(30));
    return {{"files", total},
            {"done_at_remove", done_before},
            {"done_after_remove", done_after},
            {"status_requests", lat.size()},
            {"status_p50_ms", lat.empty() ? 0 : lat[lat.size() / 2]},
            {"status_max_ms", lat.empty() ? 0 : lat.back()},
            {"index_gone_ms", gone_ms}};
}

// One model loaded; then `n` setting changes local/remote/none ending on local.
json reload_storm(const std::string& model, int n, const std::string& tmp, const std::string& exe) {
    auto c = start_server(tmp + "/lsp-storm.log", false, exe);
    if (!c) return {{"error", "cannot start latent lsp"}};
    const json local = {{"backend", "local"}, {"model", model}, {"diskCache", {{"mb", 0}}}};
    c->initialize({{"backend", "local"},
                   {"model", model},
                   {"diskCache", {{"mb", 0}}},
                   {"index", {{"enabled", false}}}});
    auto wait_local = [&] {
        // A chat waits for the newest load (deferred by the server) and is answered by it.
        c->wait_response(
            c->request("latent/chat", {{"messages", {{{"role", "user"}, {"content", "hi"}}}}}),
            std::chrono::seconds(600));
        return status(*c, nullptr).value("backend", "");
    };
    const std::string first = wait_local();
    const auto [rss_one, hwm_one] = rss_mb(c->pid());
    const auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) {
        const json s =
            i % 3 == 0   ? local
            : i % 3 == 1 ? json{{"backend", "remote"}, {"remote", {{"url", "http://127.0.0.1:9"}}}}
                         : json{{"backend", "none"}};
        c->notify("workspace/didChangeConfiguration", {{"settings", s}});
    }
    c->notify("workspace/didChangeConfiguration", {{"settings", local}});
    const std::string last = wait_local();
    const double storm_ms = ms_since(t0);
    const auto [rss_after, hwm_after] = rss_mb(c->pid());
    const json st = status(*c, nullptr);
    c->wait_response(c->request("shutdown", nullptr));
    c->notify("exit", nullptr);
    c->wait_exit(std::chrono::seconds(30));
    return {{"changes", n + 1},
            {"backend_first", first},
            {"backend_last", last},
            {"loads", st.value("backendLoads", -1)},
            {"storm_ms", storm_ms},
            {"rss_one_model_mb", rss_one},
            {"rss_after_storm_mb", rss_after},
            {"peak_rss_mb", hwm_after},
            {"peak_before_storm_mb", hwm_one}};
}

}  // namespace

void register_bench_lifecycle_command(CLI::App& app, int& exit_code) {
    CLI::App* bench = bench_command(app);
    auto* cmd = bench->add_subcommand(
        "lifecycle",
        "latent/status latency while a workspace folder is removed in the middle of its first "
        "index pass (--dir), and memory after a storm of backend setting changes (--model).");
    struct Args {
        std::string dir, model, server;
        int storm = 100;
        double seconds = 3;
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("--dir", a->dir, "A large folder to add and remove (e.g. node_modules)");
    cmd->add_option("--model", a->model, "A GGUF for the reload storm");
    cmd->add_option("--storm", a->storm, "Setting changes in the storm")
        ->capture_default_str()
        ->check(CLI::Range(1, 10000));
    cmd->add_option("--server", a->server,
                    "Another latent binary whose `latent lsp` to measure (a build to compare)");
    cmd->add_option("--seconds", a->seconds, "How long status is timed after the removal")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 600.0));
    cmd->callback([&exit_code, a] {
        if (a->dir.empty() && a->model.empty()) {
            exit_code = fail("give --dir, --model or both");
            return;
        }
        char tmpl[] = "/tmp/latent-bench-lifecycle-XXXXXX";
        const char* tmp = ::mkdtemp(tmpl);
        if (!tmp) {
            exit_code = fail("cannot make a temporary folder");
            return;
        }
        json j = {{"bench", "lifecycle"}, {"server", a->server.empty() ? self_exe() : a->server}};
        if (!a->dir.empty()) {
            std::fprintf(stderr, "bench lifecycle: removing %s mid-index...\n", a->dir.c_str());
            j["folder_removal"] = folder_removal(a->dir, tmp, a->seconds, a->server);
        }
        if (!a->model.empty()) {
            std::fprintf(stderr, "bench lifecycle: %d setting changes...\n", a->storm);
            j["reload_storm"] = reload_storm(a->model, a->storm, tmp, a->server);
        }
        std::error_code ec;
        std::filesystem::remove_all(tmp, ec);
        std::printf("%s\n", j.dump().c_str());
    });
}

}  // namespace latent::agent
