// RemoteGenerator against a fake OpenAI-compatible server on loopback, started by the test,
// over plain HTTP and over TLS (a certificate made by the test: trusted, untrusted, and
// issued for another host name).
#include "agent/remote_generator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "engine/model.h"
#include "engine/prompt_format.h"
#include "engine/tokenizer.h"
#include "tests/support/test_models.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

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

std::unique_ptr<RemoteGenerator> make(const std::string& url, Logs& logs, int timeout_ms = 5000) {
    RemoteOptions o;
    o.url = url;
    o.model = "coder";
    o.api_key = "sk-secret-123";
    o.request_timeout_ms = timeout_ms;
    o.backoff_ms = 10;
    o.log = logs.fn();
    auto r = RemoteGenerator::create(o);
    EXPECT_TRUE(r) << r.error().message;
    return std::move(*r);
}

TEST(RemoteGeneratorTest, FimStreamsThroughCompletionsWithSuffix) {
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
    auto r = b->fim({"// ctx\n", "int f() {\n", "\n}\n", "    "}, go);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->text, "return a + b;");
    EXPECT_EQ(r->prompt_tokens, 50);
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

TEST(RemoteGeneratorTest, FimThroughLlamaCppInfillAtTheServerRoot) {
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
    auto b = RemoteGenerator::create(o);
    ASSERT_TRUE(b) << b.error().message;
    GenerateOptions go;
    go.max_tokens = 12;
    auto r = (*b)->fim({"// ctx\n", "int f() {\n", "\n}\n", "    "}, go);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->text, "return a;");
    EXPECT_GE(r->first_token_ms, 0.0);
    EXPECT_EQ(r->prompt_tokens, 37);
    EXPECT_EQ(r->cached_tokens, 30);
    EXPECT_EQ(r->computed_tokens, 7);
    const auto reqs = server.requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].target(), "/infill");
    const json body = json::parse(reqs[0].body());
    // llama.vscode's shape: the lines before the cursor's, then the cursor's line up to it.
    EXPECT_EQ(body["input_prefix"], "// ctx\nint f() {\n");
    EXPECT_EQ(body["prompt"], "    ");
    EXPECT_EQ(body["input_suffix"], "\n}\n");
    EXPECT_EQ(body["n_predict"], 12);
    EXPECT_EQ(body["cache_prompt"], true);
    EXPECT_FALSE(body.contains("suffix"));
}

TEST(RemoteGeneratorTest, FimRawSendsTheTemplateAsThePromptWithoutSuffix) {
    FakeServer server(
        {{200,
          "text/event-stream",
          {sse({{"choices", {{{"text", "return a;"}, {"finish_reason", nullptr}}}}}),
           sse({{"choices", {{{"text", ""}, {"finish_reason", "stop"}}}}}), "data: [DONE]\n\n"}}});
    Logs logs;
    RemoteOptions o;
    o.url = server.url();
    o.fim_api = "raw";
    o.log = logs.fn();
    auto b = RemoteGenerator::create(o);
    ASSERT_TRUE(b) << b.error().message;
    auto r = (*b)->fim({"// ctx\n", "int f() {\n", "\n}\n", "    "}, {});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->text, "return a;");
    EXPECT_EQ(r->finish_reason, "stop");
    // Another family's markers (Qwen2.5-Coder's), from the settings.
    o.fim_template = {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"};
    auto q = RemoteGenerator::create(o);
    ASSERT_TRUE(q) << q.error().message;
    ASSERT_TRUE((*q)->fim({"", "a(", ")", ""}, {}));
    const auto reqs = server.requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].target(), "/v1/completions");
    const json body = json::parse(reqs[0].body());
    // DeepSeek's PSM order with the middle so far after the last marker; no BOS (the
    // server adds it) and no suffix field (vLLM refuses one).
    EXPECT_EQ(body["prompt"],
              "<｜fim▁begin｜>// ctx\nint f() {\n<｜fim▁hole｜>\n}\n<｜fim▁end｜>    ");
    EXPECT_FALSE(body.contains("suffix"));
    EXPECT_EQ(body["stream"], true);
    EXPECT_EQ(json::parse(reqs[1].body())["prompt"],
              "<|fim_prefix|>a(<|fim_suffix|>)<|fim_middle|>");
}

