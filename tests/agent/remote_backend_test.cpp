// RemoteBackend against a fake OpenAI-compatible server on loopback, started by the test.
#include "agent/remote_backend.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <mutex>
#include <thread>

namespace latent::agent {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using nlohmann::json;

// Answers each connection with one scripted reply: status, content type, and body parts
// written with `gap_ms` between them (to test streaming and cancellation).
class FakeServer {
public:
    struct Reply {
        int status = 200;
        std::string content_type = "text/event-stream";
        std::vector<std::string> parts;
        int gap_ms = 0;
        bool never_answer = false;
    };
    explicit FakeServer(std::vector<Reply> replies)
        : replies_(std::move(replies)), acceptor_(ioc_, {asio::ip::make_address("127.0.0.1"), 0}) {
        port_ = acceptor_.local_endpoint().port();
        thread_ = std::thread([this] { run(); });
    }
    ~FakeServer() {
        stop_ = true;
        beast::error_code ec;
        // Wake accept() with a connection of our own.
        tcp::socket s(ioc_);
        s.connect({asio::ip::make_address("127.0.0.1"), port_}, ec);
        thread_.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    std::vector<http::request<http::string_body>> requests() {
        std::lock_guard<std::mutex> lock(mu_);
        return requests_;
    }

private:
    // Sleeps, but not past the server's end (so the tests never wait on it).
    void nap(int ms) {
        for (int i = 0; i < ms / 10 && !stop_; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    void run() {
        for (size_t i = 0; !stop_; ++i) {
            tcp::socket s(ioc_);
            beast::error_code ec;
            acceptor_.accept(s, ec);
            if (ec || stop_) return;
            beast::flat_buffer buf;
            http::request<http::string_body> req;
            http::read(s, buf, req, ec);
            if (ec) continue;
            {
                std::lock_guard<std::mutex> lock(mu_);
                requests_.push_back(req);
            }
            const Reply& r = replies_[std::min(i, replies_.size() - 1)];
            if (r.never_answer) {
                nap(5000);
                continue;
            }
            std::string head = "HTTP/1.1 " + std::to_string(r.status) +
                               " X\r\nContent-Type: " + r.content_type +
                               "\r\nConnection: close\r\n\r\n";
            asio::write(s, asio::buffer(head), ec);
            for (const auto& p : r.parts) {
                asio::write(s, asio::buffer(p), ec);
                if (ec) break;
                nap(r.gap_ms);
            }
            s.shutdown(tcp::socket::shutdown_both, ec);
        }
    }

    std::vector<Reply> replies_;
    asio::io_context ioc_;
    tcp::acceptor acceptor_;
    unsigned short port_ = 0;
    std::atomic<bool> stop_{false};
    std::mutex mu_;
    std::vector<http::request<http::string_body>> requests_;
    std::thread thread_;
};

std::string sse(const json& j) { return "data: " + j.dump() + "\n\n"; }

struct Logs {
    std::mutex mu;
    std::string all;
    std::function<void(const std::string&)> fn() {
        return [this](const std::string& l) {
            std::lock_guard<std::mutex> lock(mu);
            all += l + "\n";
        };
    }
};

std::unique_ptr<RemoteBackend> make(const std::string& url, Logs& logs, int timeout_ms = 5000) {
    RemoteOptions o;
    o.url = url;
    o.model = "coder";
    o.api_key = "sk-secret-123";
    o.request_timeout_ms = timeout_ms;
    o.backoff_ms = 10;
    o.log = logs.fn();
    auto r = RemoteBackend::create(o);
    EXPECT_TRUE(r) << r.error().message;
    return std::move(*r);
}

TEST(RemoteBackendTest, FimStreamsThroughCompletionsWithSuffix) {
    FakeServer server(
        {{200,
          "text/event-stream",
          {sse({{"choices", {{{"text", "return "}}}}}), sse({{"choices", {{{"text", "a + b;"}}}}}),
           sse({{"choices", json::array()},
                {"usage",
                 {{"prompt_tokens", 50}, {"prompt_tokens_details", {{"cached_tokens", 40}}}}}}),
           "data: [DONE]\n\n"}}});
    Logs logs;
    auto b = make(server.url(), logs);
    GenerateOptions go;
    go.max_tokens = 16;
    auto r = b->fim({"// ctx\n", "int f() {\n    ", "\n}\n"}, go);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->text, "return a + b;");
    EXPECT_EQ(r->cached_tokens, 40);
    EXPECT_EQ(r->computed_tokens, 10);
    const auto reqs = server.requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].target(), "/v1/completions");
    EXPECT_EQ(reqs[0][http::field::authorization], "Bearer sk-secret-123");
    const json body = json::parse(reqs[0].body());
    EXPECT_EQ(body["prompt"], "// ctx\nint f() {\n    ");
    EXPECT_EQ(body["suffix"], "\n}\n");
    EXPECT_EQ(body["model"], "coder");
    EXPECT_EQ(body["stream"], true);
    EXPECT_EQ(body["max_tokens"], 16);
    EXPECT_EQ(logs.all.find("sk-secret"), std::string::npos);
}

TEST(RemoteBackendTest, FimThroughLlamaCppInfillAtTheServerRoot) {
    // llama.cpp's server: its own event shape (content, then stop with timings).
    FakeServer server({{200,
                        "text/event-stream",
                        {sse({{"content", "return "}, {"stop", false}}),
                         sse({{"content", "a;"}, {"stop", false}}),
                         sse({{"content", ""},
                              {"stop", true},
                              {"timings", {{"cache_n", 30}, {"prompt_n", 7}}}})}}});
    Logs logs;
    RemoteOptions o;
    o.url = server.url() + "/v1";
    o.fim_api = "infill";
    o.log = logs.fn();
    auto b = RemoteBackend::create(o);
    ASSERT_TRUE(b) << b.error().message;
    GenerateOptions go;
    go.max_tokens = 12;
    auto r = (*b)->fim({"// ctx\n", "int f() {\n    ", "\n}\n"}, go);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->text, "return a;");
    EXPECT_GE(r->first_token_ms, 0.0);
    EXPECT_EQ(r->cached_tokens, 30);
    EXPECT_EQ(r->computed_tokens, 7);
    const auto reqs = server.requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].target(), "/infill");
    const json body = json::parse(reqs[0].body());
    EXPECT_EQ(body["input_prefix"], "// ctx\nint f() {\n    ");
    EXPECT_EQ(body["input_suffix"], "\n}\n");
    EXPECT_EQ(body["n_predict"], 12);
    EXPECT_EQ(body["cache_prompt"], true);
    EXPECT_FALSE(body.contains("suffix"));
}

