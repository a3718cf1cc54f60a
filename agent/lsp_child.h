// LspChild: drives a language server child process (`latent lsp`) over pipes as an
// editor would — framed requests and notifications out, responses and server requests
// in — with a timeout on every wait, so a hung server never hangs the caller. Used by
// `latent demo`, `latent complete`, `latent bench lsp` and the tests (tests/support/
// lsp_client.h). Header-only. Thread safety: one thread uses an LspChild.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lsp/transport.h"

extern char** environ;

namespace latent::agent {

class LspChild {
public:
    using json = nlohmann::json;
    using Clock = std::chrono::steady_clock;

    // Starts `argv` with stdin/stdout on pipes and stderr appended to `stderr_path`.
    // `env` entries ("NAME=value") override the inherited environment.
    LspChild(const std::vector<std::string>& argv, const std::string& stderr_path,
             const std::vector<std::string>& env = {}) {
        int in[2], out[2];
        if (pipe(in) != 0 || pipe(out) != 0) return;
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in[0], 0);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        posix_spawn_file_actions_addopen(&fa, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                         0644);
        posix_spawn_file_actions_addclose(&fa, in[1]);
        posix_spawn_file_actions_addclose(&fa, out[0]);
        std::vector<std::string> envs;
        for (char** e = environ; *e; ++e) {
            const std::string kv = *e;
            bool overridden = false;
            for (const auto& o : env)
                if (kv.substr(0, kv.find('=') + 1) == o.substr(0, o.find('=') + 1))
                    overridden = true;
            if (!overridden) envs.push_back(kv);
        }
        for (const auto& o : env) envs.push_back(o);
        std::vector<char*> args, envp;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        for (const auto& e : envs) envp.push_back(const_cast<char*>(e.c_str()));
        envp.push_back(nullptr);
        if (posix_spawn(&pid_, argv[0].c_str(), &fa, nullptr, args.data(), envp.data()) != 0)
            pid_ = -1;
        posix_spawn_file_actions_destroy(&fa);
        close(in[0]);
        close(out[1]);
        to_ = in[1];
        from_ = out[0];
        fcntl(to_, F_SETFD, FD_CLOEXEC);
        fcntl(from_, F_SETFD, FD_CLOEXEC);
        signal(SIGPIPE, SIG_IGN);
    }
    ~LspChild() {
        if (pid_ > 0 && !exited_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        if (to_ >= 0) close(to_);
        if (from_ >= 0) close(from_);
    }
    LspChild(const LspChild&) = delete;
    LspChild& operator=(const LspChild&) = delete;

    bool started() const { return pid_ > 0; }
    pid_t pid() const { return pid_; }

    bool send_raw(const std::string& bytes) {
        size_t off = 0;
        while (off < bytes.size()) {
            const ssize_t n = write(to_, bytes.data() + off, bytes.size() - off);
            if (n <= 0) return false;
            off += static_cast<size_t>(n);
        }
        return true;
    }
    bool send(const json& message) { return send_raw(lsp::frame_message(message.dump())); }
    int request(const std::string& method, const json& params) {
        const int id = next_id_++;
        json m = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
        if (!params.is_null()) m["params"] = params;  // JSON-RPC: params absent, never null
        send(m);
        return id;
    }
    void notify(const std::string& method, const json& params) {
        json m = {{"jsonrpc", "2.0"}, {"method", method}};
        if (!params.is_null()) m["params"] = params;
        send(m);
    }
    void cancel(int id) { notify("$/cancelRequest", {{"id", id}}); }
    void close_input() {
        if (to_ >= 0) close(to_);
        to_ = -1;
    }

    // The next message from the server, or nullopt at the timeout or end of stream.
    // Server->client requests are answered automatically (null result) unless
    // answer_requests is false; they are still returned.
    std::optional<json> next(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        const auto deadline = Clock::now() + timeout;
        while (true) {
            while (auto r = reader_.next()) {
                if (r->kind != lsp::ReadResult::Kind::kMessage) continue;
                json m = json::parse(r->body, nullptr, false);
                if (m.is_discarded()) continue;
                if (answer_requests && m.contains("method") && m.contains("id"))
                    send({{"jsonrpc", "2.0"}, {"id", m["id"]}, {"result", nullptr}});
                seen.push_back(m);
                return m;
            }
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left.count() <= 0 || eof_) return std::nullopt;
            pollfd p{from_, POLLIN, 0};
            if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
            char buf[65536];
            const ssize_t n = read(from_, buf, sizeof buf);
            if (n <= 0) {
                eof_ = true;
                continue;
            }
            reader_.feed(std::string_view(buf, static_cast<size_t>(n)));
        }
    }
    // Messages until the response to `id` (returned); others stay in `seen`.
    std::optional<json> wait_response(
        int id, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        return wait_for(
            [id](const json& m) {
                return !m.contains("method") && m.contains("id") && m["id"] == id;
            },
            timeout);
    }
    // The first message for which pred is true (checking those already seen first).
    template <class Pred>
    std::optional<json> wait_for(Pred pred,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        for (const auto& m : seen)
            if (pred(m)) return m;
        const auto deadline = Clock::now() + timeout;
        while (Clock::now() < deadline) {
            auto m = next(
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
            if (!m) return std::nullopt;
            if (pred(*m)) return m;
        }
        return std::nullopt;
    }

    // The exit status once the process ended, or nullopt at the timeout (then killed).
    std::optional<int> wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        const auto deadline = Clock::now() + timeout;
        while (Clock::now() < deadline) {
            int status = 0;
            const pid_t r = waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                exited_ = true;
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
            // Drain output so the server never blocks writing to us.
            next(std::chrono::milliseconds(10));
        }
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        exited_ = true;
        return std::nullopt;
    }

    // initialize + initialized; returns the initialize result.
    json initialize(const json& options, const std::string& root_uri = "",
                    const json& capabilities = json::object()) {
        json params = {{"processId", nullptr},
                       {"capabilities", capabilities},
                       {"initializationOptions", options}};
        if (!root_uri.empty()) params["rootUri"] = root_uri;
        const int id = request("initialize", params);
        auto r = wait_response(id);
        notify("initialized", json::object());
        return r ? *r : json();
    }

    bool answer_requests = true;
    std::vector<json> seen;

private:
    pid_t pid_ = -1;
    int to_ = -1, from_ = -1;
    int next_id_ = 1;
    bool eof_ = false, exited_ = false;
    lsp::MessageReader reader_;
};

}  // namespace latent::agent