TEST(RemoteGeneratorTest, ChatPassesToolsToolChoiceAndResponseFormatThroughAsGiven) {
    const std::string sse_text = sse({{"choices", {{{"delta", {{"content", "ok"}}}}}}});
    FakeServer server({{200, "text/event-stream", {sse_text}}});
    Logs logs;
    auto b = make(server.url(), logs);
    const json tools = json::parse(R"([{"type": "function", "function": {"name": "read_file",
        "description": "Reads a file", "parameters": {"type": "object", "properties":
        {"path": {"type": "string"}}, "required": ["path"]}}}])");
    const json choice = {{"type", "function"}, {"function", {{"name", "read_file"}}}};
    const json format = json::parse(R"({"type": "json_schema", "json_schema": {"name": "answer",
        "strict": true, "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}})");
    GenerateOptions go;
    go.tools = tools;
    go.tool_choice = choice;
    go.response_format = format;
    auto r = b->chat({{"user", "read a.cc"}}, go);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->text, "ok");
    ASSERT_TRUE(b->chat({{"user", "plain"}}, {}));
    // FIM requests never carry them, even if set.
    ASSERT_TRUE(b->fim({"", "x", ""}, go));
    const auto reqs = server.requests();
    ASSERT_EQ(reqs.size(), 3u);
    const json body = json::parse(reqs[0].body());
    EXPECT_EQ(body["tools"], tools);
    EXPECT_EQ(body["tool_choice"], choice);
    EXPECT_EQ(body["response_format"], format);
    for (size_t i : {1u, 2u}) {
        const json plain = json::parse(reqs[i].body());
        EXPECT_FALSE(plain.contains("tools")) << i;
        EXPECT_FALSE(plain.contains("tool_choice")) << i;
        EXPECT_FALSE(plain.contains("response_format")) << i;
    }
}

// One streamed tool-call piece in OpenAI's shape; absent fields left out.
json tool_delta(int index, const std::string& id, const std::string& name,
                const std::string& args) {
    json f = json::object();
    if (!name.empty()) f["name"] = name;
    if (!args.empty()) f["arguments"] = args;
    json tc = {{"index", index}, {"function", f}};
    if (!id.empty()) {
        tc["id"] = id;
        tc["type"] = "function";
    }
    return {{"choices",
             {{{"index", 0},
               {"delta", {{"tool_calls", json::array({tc})}}},
               {"finish_reason", nullptr}}}}};
}

TEST(RemoteGeneratorTest, ChatAssemblesStreamedToolCallPiecesByIndex) {
    // Two parallel calls whose pieces interleave; names and arguments come in pieces,
    // and the second call's first piece arrives before the first call's.
    FakeServer server(
        {{200,
          "text/event-stream",
          {sse({{"choices", {{{"delta", {{"role", "assistant"}, {"content", nullptr}}}}}}}),
           sse(tool_delta(1, "call_b", "gr", "")), sse(tool_delta(0, "call_a", "read_", "")),
           sse(tool_delta(0, "", "file", R"({"pa)")), sse(tool_delta(1, "", "ep", R"({"pattern")")),
           sse(tool_delta(0, "", "", R"(th":"a.cc"})")), sse(tool_delta(1, "", "", R"(:"x"})")),
           sse({{"choices",
                 {{{"index", 0}, {"delta", json::object()}, {"finish_reason", "tool_calls"}}}}}),
           sse({{"choices", json::array()}, {"usage", {{"prompt_tokens", 12}}}}),
           "data: [DONE]\n\n"}}});
    Logs logs;
    auto b = make(server.url(), logs);
    std::string streamed;
    GenerateOptions go;
    go.tools = json::array();
    go.on_text = [&](std::string_view p) { streamed += p; };
    auto r = b->chat({{"user", "find x in a.cc"}}, go);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->finish_reason, "tool_calls");
    EXPECT_EQ(r->text, "");
    EXPECT_EQ(streamed, "");
    EXPECT_EQ(r->prompt_tokens, 12);
    EXPECT_GE(r->first_token_ms, 0.0);
    ASSERT_EQ(r->tool_calls.size(), 2u);
    EXPECT_EQ(r->tool_calls[0].id, "call_a");
    EXPECT_EQ(r->tool_calls[0].name, "read_file");
    EXPECT_EQ(r->tool_calls[0].arguments, R"({"path":"a.cc"})");
    EXPECT_EQ(r->tool_calls[1].id, "call_b");
    EXPECT_EQ(r->tool_calls[1].name, "grep");
    EXPECT_EQ(r->tool_calls[1].arguments, R"({"pattern":"x"})");
}

