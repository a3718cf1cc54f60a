// `latent serve` against hostile and careless clients: a deeply nested body, bodies a web
// page could send without a preflight, foreign Host and Origin headers (DNS rebinding),
// API keys, clients that leave before a whole answer, clients that send slowly, and a
// chat with no max_tokens. Each of these crashed, leaked or stalled the server before.
#include <poll.h>

#include "engine/serve/request_guard.h"
#include "tests/serve/serve_fixture.h"

namespace latent::serve::serve_test {
namespace {

std::string raw_post(const std::string& path, const std::string& body, const std::string& headers) {
    return "POST " + path + " HTTP/1.1\r\n" + headers +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST_F(ServeTest, ADeeplyNestedBodyIsRefusedAndTheServerLives) {
    start();
    const size_t n = 1000000;  // the 2 MB body
    const std::string body =
        "{\"prompt\":\"x\",\"max_tokens\":1,\"suffix\":" + std::string(n, '[') +
        std::string(n, ']') + "}";
    const Reply r = http_exchange(port, post_request("/v1/completions", body));
    EXPECT_EQ(r.status, 400) << r.body.substr(0, 200);
    EXPECT_NE(r.body.find("nests"), std::string::npos) << r.body.substr(0, 200);
    // 64 levels are fine, 65 are not.
    auto nested = [](int depth) {
        return "{\"prompt\":\"x\",\"max_tokens\":1,\"user\":" + std::string(depth - 1, '[') +
               std::string(depth - 1, ']') + "}";
    };
    EXPECT_EQ(http_exchange(port, post_request("/v1/completions", nested(64))).status, 200);
    EXPECT_EQ(http_exchange(port, post_request("/v1/completions", nested(65))).status, 400);
    EXPECT_EQ(http_exchange(port, get_request("/health")).status, 200);
}

TEST_F(ServeTest, OnlyJsonBodiesAreRead) {
    start();
    const std::string body = json{{"prompt", "x"}, {"max_tokens", 1}}.dump();
    for (const char* type : {"text/plain", "application/x-www-form-urlencoded",
                             "multipart/form-data; boundary=x", ""}) {
        std::string h = "Host: localhost\r\n";
        if (*type) h += std::string("Content-Type: ") + type + "\r\n";
        const Reply r = http_exchange(port, raw_post("/v1/completions", body, h));
        EXPECT_EQ(r.status, 415) << type;
    }
    const Reply ok = http_exchange(
        port, raw_post("/v1/completions", body,
                       "Host: localhost\r\nContent-Type: Application/JSON; charset=utf-8\r\n"));
    EXPECT_EQ(ok.status, 200) << ok.body;
    EXPECT_EQ(scheduler->stats().requests, 1u);  // the refused ones never reached the model
}

TEST_F(ServeTest, AForeignHostOrOriginIsRefused) {
    start();
    const std::string body = json{{"prompt", "x"}, {"max_tokens", 1}}.dump();
    auto with = [&](const std::string& headers) {
        return http_exchange(port, raw_post("/v1/completions", body,
                                            headers + "Content-Type: application/json\r\n"));
    };
    // DNS rebinding: a page at attacker.example resolving to 127.0.0.1.
    EXPECT_EQ(with("Host: attacker.example:" + std::to_string(port) + "\r\n").status, 403);
    EXPECT_EQ(http_exchange(port, get_request("/v1/models")).status, 200);  // Host: localhost
    EXPECT_EQ(http_exchange(port, "GET /health HTTP/1.1\r\nHost: evil.test\r\n\r\n").status, 403);
    for (const char* host : {"localhost", "127.0.0.1", "[::1]", "127.0.0.1:80", "LOCALHOST."})
        EXPECT_EQ(with(std::string("Host: ") + host + "\r\n").status, 200) << host;
    // Any cross-origin request, preflight or not.
    EXPECT_EQ(with("Host: localhost\r\nOrigin: https://attacker.example\r\n").status, 403);
    EXPECT_EQ(with("Host: localhost\r\nOrigin: null\r\n").status, 403);
    EXPECT_EQ(scheduler->stats().requests, 5u);
}

TEST_F(ServeTest, AllowedHostsAndOriginsGetIn) {
    HttpServer::Options o;
    o.allowed_hosts = {"box.lan"};
    o.allowed_origins = {"http://localhost:3000"};
    start(o);
    const std::string body = json{{"prompt", "x"}, {"max_tokens", 1}}.dump();
    Reply r = http_exchange(port, raw_post("/v1/completions", body,
                                           "Host: box.lan:8080\r\nOrigin: http://localhost:3000\r\n"
                                           "Content-Type: application/json\r\n"));
    EXPECT_EQ(r.status, 200);
    EXPECT_NE(r.headers.find("access-control-allow-origin: http://localhost:3000"),
              std::string::npos)
        << r.headers;
    r = http_exchange(port,
                      "OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nOrigin: "
                      "http://localhost:3000\r\nAccess-Control-Request-Method: POST\r\n\r\n");
    EXPECT_EQ(r.status, 204);
    EXPECT_NE(r.headers.find("access-control-allow-headers: authorization, content-type"),
              std::string::npos)
        << r.headers;
    r = http_exchange(port, raw_post("/v1/completions", body,
                                     "Host: localhost\r\nOrigin: http://localhost:3001\r\n"
                                     "Content-Type: application/json\r\n"));
    EXPECT_EQ(r.status, 403);
}

TEST(RequestGuardTest, KeysCompareInConstantTimeAndBearerInAnyCase) {
    EXPECT_TRUE(constant_time_equal("sekrit", "sekrit"));
    EXPECT_FALSE(constant_time_equal("sekrit", "sekriT"));
    EXPECT_FALSE(constant_time_equal("sekrit", "sekrit2"));
    EXPECT_FALSE(constant_time_equal("", "x"));
    EXPECT_TRUE(constant_time_equal("", ""));
    EXPECT_EQ(bearer_token("Bearer k1"), "k1");
    EXPECT_EQ(bearer_token("bearer k1"), "k1");
    EXPECT_EQ(bearer_token("BEARER   k1  "), "k1");
    EXPECT_EQ(bearer_token("Basic k1"), std::nullopt);
    EXPECT_EQ(bearer_token("Bearer"), std::nullopt);
    GuardOptions g;
    g.api_key = "k1";
    RequestGuard guard(g);
    RequestHeaders h;
    h.method = "GET";
    h.path = "/v1/models";
    h.host = "localhost";
    h.authorization = "bearer k1";
    EXPECT_FALSE(guard.check(h));
    h.authorization = "Bearer k2";
    ASSERT_TRUE(guard.check(h));
    EXPECT_EQ(guard.check(h)->status, 401);
    h.path = "/health";
    EXPECT_FALSE(guard.check(h));
}

TEST(RequestGuardTest, AWildcardBindAcceptsAnyHostUnlessHostsAreListed) {
    GuardOptions g;
    g.bound_host = "0.0.0.0";
    RequestHeaders h;
    h.method = "GET";
    h.path = "/health";
    h.host = "box.lan";
    EXPECT_FALSE(RequestGuard(g).check(h));
    g.allowed_hosts = {"other.lan"};
    EXPECT_TRUE(RequestGuard(g).check(h));
    g.bound_host = "192.168.1.5";
    g.allowed_hosts = {};
    h.host = "192.168.1.5:8080";
    EXPECT_FALSE(RequestGuard(g).check(h));
    h.host = "192.168.1.6";
    EXPECT_TRUE(RequestGuard(g).check(h));
}

// Waits (bounded, so a broken build fails instead of hanging) until `done` holds.
template <class F>
bool eventually(F done) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!done() && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return done();
}

TEST_F(ServeTest, AClientLeavingBeforeAWholeAnswerCancelsIt) {
    start();
    for (const bool chat : {false, true}) {
        const uint64_t before = scheduler->stats().cancelled;
        const int fd = connect_to(port);
        ASSERT_GE(fd, 0);
        const json req = chat ? json{{"messages", {{{"role", "user"}, {"content", "hi"}}}},
                                     {"max_tokens", 100000},
                                     {"temperature", 0}}
                              : json{{"prompt", "x"}, {"max_tokens", 100000}, {"temperature", 0}};
        const uint64_t generated = scheduler->stats().generated_tokens;
        send_all(fd, post_request(chat ? "/v1/chat/completions" : "/v1/completions", req.dump()));
        // Once it generates, leave without reading.
        ASSERT_TRUE(eventually([&] { return scheduler->stats().running == 1; }));
        (void)generated;
        ::close(fd);
        EXPECT_TRUE(eventually([&] { return scheduler->stats().cancelled == before + 1; }))
            << (chat ? "chat" : "completion");
        scheduler->wait_idle();
    }
    EXPECT_LT(scheduler->stats().generated_tokens, 100000u);
}

TEST_F(ServeTest, AChatWithoutMaxTokensStopsAtTheDefaultCap) {
    HttpServer::Options o;
    o.default_chat_max_tokens = 6;
    start(o);
    const json req = {{"messages", {{{"role", "user"}, {"content", "hi"}}}},
                      {"temperature", 0},
                      {"ignore_eos", true}};
    const Reply r = post("/v1/chat/completions", req);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_LE(json::parse(r.body)["usage"]["completion_tokens"].get<int>(), 6);
}

TEST_F(ServeTest, SlowSendersCannotKeepOthersOut) {
    HttpServer::Options o;
    o.max_reading = 16;
    o.max_connections = 4;
    start(o);
    // Twice as many slow clients as may read at once, each stuck in its headers (the
    // old server gave each a thread until its 30 s read timeout: /health answered 503).
    std::vector<int> slow;
    for (int i = 0; i < 32; ++i) {
        const int fd = connect_to(port);
        ASSERT_GE(fd, 0);
        send_all(fd, "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1\r\n");
        slow.push_back(fd);
    }
    for (int round = 0; round < 3; ++round) {
        EXPECT_EQ(http_exchange(port, get_request("/health")).status, 200);
        const Reply r = post("/v1/completions", json{{"prompt", "x"}, {"max_tokens", 2}});
        EXPECT_EQ(r.status, 200) << r.body;
        for (int fd : slow) send_all(fd, "X-More: 1\r\n");  // still trickling
    }
    // The oldest slow clients were dropped to make room; their sockets see the end.
    int closed = 0;
    for (int fd : slow) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 0) > 0) ++closed;
        ::close(fd);
    }
    EXPECT_GE(closed, 16);
}

TEST_F(ServeTest, AHeaderTooSlowIsDroppedAtItsDeadline) {
    HttpServer::Options o;
    o.header_timeout_s = 0.2;
    start(o);
    const int fd = connect_to(port);
    ASSERT_GE(fd, 0);
    send_all(fd, "GET /health HTTP/1.1\r\n");
    std::string raw;
    char buf[1024];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) raw.append(buf, size_t(n));
    ::close(fd);
    EXPECT_EQ(raw, "");  // closed at the deadline, without an answer
    const Reply m = http_exchange(port, get_request("/metrics"));
    EXPECT_NE(m.body.find("latent_http_read_timeouts_total 1\n"), std::string::npos) << m.body;
}

}  // namespace
}  // namespace latent::serve::serve_test