TEST(RemoteBackendTest, ChatStreamsDeltasAndAcceptsAPlainJsonAnswer) {
    FakeServer server(
        {{200,
          "text/event-stream",
          {sse({{"choices", {{{"delta", {{"role", "assistant"}}}}}}}),
           sse({{"choices", {{{"delta", {{"content", "Hel"}}}}}}}),
           sse({{"choices", {{{"delta", {{"content", "lo"}}}}}}}), "data: [DONE]\n\n"}},
         {200,
          "application/json",
          {json{{"choices", {{{"message", {{"content", "whole"}}}}}}}.dump()}}});
    Logs logs;
    auto b = make(server.url() + "/beta/", logs);
    std::string streamed;
    GenerateOptions go;
    go.on_text = [&](std::string_view p) { streamed += p; };
    auto r = b->chat({{"user", "hi"}}, go);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->text, "Hello");
    EXPECT_EQ(streamed, "Hello");
    EXPECT_EQ(server.requests()[0].target(), "/beta/chat/completions");
    auto r2 = b->chat({{"user", "again"}}, {});
    ASSERT_TRUE(r2) << r2.error().message;
    EXPECT_EQ(r2->text, "whole");
}

TEST(RemoteBackendTest, HttpErrorsBecomeClearMessagesWithoutTheKey) {
    FakeServer server({{401, "application/json", {R"({"error":{"message":"bad key"}})"}},
                       {429, "application/json", {"{}"}},
                       {503, "text/plain", {"overloaded"}}});
    Logs logs;
    auto b = make(server.url(), logs);
    auto r1 = b->fim({"", "x", ""}, {});
    ASSERT_FALSE(r1);
    EXPECT_NE(r1.error().message.find("API key"), std::string::npos) << r1.error().message;
    EXPECT_NE(r1.error().message.find("bad key"), std::string::npos);
    EXPECT_EQ(r1.error().message.find("sk-secret"), std::string::npos);
    auto r2 = b->fim({"", "x", ""}, {});
    ASSERT_FALSE(r2);
    EXPECT_NE(r2.error().message.find("429"), std::string::npos);
    auto r3 = b->fim({"", "x", ""}, {});
    ASSERT_FALSE(r3);
    EXPECT_NE(r3.error().message.find("503"), std::string::npos);
    EXPECT_NE(r3.error().message.find("overloaded"), std::string::npos);
}

