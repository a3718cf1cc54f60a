// A scripted OpenAI-compatible chat server on loopback for tests: each POST to
// /v1/chat/completions is handed, as parsed JSON, to the test's function, which says
// what the model "answers" — text and/or tool calls — or an HTTP error. Answers are
// streamed as OpenAI streams them (SSE chunks: role, content pieces, each tool call's
// id and name and then its arguments in two pieces, finish_reason, [DONE]) when the
// request asks for a stream, else one JSON body. Every request is kept for assertions.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace latent::testing {

class ScriptedOpenAiServer {
public:
    struct Call {
        std::string name;
        nlohmann::json arguments;  // sent as its JSON text
    };
    struct Answer {
        int status = 200;  // not 200: `error` is the message
        std::string error;
        std::string content;
        std::vector<Call> calls;
    };
    // Called on the server's thread with each request's body and its number (0, 1, ...).
    using Script = std::function<Answer(const nlohmann::json& body, size_t n)>;

    explicit ScriptedOpenAiServer(Script script)
        : script_(std::move(script)),
          acceptor_(ioc_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
        port_ = acceptor_.local_endpoint().port();
        thread_ = std::thread([this] { run(); });
    }
    ~ScriptedOpenAiServer() {
        stop_ = true;
        boost::system::error_code ec;
        boost::asio::ip::tcp::socket s(ioc_);  // wakes accept()
        s.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
        thread_.join();
    }
    ScriptedOpenAiServer(const ScriptedOpenAiServer&) = delete;
    ScriptedOpenAiServer& operator=(const ScriptedOpenAiServer&) = delete;

    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    std::vector<nlohmann::json> requests() const {
        std::lock_guard<std::mutex> lock(mu_);
        return requests_;
    }

    // The SSE body OpenAI would stream for `a` (also used by the tests' own checks).
    static std::string sse(const Answer& a) {
        using nlohmann::json;
        auto chunk = [](json delta, json finish = nullptr) {
            return "data: " +
                   json{{"id", "chatcmpl-test"},
                        {"object", "chat.completion.chunk"},
                        {"choices", json::array({{{"index", 0},
                                                  {"delta", std::move(delta)},
                                                  {"finish_reason", std::move(finish)}}})}}
                       .dump() +
                   "\n\n";
        };
        std::string out = chunk({{"role", "assistant"}, {"content", ""}});
        // Text in two pieces, as a stream brings it.
        const size_t half = a.content.size() / 2;
        if (!a.content.empty()) {
            out += chunk({{"content", a.content.substr(0, half)}});
            out += chunk({{"content", a.content.substr(half)}});
        }
        for (size_t i = 0; i < a.calls.size(); ++i) {
            const std::string args = a.calls[i].arguments.dump();
            const std::string id = "call_" + std::to_string(i) + "_" + a.calls[i].name;
            out += chunk(
                {{"tool_calls",
                  json::array({{{"index", i},
                                {"id", id},
                                {"type", "function"},
                                {"function", {{"name", a.calls[i].name}, {"arguments", ""}}}}})}});
            const size_t h = args.size() / 2;
            for (const auto& piece : {args.substr(0, h), args.substr(h)})
                out +=
                    chunk({{"tool_calls",
                            json::array({{{"index", i}, {"function", {{"arguments", piece}}}}})}});
        }
        out += chunk(json::object(), a.calls.empty() ? "stop" : "tool_calls");
        out += "data: [DONE]\n\n";
        return out;
    }

    static nlohmann::json whole(const Answer& a) {
        using nlohmann::json;
        json message = {{"role", "assistant"}, {"content", a.content}};
        if (!a.calls.empty()) {
            message["tool_calls"] = json::array();
            for (size_t i = 0; i < a.calls.size(); ++i)
                message["tool_calls"].push_back(
                    {{"id", "call_" + std::to_string(i) + "_" + a.calls[i].name},
                     {"type", "function"},
                     {"function",
                      {{"name", a.calls[i].name}, {"arguments", a.calls[i].arguments.dump()}}}});
        }
        return {{"id", "chatcmpl-test"},
                {"object", "chat.completion"},
                {"choices",
                 json::array({{{"index", 0},
                               {"message", message},
                               {"finish_reason", a.calls.empty() ? "stop" : "tool_calls"}}})},
                {"usage", {{"prompt_tokens", 10}, {"completion_tokens", 5}, {"total_tokens", 15}}}};
    }

private:
    void run() {
        namespace http = boost::beast::http;
        for (size_t n = 0; !stop_;) {
            boost::asio::ip::tcp::socket s(ioc_);
            boost::system::error_code ec;
            acceptor_.accept(s, ec);
            if (ec || stop_) return;
            boost::beast::flat_buffer buf;
            http::request<http::string_body> req;
            http::read(s, buf, req, ec);
            if (ec) continue;
            nlohmann::json body = nlohmann::json::parse(req.body(), nullptr, false);
            {
                std::lock_guard<std::mutex> lock(mu_);
                requests_.push_back(body);
            }
            const Answer a = script_(body, n++);
            std::string type = "application/json", out;
            if (a.status != 200) {
                out = nlohmann::json{{"error",
                                      {{"message", a.error}, {"type", "invalid_request_error"}}}}
                          .dump();
            } else if (body.is_object() && body.value("stream", false)) {
                type = "text/event-stream";
                out = sse(a);
            } else {
                out = whole(a).dump();
            }
            const std::string head = "HTTP/1.1 " + std::to_string(a.status) +
                                     " X\r\nContent-Type: " + type +
                                     "\r\nContent-Length: " + std::to_string(out.size()) +
                                     "\r\nConnection: close\r\n\r\n";
            boost::asio::write(s, boost::asio::buffer(head + out), ec);
            s.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
        }
    }

    Script script_;
    boost::asio::io_context ioc_;
    boost::asio::ip::tcp::acceptor acceptor_;
    unsigned short port_ = 0;
    std::atomic<bool> stop_{false};
    mutable std::mutex mu_;
    std::vector<nlohmann::json> requests_;
    std::thread thread_;
};

}  // namespace latent::testing
