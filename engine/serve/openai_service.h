// OpenAiService: what `latent serve` answers — the OpenAI/DeepSeek API over the Scheduler.
// Routes: POST /v1/completions and /v1/chat/completions (and DeepSeek's /beta/...), GET
// /v1/models, /health, /metrics. It turns a validated ApiRequest (api_request.h) into
// prompt tokens (prompt_format.h), an output constraint (JSON output, tool calls:
// output_constraint.h) and scheduler requests (one per choice), and their tokens into
// OpenAI-shaped answers, whole or streamed (SSE). It does not own sockets (the transport
// hands it an Exchange) or decide who may ask (request_guard.h).
//
// Thread safety: handle() runs on many threads at once; they share only the Scheduler
// (thread-safe), the immutable tokenizer and options, and atomic counters.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "engine/scheduler.h"
#include "engine/serve/http_transport.h"
#include "engine/tokenizer.h"

namespace latent::serve {

class OutputConstraints;  // output_constraint.h

struct ServiceOptions {
    std::string model_name;
    int32_t max_prompt_tokens = 0;   // 0: the model's context
    double request_timeout_s = 600;  // deadline for a request's generation
    // A chat without max_tokens may generate this many tokens (DeepSeek's default); a
    // completion without it 16 (OpenAI's).
    int32_t default_chat_max_tokens = 4096;
};

class OpenAiService {
public:
    // Borrows the scheduler and tokenizer for its lifetime.
    OpenAiService(engine::Scheduler& scheduler, const engine::Tokenizer& tokenizer,
                  ServiceOptions options);
    ~OpenAiService();

    // An answer for everything but a generation (health, models, metrics, preflights,
    // unknown routes); nullopt for a generation request, which goes to handle().
    // `extra_headers`: CORS headers for an allowed origin ("" otherwise).
    std::optional<std::string> quick(const HttpRequest& request, const std::string& extra_headers);
    // Runs a generation request and writes its answer.
    void handle(Exchange& exchange, const std::string& extra_headers);

    // The transport's figures for /metrics.
    void set_transport_stats(std::function<TransportStats()> stats) {
        transport_stats_ = std::move(stats);
    }

private:
    struct Run;
    std::string metrics() const;

    engine::Scheduler& sched_;
    const engine::Tokenizer& tok_;
    ServiceOptions opt_;
    std::vector<int32_t> end_tokens_;
    std::unique_ptr<OutputConstraints> constraints_;
    std::function<TransportStats()> transport_stats_;
    std::atomic<uint64_t> next_id_{1};
    std::atomic<uint64_t> errors_{0}, disconnects_{0};
};

}  // namespace latent::serve