TEST(RemoteGeneratorTest, ChatParsesToolCallsOfAWholeAnswer) {
    // Not streamed: each call once, in order; one server sends the arguments as an object.
    const json answer = {
        {"choices",
         {{{"index", 0},
           {"message",
            {{"role", "assistant"},
             {"content", nullptr},
             {"tool_calls",
              {{{"id", "call_1"},
                {"type", "function"},
                {"function", {{"name", "read_file"}, {"arguments", R"({"path":"a.cc"})"}}}},
               {{"id", "call_2"},
                {"type", "function"},
                {"function", {{"name", "grep"}, {"arguments", {{"pattern", "x"}}}}}}}}}},
           {"finish_reason", "tool_calls"}}}}};
    FakeServer server({{200, "application/json", {answer.dump()}}});
    Logs logs;
    auto b = make(server.url(), logs);
    auto r = b->chat({{"user", "find x in a.cc"}}, {});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->finish_reason, "tool_calls");
    EXPECT_EQ(r->text, "");
    ASSERT_EQ(r->tool_calls.size(), 2u);
    EXPECT_EQ(r->tool_calls[0].id, "call_1");
    EXPECT_EQ(r->tool_calls[0].name, "read_file");
    EXPECT_EQ(r->tool_calls[0].arguments, R"({"path":"a.cc"})");
    EXPECT_EQ(r->tool_calls[1].id, "call_2");
    EXPECT_EQ(r->tool_calls[1].name, "grep");
    EXPECT_EQ(json::parse(r->tool_calls[1].arguments), json({{"pattern", "x"}}));
}

