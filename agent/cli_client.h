// Shared pieces of the commands that are clients of `latent lsp` (complete, demo, bench
// lsp, bench replay): starting the server as a child process of this same binary, and the
// LSP messages they send. Not the server (lsp_server.h).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/lsp_child.h"

namespace latent::agent::cli {

// This executable (/proc/self/exe), to start `latent lsp` as a child.
std::string self_exe();
// $XDG_CACHE_HOME/latent or ~/.cache/latent.
std::string cache_base();
std::optional<std::string> read_file(const std::string& path);
// The q-quantile (0..1) of v, nearest rank.
double pct(std::vector<double> v, double q);
// The git work tree holding `file`, else its folder.
std::string workspace_of(const std::string& file);
// `latent lsp` as a child, stderr to `log_path`; `test_backend`: --enable-test-backend;
// `exe`: another latent binary to run (a build to compare with), default this one.
std::unique_ptr<LspChild> start_server(const std::string& log_path, bool test_backend = false,
                                       const std::string& exe = "");
// Waits for the end of the server's index progress (or the timeout).
void wait_for_index(LspChild& c, std::chrono::seconds timeout);
// A didChange inserting `text` at (line, ch), and an inline completion request there.
nlohmann::json change_at(const std::string& uri, int version, uint32_t line, uint32_t ch,
                         const std::string& text);
nlohmann::json completion_at(const std::string& uri, uint32_t line, uint32_t ch);
// s on one line, cut to at most `max` bytes at a character boundary.
std::string one_line(std::string s, size_t max);

}  // namespace latent::agent::cli