TEST(RemoteBackendTest, ConnectionFailuresAreRetriedThenReported) {
    unsigned short port;
    {
        asio::io_context ioc;
        tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
        port = a.local_endpoint().port();
    }  // closed: connections to it are refused
    Logs logs;
    auto b = make("http://127.0.0.1:" + std::to_string(port), logs);
    auto r = b->fim({"", "x", ""}, {});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("cannot connect"), std::string::npos) << r.error().message;
    EXPECT_NE(logs.all.find("retrying"), std::string::npos);
    EXPECT_EQ(logs.all.find("sk-secret"), std::string::npos);
}

TEST(RemoteBackendTest, TimesOutAndCancels) {
    {
        FakeServer server({{200, "text/event-stream", {}, 0, true}});
        Logs logs;
        auto b = make(server.url(), logs, 300);
        const auto t0 = std::chrono::steady_clock::now();
        auto r = b->fim({"", "x", ""}, {});
        ASSERT_FALSE(r);
        EXPECT_NE(r.error().message.find("timed out"), std::string::npos) << r.error().message;
        EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
    }
    FakeServer server(
        {{200,
          "text/event-stream",
          {sse({{"choices", {{{"text", "a"}}}}}), sse({{"choices", {{{"text", "b"}}}}})},
          5000}});
    Logs logs;
    auto b = make(server.url(), logs);
    std::atomic<bool> stop{false};
    GenerateOptions go;
    go.on_text = [&](std::string_view) { stop = true; };
    go.cancelled = [&] { return stop.load(); };
    const auto t0 = std::chrono::steady_clock::now();
    auto r = b->fim({"", "x", ""}, go);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->cancelled);
    EXPECT_EQ(r->text, "a");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2500));
}

TEST(RemoteBackendTest, ParsesUrls) {
    auto u = RemoteBackend::parse_url("https://api.deepseek.com/beta");
    ASSERT_TRUE(u);
    EXPECT_TRUE(u->tls);
    EXPECT_EQ(u->host, "api.deepseek.com");
    EXPECT_EQ(u->port, "443");
    EXPECT_EQ(u->base, "/beta");
    u = RemoteBackend::parse_url("http://[::1]:8000");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->host, "::1");
    EXPECT_EQ(u->port, "8000");
    EXPECT_EQ(u->base, "/v1");
    EXPECT_FALSE(RemoteBackend::parse_url("ftp://x"));
    EXPECT_FALSE(RemoteBackend::parse_url("http://user:pw@host"));
    EXPECT_FALSE(RemoteBackend::parse_url("http://host:abc"));
    EXPECT_NE(http_error_message(500, "").find("failed"), std::string::npos);
}

}  // namespace
}  // namespace latent::agent