// `latent serve` (the binary, so that this test does not depend on the server's headers)
// on a free loopback port with a tiny model; stopped with SIGTERM at the end.
class LatentServe {
public:
    explicit LatentServe(const std::string& model) {
        {
            asio::io_context ioc;
            tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
            port_ = a.local_endpoint().port();
        }
        const std::vector<std::string> args = {
            LATENT_BINARY, "serve",     "--model", model,    "--backend",
            "reference",   "--threads", "1",       "--port", std::to_string(port_)};
        std::vector<char*> argv;
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        if (posix_spawn(&pid_, LATENT_BINARY, &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
        posix_spawn_file_actions_destroy(&fa);
    }
    ~LatentServe() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
    }
    // Waits up to 30 s for the port to accept connections.
    bool ready() const {
        for (int i = 0; pid_ > 0 && i < 300; ++i) {
            asio::io_context ioc;
            tcp::socket s(ioc);
            beast::error_code ec;
            s.connect({asio::ip::make_address("127.0.0.1"), port_}, ec);
            if (!ec) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        return false;
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

private:
    unsigned short port_ = 0;
    pid_t pid_ = -1;
};

// Raw FIM against `latent serve`: the prompt must reach the model as the FIM layout's ids
// (ENGINE_SPEC §4.3: BOS, then the three markers as their special tokens), as it does on
// vLLM and llama.cpp's server: the server tokenizes a raw text prompt on
// /v1/completions with special tokens parsed and the model's BOS added, as vLLM and
// llama.cpp's server do.
TEST(RemoteGeneratorTest, RawFimReachesLatentServeAsTheFimTokens) {
    engine::MakeModelOptions mo;
    mo.preset = "tiny";
    mo.quant = engine::GgmlType::kQ8_0;
    const std::string path = test::make_test_model(mo);
    auto model = engine::Model::load(path);
    ASSERT_TRUE(model.ok()) << model.error().message;
    auto tok = engine::Tokenizer::create((*model)->vocab());
    ASSERT_TRUE(tok.ok()) << tok.error().message;
    const FimPrompt p{"// a.h\nint g();\n", "int f() {\n", "\n}\n", "    return "};
    auto want = engine::fim_tokens(*tok, p.context + p.prefix, p.suffix, p.middle);
    ASSERT_TRUE(want.ok()) << want.error().message;
    // What the server must do with the raw prompt gives exactly the FIM layout's ids.
    EXPECT_EQ(tok->encode(FimTemplate{}.render(p), tok->add_bos_by_default(), true), *want);

    LatentServe serve(path);
    ASSERT_TRUE(serve.ready());
    RemoteOptions o;
    o.url = serve.url();
    o.fim_api = "raw";
    auto b = RemoteGenerator::create(o);
    ASSERT_TRUE(b) << b.error().message;
    GenerateOptions go;
    go.max_tokens = 2;
    auto r = (*b)->fim(p, go);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->prompt_tokens, static_cast<int32_t>(want->size()));
}

TEST(RemoteGeneratorTest, EnoughEndsTheStreamWithTheTextSoFar) {
    FakeServer server({{200,
                        "text/event-stream",
                        {sse({{"content", "one();\n"}, {"stop", false}}),
                         sse({{"content", "two();\n"}, {"stop", false}}),
                         sse({{"content", "three();"}, {"stop", false}}),
                         sse({{"content", ""}, {"stop", true}})}}});
    RemoteOptions o;
    o.url = server.url();
    o.fim_api = "infill";
    auto b = RemoteGenerator::create(o);
    ASSERT_TRUE(b) << b.error().message;
    GenerateOptions go;
    int calls = 0;
    go.enough = [&](std::string_view t) {
        ++calls;
        return t.find("two") != std::string_view::npos;
    };
    auto r = (*b)->fim({"", "x\n", ""}, go);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->text, "one();\ntwo();\n");
    EXPECT_TRUE(r->ended_early);
    EXPECT_FALSE(r->cancelled);
    EXPECT_EQ(calls, 2);
}

TEST(RemoteGeneratorTest, ChatStreamsDeltasAndAcceptsAPlainJsonAnswer) {
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

TEST(RemoteGeneratorTest, HttpErrorsBecomeClearMessagesWithoutTheKey) {
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

TEST(RemoteGeneratorTest, ConnectionFailuresAreRetriedThenReported) {
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

TEST(RemoteGeneratorTest, TimesOutAndCancels) {
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

// A self-signed certificate and its key (PEM), made with OpenSSL for `san` (e.g.
// "IP:127.0.0.1,DNS:localhost").
struct TestCert {
    std::string cert_pem, key_pem;
};

TestCert make_cert(const std::string& common_name, const std::string& san) {
    TestCert out;
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), static_cast<long>(std::rand() % 100000 + 1));
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
    for (const auto& [ext_name, value] :
         {std::pair<const char*, std::string>{"subjectAltName", san},
          {"basicConstraints", "critical,CA:TRUE"}}) {
        X509_EXTENSION* ext = X509V3_EXT_conf(nullptr, &v3, ext_name, value.c_str());
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    X509_sign(x, key, EVP_sha256());
    auto pem = [](auto write) {
        BIO* bio = BIO_new(BIO_s_mem());
        write(bio);
        char* data = nullptr;
        const long n = BIO_get_mem_data(bio, &data);
        std::string s(data, static_cast<size_t>(n));
        BIO_free(bio);
        return s;
    };
    out.cert_pem = pem([&](BIO* b) { PEM_write_bio_X509(b, x); });
    out.key_pem = pem(
        [&](BIO* b) { PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
    X509_free(x);
    EVP_PKEY_free(key);
    return out;
}

// One TLS connection at a time on loopback, each answered with the same SSE stream.
class FakeTlsServer {
public:
    explicit FakeTlsServer(const TestCert& cert)
        : ctx_(asio::ssl::context::tls_server),
          acceptor_(ioc_, {asio::ip::make_address("127.0.0.1"), 0}) {
        ctx_.use_certificate_chain(asio::buffer(cert.cert_pem));
        ctx_.use_private_key(asio::buffer(cert.key_pem), asio::ssl::context::pem);
        port_ = acceptor_.local_endpoint().port();
        thread_ = std::thread([this] { run(); });
    }
    ~FakeTlsServer() {
        stop_ = true;
        beast::error_code ec;
        tcp::socket s(ioc_);
        s.connect({asio::ip::make_address("127.0.0.1"), port_}, ec);
        thread_.join();
    }
    std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }
    int requests() const { return requests_; }

private:
    void run() {
        while (!stop_) {
            tcp::socket s(ioc_);
            beast::error_code ec;
            acceptor_.accept(s, ec);
            if (ec || stop_) return;
            asio::ssl::stream<tcp::socket&> tls(s, ctx_);
            tls.handshake(asio::ssl::stream_base::server, ec);
            if (ec) continue;  // the client refused our certificate
            beast::flat_buffer buf;
            http::request<http::string_body> req;
            http::read(tls, buf, req, ec);
            if (ec) continue;
            ++requests_;
            const std::string body =
                sse({{"choices", {{{"text", "secure"}}}}}) + "data: [DONE]\n\n";
            const std::string msg =
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: " +
                std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
            asio::write(tls, asio::buffer(msg), ec);
            tls.shutdown(ec);
        }
    }

    asio::io_context ioc_;
    asio::ssl::context ctx_;
    tcp::acceptor acceptor_;
    unsigned short port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> requests_{0};
    std::thread thread_;
};

// Points OpenSSL's default trust store (what the backend verifies against) at one PEM file.
class TrustOnly {
public:
    explicit TrustOnly(const std::string& pem)
        : path_(std::filesystem::temp_directory_path() /
                ("latent-ca-" + std::to_string(::getpid()) + ".pem")) {
        std::ofstream(path_) << pem;
        ::setenv("SSL_CERT_FILE", path_.c_str(), 1);
        ::setenv("SSL_CERT_DIR", "/nonexistent", 1);
    }
    ~TrustOnly() {
        ::unsetenv("SSL_CERT_FILE");
        ::unsetenv("SSL_CERT_DIR");
        std::filesystem::remove(path_);
    }

private:
    std::filesystem::path path_;
};

TEST(RemoteGeneratorTest, HttpsWithATrustedCertificate) {
    const TestCert cert = make_cert("127.0.0.1", "IP:127.0.0.1,DNS:localhost");
    FakeTlsServer server(cert);
    TrustOnly trust(cert.cert_pem);
    Logs logs;
    auto b = make(server.url(), logs);
    GenerateOptions go;
    go.max_tokens = 4;
    auto r = b->fim({"", "int f() {", "}"}, go);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->text, "secure");
    EXPECT_EQ(server.requests(), 1);
    EXPECT_NE(b->describe().find("https://"), std::string::npos);
}

TEST(RemoteGeneratorTest, HttpsRefusesAnUntrustedCertificateAndAWrongHostName) {
    const TestCert cert = make_cert("127.0.0.1", "IP:127.0.0.1");
    const TestCert other = make_cert("elsewhere", "DNS:elsewhere.test");
    GenerateOptions go;
    go.max_tokens = 4;
    {
        // Self-signed and not in the trust store.
        FakeTlsServer server(cert);
        TrustOnly trust(other.cert_pem);
        Logs logs;
        auto r = make(server.url(), logs)->fim({"", "x", ""}, go);
        ASSERT_FALSE(r);
        EXPECT_NE(r.error().message.find("TLS handshake"), std::string::npos) << r.error().message;
        EXPECT_NE(r.error().message.find("certificate"), std::string::npos) << r.error().message;
        EXPECT_EQ(server.requests(), 0);  // nothing (no key) was sent
    }
    {
        // Trusted, but issued for another name than the one connected to.
        FakeTlsServer server(other);
        TrustOnly trust(other.cert_pem);
        Logs logs;
        auto r = make(server.url(), logs)->fim({"", "x", ""}, go);
        ASSERT_FALSE(r);
        EXPECT_NE(r.error().message.find("TLS handshake"), std::string::npos) << r.error().message;
        EXPECT_EQ(server.requests(), 0);
    }
}

TEST(RemoteGeneratorTest, ParsesUrls) {
    auto u = RemoteGenerator::parse_url("https://api.deepseek.com/beta");
    ASSERT_TRUE(u);
    EXPECT_TRUE(u->tls);
    EXPECT_EQ(u->host, "api.deepseek.com");
    EXPECT_EQ(u->port, "443");
    EXPECT_EQ(u->base, "/beta");
    u = RemoteGenerator::parse_url("http://[::1]:8000");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->host, "::1");
    EXPECT_EQ(u->port, "8000");
    EXPECT_EQ(u->base, "/v1");
    EXPECT_FALSE(RemoteGenerator::parse_url("ftp://x"));
    EXPECT_FALSE(RemoteGenerator::parse_url("http://user:pw@host"));
    EXPECT_FALSE(RemoteGenerator::parse_url("http://host:abc"));
    EXPECT_NE(http_error_message(500, "").find("failed"), std::string::npos);
}

}  // namespace
}  // namespace latent::agent
