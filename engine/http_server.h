// HttpServer: `latent serve` — the engine behind an OpenAI-compatible HTTP API on
// Boost.Beast: POST /v1/completions (prompt, optional suffix = fill-in-the-middle),
// POST /v1/chat/completions (messages in the model's chat format), both with
// `stream: true` as Server-Sent Events in OpenAI's shape; GET /v1/models, /health,
// /metrics (Prometheus text). `usage` reports prompt_tokens_details.cached_tokens
// (OpenAI's name) and prompt_cache_hit_tokens / prompt_cache_miss_tokens (DeepSeek's).
// It formats prompts and text; the Scheduler runs the model.
//
// One thread accepts; each connection gets a thread of its own (at most
// max_connections; more are answered 503 at once) that reads one request with a
// timeout, submits it, and writes the answer or the stream; every response closes the
// connection. A client that goes away mid-stream cancels its request (the next write
// fails). Every size from outside is capped: header and body bytes, prompt tokens,
// max_tokens, stop strings (StopMatcher's caps).
//
// Thread safety: start() and stop() from one thread; the server's threads share only
// the Scheduler (thread-safe) and immutable tokenizer and options.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "engine/expected.h"
#include "engine/scheduler.h"
#include "engine/tokenizer.h"

namespace latent::engine {

class HttpServer {
public:
    struct Options {
        std::string host = "127.0.0.1";  // loopback unless asked: the API has no TLS
        uint16_t port = 8080;            // 0: any free port (tests)
        std::string api_key;             // non-empty: requests need "Authorization: Bearer <key>"
        std::string model_name;          // the id /v1/models reports
        // A request body past this is answered 413 without reading it all: prompts are
        // text, and a few MB of text is more than the model's context holds.
        uint64_t max_body_bytes = 8u << 20;
        int32_t max_prompt_tokens = 0;   // 0: the model's context
        int32_t max_connections = 64;    // more at once are answered 503
        double read_timeout_s = 30;      // to receive a whole request
        double request_timeout_s = 600;  // deadline for a request's generation
    };

    // Borrows the scheduler and tokenizer for its lifetime.
    HttpServer(Scheduler& scheduler, const Tokenizer& tokenizer, Options options);
    ~HttpServer();  // stop()
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Binds and starts accepting; error when the address cannot be bound.
    Status start();
    // Stops accepting, shuts every open connection down and joins the threads.
    void stop();
    uint16_t port() const { return port_; }
    int32_t open_connections() const { return open_.load(); }

    struct Impl;  // http_server.cpp

private:
    std::unique_ptr<Impl> impl_;
    uint16_t port_ = 0;
    std::atomic<int32_t> open_{0};
};

}  // namespace latent::engine
