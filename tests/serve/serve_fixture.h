// A tiny model behind a real HttpServer on an ephemeral loopback port, and a small HTTP
// client over raw sockets, for the serve tests.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "engine/reference.h"
#include "engine/serve/http_server.h"
#include "tests/support/test_models.h"

namespace latent::serve::serve_test {

using namespace latent::engine;

using nlohmann::json;

struct Reply {
    int status = 0;
    std::string headers;  // lower-cased
    std::string body;     // de-chunked
};

inline int connect_to(uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

inline void send_all(int fd, const std::string& data) {
    size_t at = 0;
    while (at < data.size()) {
        const ssize_t n = ::send(fd, data.data() + at, data.size() - at, MSG_NOSIGNAL);
        if (n <= 0) return;  // the server may close early (413)
        at += static_cast<size_t>(n);
    }
}

inline std::string dechunk(const std::string& s) {
    std::string out;
    size_t at = 0;
    while (at < s.size()) {
        const size_t eol = s.find("\r\n", at);
        if (eol == std::string::npos) break;
        const size_t n = std::stoul(s.substr(at, eol - at), nullptr, 16);
        if (n == 0) break;
        out += s.substr(eol + 2, n);
        at = eol + 2 + n + 2;
    }
    return out;
}

inline Reply parse_reply(const std::string& raw) {
    Reply r;
    const size_t end = raw.find("\r\n\r\n");
    if (raw.size() < 12 || end == std::string::npos) return r;
    r.status = std::stoi(raw.substr(9, 3));
    r.headers = raw.substr(0, end);
    std::transform(r.headers.begin(), r.headers.end(), r.headers.begin(), ::tolower);
    r.body = raw.substr(end + 4);
    if (r.headers.find("transfer-encoding: chunked") != std::string::npos) r.body = dechunk(r.body);
    return r;
}

inline Reply http_exchange(uint16_t port, const std::string& request) {
    const int fd = connect_to(port);
    if (fd < 0) return {};
    send_all(fd, request);
    std::string raw;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;)
        raw.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return parse_reply(raw);
}

inline std::string post_request(const std::string& path, const std::string& body,
                                const std::string& extra = "") {
    return "POST " + path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" +
           extra + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

inline std::string get_request(const std::string& path, const std::string& extra = "") {
    return "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n" + extra + "\r\n";
}

// The JSON objects of an SSE body, and whether it ended with [DONE].
inline std::vector<json> events(const std::string& body, bool* done) {
    std::vector<json> out;
    *done = false;
    size_t at = 0;
    while ((at = body.find("data: ", at)) != std::string::npos) {
        const size_t end = body.find("\n\n", at);
        const std::string data = body.substr(at + 6, end - at - 6);
        at = end;
        if (data == "[DONE]") {
            *done = true;
            continue;
        }
        out.push_back(json::parse(data));
    }
    return out;
}

class ServeTest : public ::testing::Test {
protected:
    void SetUp() override { load(false); }
    // real_vocab: DeepSeek-V3's 129,280-token vocabulary (tool tokens and all) instead of
    // the small test one.
    void load(bool real_vocab) {
        MakeModelOptions o;
        o.preset = "tiny";
        o.quant = GgmlType::kQ8_0;
        auto m = Model::load(test::make_test_model(o, real_vocab));
        ASSERT_TRUE(m.ok()) << m.error().message;
        model = std::move(*m);
        auto t = Tokenizer::create(model->vocab());
        ASSERT_TRUE(t.ok());
        tokenizer = std::make_unique<Tokenizer>(std::move(*t));
    }
    void start(HttpServer::Options o = {}) {
        Scheduler::Options so;
        so.page_tokens = 4;
        so.prefix_cache_bytes = 1 << 20;
        so.cache_bytes = 16 << 20;
        auto s = Scheduler::create(*model, backend, so);
        ASSERT_TRUE(s.ok());
        scheduler = std::move(*s);
        o.port = 0;
        o.model_name = "tiny";
        server = std::make_unique<HttpServer>(*scheduler, *tokenizer, o);
        ASSERT_TRUE(server->start().ok());
        port = server->port();
    }
    void TearDown() override {
        server.reset();
        scheduler.reset();
    }
    Reply post(const std::string& path, const json& body, const std::string& extra = "") {
        return http_exchange(port, post_request(path, body.dump(), extra));
    }

    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tokenizer;
    ReferenceBackend backend;
    std::unique_ptr<Scheduler> scheduler;
    std::unique_ptr<HttpServer> server;
    uint16_t port = 0;
};

}  // namespace latent::serve::serve_test
