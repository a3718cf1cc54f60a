// Shared pieces of the LSP-facing commands (cli_lsp.cpp, cli_demo.cpp): the logger and
// the server's run loop over a pair of descriptors.
#pragma once

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "agent/generator.h"
#include "agent/settings.h"

namespace latent::agent {

// Timestamped lines to a file (appended) or stderr, each with its level:
// "[12:00:01.234] [info] latent lsp 0.1.0 started". A line that starts "error: " or
// "warning: " has that level (the prefix moves into the brackets), any other is info:
// editors show stderr as errors unless told (the VS Code extension reads the level).
// Thread-safe.
class Logger {
public:
    explicit Logger(const std::string& path);
    ~Logger();
    void operator()(const std::string& line);

private:
    std::mutex mu_;
    std::FILE* file_ = nullptr;
};

// Serves LSP on the descriptors until `exit` or end of input, then ends the process
// (std::_Exit with 0 after shutdown, else 1). `allow_test_backends`: settings may choose
// the scripted backend.
[[noreturn]] int run_lsp_server(int in_fd, int out_fd, const Settings& defaults,
                                const std::string& log_path, bool allow_test_backends);

}  // namespace latent::agent
