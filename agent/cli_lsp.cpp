// `latent lsp`: the language server on stdio. Stdout carries the protocol and nothing
// else: the process moves its stdout to a private descriptor for the transport and points
// fd 1 at stderr, so that a stray print anywhere can never corrupt the stream.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <string_view>

#include "agent/commands.h"
#include "agent/lsp_commands.h"
#include "agent/lsp_server.h"
#include "lsp/jsonrpc.h"
#include "lsp/transport.h"

namespace latent::agent {

Logger::Logger(const std::string& path) {
    if (!path.empty()) file_ = std::fopen(path.c_str(), "a");
    if (!path.empty() && !file_)
        std::fprintf(stderr, "latent: warning: cannot open log file %s; logging to stderr\n",
                     path.c_str());
}

Logger::~Logger() {
    if (file_) std::fclose(file_);
}

void Logger::operator()(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    std::FILE* out = file_ ? file_ : stderr;
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
    std::string_view text = line;
    const char* level = "info";
    for (const char* l : {"error", "warning"}) {
        const std::string prefix = std::string(l) + ": ";
        if (text.substr(0, prefix.size()) == prefix) {
            level = l;
            text.remove_prefix(prefix.size());
        }
    }
    // Cap a line: a log must not grow by a document's size because one was echoed.
    std::fprintf(out, "[%s.%03d] [%s] %.*s\n", stamp, static_cast<int>(ms.count()), level,
                 static_cast<int>(std::min<size_t>(text.size(), 2000)), text.data());
    std::fflush(out);
}

int run_lsp_server(int in_fd, int out_fd, const Settings& defaults, const std::string& log_path,
                   bool allow_test_backends) {
    auto logger = std::make_shared<Logger>(log_path);
    auto log = [logger](const std::string& l) { (*logger)(l); };
    lsp::FdTransport transport(in_fd, out_fd);
    lsp::Endpoint::Options eo;
    eo.log = log;
    lsp::Endpoint ep([&transport](const std::string& body) { transport.write(body); }, eo);
    LspServerOptions so;
    so.settings = defaults;
    so.log = log;
    so.allow_test_backends = allow_test_backends;
    so.on_exit = [log](int code) {
        log("exit (" + std::to_string(code) + ")");
        // Leave at once: index passes and model work need not finish for a client that left.
        std::_Exit(code);
    };
    LspServer server(ep, so);
    log("latent lsp " LATENT_VERSION " started (pid " + std::to_string(getpid()) + ")");
    lsp::run_message_loop(transport, ep);
    const int code = server.shutdown_requested() ? 0 : 1;
    log("input closed; exiting (" + std::to_string(code) + ")");
    std::_Exit(code);
}

void register_lsp_command(CLI::App& app, int& exit_code) {
    auto* cmd = app.add_subcommand(
        "lsp", "Run the language server on stdin/stdout (for VS Code, Neovim, any LSP editor).");
    struct Args {
        std::string log, model, backend, engine, remote, remote_model;
        bool stdio = true;
        bool no_index = false;
        bool test_backend = false;
    };
    auto a = std::make_shared<Args>();
    cmd->add_flag("--stdio", a->stdio,
                  "Talk LSP over stdin/stdout (the default and only way; accepted because "
                  "editors' LSP clients pass it)");
    cmd->add_option("--log", a->log, "Append logs to this file (default: stderr)");
    cmd->add_option("--model,-m", a->model, "GGUF model (default for the `model` setting)");
    cmd->add_option("--backend", a->backend, "local | remote | none (default: local)");
    cmd->add_option("--engine", a->engine, "cpu | reference | cuda (local backend)");
    cmd->add_option("--remote", a->remote, "OpenAI-compatible server URL (sets --backend remote)");
    cmd->add_option("--remote-model", a->remote_model, "Model name for the remote server");
    cmd->add_flag("--no-index", a->no_index, "Do not index the workspace");
    cmd->add_flag("--enable-test-backend", a->test_backend,
                  "Let settings choose the scripted backend (tests and `latent bench lsp`; "
                  "no setting can turn it on)");
    cmd->callback([&exit_code, a] {
        Settings s;
        if (!a->model.empty()) s.model = a->model;
        if (!a->engine.empty()) s.engine = a->engine;
        if (!a->remote.empty()) {
            s.backend = "remote";
            s.remote_url = a->remote;
        }
        if (!a->backend.empty()) s.backend = a->backend;
        if (!a->remote_model.empty()) s.remote_model = a->remote_model;
        if (const char* k = std::getenv("LATENT_API_KEY"); k && *k) s.remote_key = k;
        if (a->no_index) s.index = false;
        std::signal(SIGPIPE, SIG_IGN);  // a client that went away: write() fails instead
        // Keep the protocol's stdout for the transport; fd 1 becomes stderr.
        const int proto_out = dup(STDOUT_FILENO);
        if (proto_out < 0) {
            exit_code = fail("cannot duplicate stdout");
            return;
        }
        fcntl(proto_out, F_SETFD, FD_CLOEXEC);
        dup2(STDERR_FILENO, STDOUT_FILENO);
        exit_code = run_lsp_server(STDIN_FILENO, proto_out, s, a->log, a->test_backend);
    });
}

}  // namespace latent::agent
