// HttpServer: transport + guard + service (see http_server.h).
#include "engine/serve/http_server.h"

#include "engine/serve/http_response.h"

namespace latent::serve {

namespace {

GuardOptions guard_options(const HttpServer::Options& o) {
    GuardOptions g;
    g.api_key = o.api_key;
    g.bound_host = o.host;
    g.port = o.port;
    g.allowed_hosts = o.allowed_hosts;
    g.allowed_origins = o.allowed_origins;
    return g;
}

}  // namespace

HttpServer::HttpServer(engine::Scheduler& scheduler, const engine::Tokenizer& tokenizer, Options o)
    : guard_(guard_options(o)) {
    ServiceOptions so;
    so.model_name = o.model_name;
    so.max_prompt_tokens = o.max_prompt_tokens;
    so.request_timeout_s = o.request_timeout_s;
    so.default_chat_max_tokens = o.default_chat_max_tokens;
    service_ = std::make_unique<OpenAiService>(scheduler, tokenizer, so);
    TransportOptions to;
    to.host = o.host;
    to.port = o.port;
    to.max_body_bytes = o.max_body_bytes;
    to.header_timeout_s = o.header_timeout_s;
    to.body_timeout_s = o.read_timeout_s;
    to.max_active = o.max_connections;
    to.max_reading = o.max_reading;
    transport_ = std::make_unique<HttpTransport>(
        to,
        [this](const RequestHeaders& h) -> std::optional<std::string> {
            auto refusal = guard_.check(h);
            if (!refusal) return std::nullopt;
            std::string extra = refusal->status == 401 ? "WWW-Authenticate: Bearer\r\n" : "";
            return error_response(refusal->status, refusal->message, refusal->type, extra);
        },
        [this](const HttpRequest& r) {
            const std::string origin = r.header("origin");
            return service_->quick(r, guard_.cors_headers(origin, r.method == "OPTIONS"));
        },
        [this](Exchange& ex) {
            service_->handle(ex, guard_.cors_headers(ex.request().header("origin"), false));
        });
    service_->set_transport_stats([this] { return transport_->stats(); });
}

HttpServer::~HttpServer() { stop(); }

engine::Status HttpServer::start() { return transport_->start(); }

void HttpServer::stop() { transport_->stop(); }

}  // namespace latent::serve
