// Shared pieces of the LSP client commands (see cli_client.h).
#include "agent/cli_client.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "agent/commands.h"
#include "agent/lsp_child.h"

namespace latent::agent::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace fs = std::filesystem;
using nlohmann::json;

std::string self_exe() {
    std::error_code ec;
    const auto p = fs::read_symlink("/proc/self/exe", ec);
    return ec ? std::string("latent") : p.string();
}

std::string cache_base() {
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/latent";
    if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/latent";
    return "/tmp/latent-cache";
}

std::optional<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

double pct(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
}

// The git work tree holding `path`, else its folder.
std::string workspace_of(const std::string& file) {
    fs::path dir = fs::absolute(file).parent_path();
    for (fs::path d = dir; !d.empty(); d = d.parent_path()) {
        std::error_code ec;
        if (fs::exists(d / ".git", ec)) return d.string();
        if (d == d.parent_path()) break;
    }
    return dir.string();
}

std::unique_ptr<LspChild> start_server(const std::string& log_path, bool test_backend,
                                       const std::string& exe) {
    std::vector<std::string> argv = {exe.empty() ? self_exe() : exe, "lsp"};
    if (test_backend) argv.push_back("--enable-test-backend");
    auto c = std::make_unique<LspChild>(argv, log_path);
    if (!c->started()) return nullptr;
    return c;
}

// Waits for the end of the server's index progress (or the timeout).
void wait_for_index(LspChild& c, std::chrono::seconds timeout) {
    c.wait_for(
        [](const json& m) {
            return m.value("method", "") == "$/progress" && m["params"]["value"].is_object() &&
                   m["params"]["value"].value("kind", "") == "end";
        },
        timeout);
}

json change_at(const std::string& uri, int version, uint32_t line, uint32_t ch,
               const std::string& text) {
    return {{"textDocument", {{"uri", uri}, {"version", version}}},
            {"contentChanges",
             {{{"range",
                {{"start", {{"line", line}, {"character", ch}}},
                 {"end", {{"line", line}, {"character", ch}}}}},
               {"text", text}}}}};
}

json completion_at(const std::string& uri, uint32_t line, uint32_t ch) {
    return {{"textDocument", {{"uri", uri}}},
            {"position", {{"line", line}, {"character", ch}}},
            {"context", {{"triggerKind", 2}}}};
}

// s on one line, cut to at most `max` bytes at a character boundary (never inside a
// UTF-8 sequence: a terminal would print garbage).
std::string one_line(std::string s, size_t max) {
    for (char& c : s)
        if (c == '\n') c = '|';
    if (s.size() > max) {
        size_t cut = max;
        while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
        s = s.substr(0, cut) + "...";
    }
    return s;
}

}  // namespace latent::agent::cli
