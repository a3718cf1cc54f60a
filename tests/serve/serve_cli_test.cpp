// `latent serve` as a process: it binds an ephemeral port, answers over HTTP, stops
// cleanly on SIGTERM, and a restarted server gets the prompt's pages back from the disk
// tier under $XDG_CACHE_HOME.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/support/test_models.h"

extern char** environ;

namespace latent::engine {
namespace {

using nlohmann::json;

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// One HTTP exchange over loopback; the body of the answer (the server closes).
std::string post(uint16_t port, const std::string& path, const std::string& body,
                 const std::string& extra_headers = "", int* status = nullptr) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        ADD_FAILURE() << "cannot connect to port " << port << ": " << std::strerror(errno);
        ::close(fd);
        return {};
    }
    const std::string req =
        "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
        extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    std::string raw;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;)
        raw.append(buf, static_cast<size_t>(n));
    ::close(fd);
    const size_t at = raw.find("\r\n\r\n");
    if (status) *status = raw.size() > 12 ? std::stoi(raw.substr(9, 3)) : 0;
    return at == std::string::npos ? std::string() : raw.substr(at + 4);
}

struct Server {
    pid_t pid = -1;
    uint16_t port = 0;
};

Server start(const std::string& model, const std::string& log, const std::string& env = "",
             const std::string& flags = "") {
    Server s;
    const std::string cmd = env + std::string(LATENT_BINARY) + " serve -m " + model +
                            " --backend reference --port 0 --page-tokens 4 " + flags + " 2>" + log;
    // exec: the shell is replaced by latent, so SIGTERM reaches the server itself.
    const std::string exec_cmd = env.empty() ? "exec " + cmd : "exec env " + cmd;
    const char* argv[] = {"/bin/sh", "-c", exec_cmd.c_str(), nullptr};
    if (posix_spawn(&s.pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) != 0)
        return s;
    const std::regex listening(R"(on http://127\.0\.0\.1:(\d+)\n)");
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < until) {
        std::smatch m;
        const std::string text = slurp(log);
        if (std::regex_search(text, m, listening)) {
            s.port = static_cast<uint16_t>(std::stoi(m[1]));
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return s;
}

int stop(const Server& s) {
    ::kill(s.pid, SIGTERM);
    int status = 0;
    ::waitpid(s.pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(ServeCliSlow, AnswersStopsOnSigtermAndARestartFindsItsPrefixOnDisk) {
    engine::MakeModelOptions o;
    o.preset = "tiny";
    o.quant = GgmlType::kQ8_0;
    const std::string model = test::make_test_model(o);
    const std::string dir = test::temp_dir();
    ::setenv("XDG_CACHE_HOME", (dir + "/xdg").c_str(), 1);
    const std::string log = dir + "/serve.log";
    const json req = {
        {"prompt", "def add(a, b): return a + b"}, {"max_tokens", 2}, {"temperature", 0}};

    Server first = start(model, log + ".1");
    ASSERT_NE(first.port, 0) << slurp(log + ".1");
    const json a = json::parse(post(first.port, "/v1/completions", req.dump()));
    EXPECT_EQ(a["usage"]["prompt_cache_hit_tokens"], 0);
    EXPECT_EQ(stop(first), 0) << slurp(log + ".1");

    // Another log file: the first one names the first server's port.
    Server second = start(model, log + ".2");
    ASSERT_NE(second.port, 0) << slurp(log + ".2");
    const json b = json::parse(post(second.port, "/v1/completions", req.dump()));
    EXPECT_GE(b["usage"]["prompt_cache_hit_tokens"].get<int>(), 8);  // whole pages of 4
    EXPECT_EQ(b["choices"][0]["text"], a["choices"][0]["text"]);
    EXPECT_EQ(stop(second), 0) << slurp(log + ".2");
    ::unsetenv("XDG_CACHE_HOME");
}

TEST(ServeCliSlow, TheApiKeyComesFromTheEnvironmentOrAFileNotOnlyArgv) {
    engine::MakeModelOptions o;
    o.preset = "tiny";
    o.quant = GgmlType::kQ8_0;
    const std::string model = test::make_test_model(o);
    const std::string dir = test::temp_dir();
    const std::string body = json{{"prompt", "x"}, {"max_tokens", 1}}.dump();
    auto status_with = [&](uint16_t port, const std::string& auth) {
        int status = 0;
        post(port, "/v1/completions", body, auth, &status);
        return status;
    };
    {
        Server s =
            start(model, dir + "/key-env.log", "LATENT_API_KEY=env-key ", "--disk-cache none");
        ASSERT_NE(s.port, 0) << slurp(dir + "/key-env.log");
        EXPECT_EQ(status_with(s.port, ""), 401);
        EXPECT_EQ(status_with(s.port, "Authorization: Bearer other\r\n"), 401);
        EXPECT_EQ(status_with(s.port, "Authorization: bearer env-key\r\n"), 200);
        EXPECT_EQ(stop(s), 0);
    }
    {
        const std::string key_file = dir + "/key.txt";
        std::ofstream(key_file) << "file-key\n";
        Server s =
            start(model, dir + "/key-file.log", "", "--disk-cache none --api-key-file " + key_file);
        ASSERT_NE(s.port, 0) << slurp(dir + "/key-file.log");
        EXPECT_EQ(status_with(s.port, "Authorization: Bearer file-key\r\n"), 200);
        EXPECT_EQ(status_with(s.port, "Authorization: Bearer file-ke\r\n"), 401);
        EXPECT_EQ(stop(s), 0);
        // The key is in no log line.
        EXPECT_EQ(slurp(dir + "/key-file.log").find("file-key"), std::string::npos);
    }
}

}  // namespace
}  // namespace latent::engine
