// HttpServer: `latent serve` put together — the transport (connections, read deadlines,
// slow clients: http_transport.h), the guard (API key, Host, Origin, Content-Type:
// request_guard.h) and the service (the OpenAI/DeepSeek API over the Scheduler:
// openai_service.h). The routes, shapes and limits are documented there and in README.
//
// Thread safety: start() and stop() from one thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/expected.h"
#include "engine/scheduler.h"
#include "engine/serve/http_transport.h"
#include "engine/serve/openai_service.h"
#include "engine/serve/request_guard.h"
#include "engine/tokenizer.h"

namespace latent::serve {

class HttpServer {
public:
    struct Options {
        std::string host = "127.0.0.1";  // loopback unless asked: the API has no TLS
        uint16_t port = 8080;            // 0: any free port (tests)
        std::string api_key;             // non-empty: requests need "Authorization: Bearer <key>"
        std::string model_name;          // the id /v1/models reports
        std::vector<std::string> allowed_hosts;    // --allow-host
        std::vector<std::string> allowed_origins;  // --allow-origin
        // A request body past this is answered 413 without reading it: prompts are text,
        // and a few MB of text is more than the model's context holds.
        uint64_t max_body_bytes = 8u << 20;
        int32_t max_prompt_tokens = 0;   // 0: the model's context
        int32_t max_connections = 64;    // requests handled at once; more: 503
        int32_t max_reading = 256;       // connections reading a request at once
        double header_timeout_s = 10;    // to receive a request's headers
        double read_timeout_s = 30;      // then its body
        double request_timeout_s = 600;  // deadline for a request's generation
        int32_t default_chat_max_tokens = 4096;
    };

    // Borrows the scheduler and tokenizer for its lifetime.
    HttpServer(engine::Scheduler& scheduler, const engine::Tokenizer& tokenizer, Options options);
    ~HttpServer();  // stop()
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    engine::Status start();  // binds and serves; error when the address cannot be bound
    void stop();             // stops accepting, ends every connection, joins the threads
    uint16_t port() const { return transport_->port(); }
    // Requests being handled now.
    int32_t open_connections() const { return transport_->stats().active; }

private:
    RequestGuard guard_;
    std::unique_ptr<OpenAiService> service_;
    std::unique_ptr<HttpTransport> transport_;
};

}  // namespace latent::serve
