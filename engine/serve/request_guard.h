// RequestGuard: who may talk to `latent serve`, decided from a request's headers alone,
// before its body is read: the API key (compared in constant time; the scheme "Bearer" in
// any case, RFC 7235), the Host header (DNS rebinding: a web page whose name resolves to
// 127.0.0.1 must not read the answers, so only loopback names, the bound address and
// --allow-host names pass), the Origin header (no cross-origin request unless
// --allow-origin lists the origin) and the body's Content-Type (only application/json: a
// page can send text/plain without a CORS preflight). It does not parse bodies or route.
//
// Thread safety: immutable after construction; check() may run on any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace latent::serve {

struct GuardOptions {
    std::string api_key;  // empty: no key needed
    // The address the server is bound to ("127.0.0.1", "::1", "0.0.0.0", ...) and its port.
    std::string bound_host = "127.0.0.1";
    uint16_t port = 0;
    // Extra Host names accepted (with or without a port); "*" accepts any Host. Bound to a
    // wildcard address (0.0.0.0, ::) with no list, any Host is accepted: the user chose
    // to serve the network, whose names the server cannot know.
    std::vector<std::string> allowed_hosts;
    // Origins (scheme://host[:port]) whose cross-origin requests are served, CORS headers
    // included; "*" any. Empty: a request carrying an Origin header is refused.
    std::vector<std::string> allowed_origins;
};

// The headers a decision needs (absent headers are empty views).
struct RequestHeaders {
    std::string_view method;  // "GET", "POST", "OPTIONS", ...
    std::string_view path;    // without the query
    std::string_view host;
    std::string_view origin;
    std::string_view content_type;
    std::string_view authorization;
    bool has_body = false;  // a body follows (Content-Length > 0 or chunked)
};

struct Refusal {
    int status = 400;
    std::string message;
    std::string type = "invalid_request_error";
};

class RequestGuard {
public:
    explicit RequestGuard(GuardOptions options);

    // nullopt: the request may go on. /health needs no key (load balancers probe it)
    // but passes the Host and Origin checks like every path.
    std::optional<Refusal> check(const RequestHeaders& h) const;

    // Headers for an allowed cross-origin request ("" when `origin` is empty or not
    // allowed): Access-Control-Allow-Origin and Vary. A preflight (OPTIONS) adds methods
    // and headers.
    std::string cors_headers(std::string_view origin, bool preflight) const;

    const GuardOptions& options() const { return opt_; }

private:
    bool host_allowed(std::string_view host) const;
    bool origin_allowed(std::string_view origin) const;

    GuardOptions opt_;
    bool any_host_ = false;
};

// Equal bytes, in time that depends only on the lengths (a key's length is not a secret
// worth hiding; its bytes are).
bool constant_time_equal(std::string_view a, std::string_view b);

// The key of an "Authorization: Bearer <key>" value (scheme in any case, spaces after it
// skipped); nullopt for another scheme or no key.
std::optional<std::string_view> bearer_token(std::string_view authorization);

}  // namespace latent::serve
