// RequestGuard: header checks before a request's body is read (see request_guard.h).
#include "engine/serve/request_guard.h"

#include <algorithm>
#include <cctype>

namespace latent::serve {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// The host of a Host header value: "[::1]:8080" -> "::1", "Localhost:80" -> "localhost",
// "127.0.0.1." -> "127.0.0.1" (a trailing dot names the same host).
std::string host_name(std::string_view v) {
    v = trim(v);
    std::string_view name;
    if (!v.empty() && v.front() == '[') {
        const size_t close = v.find(']');
        name = close == std::string_view::npos ? v.substr(1) : v.substr(1, close - 1);
    } else {
        const size_t colon = v.find(':');
        name = colon == std::string_view::npos ? v : v.substr(0, colon);
    }
    std::string out = lower(name);
    if (!out.empty() && out.back() == '.') out.pop_back();
    return out;
}

bool is_loopback_name(const std::string& h) {
    if (h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1") return true;
    if (h.size() > 10 && h.ends_with(".localhost")) return true;  // RFC 6761
    // 127.0.0.0/8, dotted quad only (a page cannot get "2130706433" past a browser's
    // URL parser as anything but 127.0.0.1, which this also accepts).
    if (!h.starts_with("127.")) return false;
    int dots = 0;
    for (char c : h) {
        if (c == '.')
            ++dots;
        else if (!std::isdigit(static_cast<unsigned char>(c)))
            return false;
    }
    return dots == 3;
}

bool is_wildcard(const std::string& h) { return h == "0.0.0.0" || h == "::" || h.empty(); }

bool media_type_is_json(std::string_view v) {
    const size_t semi = v.find(';');
    const std::string type = lower(trim(v.substr(0, semi)));
    return type == "application/json";
}

}  // namespace

bool constant_time_equal(std::string_view a, std::string_view b) {
    // Every byte of the longer one is visited whatever the contents.
    const size_t n = std::max(a.size(), b.size());
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    for (size_t i = 0; i < n; ++i) {
        const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
        const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
        diff = static_cast<unsigned char>(diff | (x ^ y));
    }
    // volatile read: keeps the compiler from ending the loop at the first difference.
    volatile unsigned char result = diff;
    return result == 0;
}

std::optional<std::string_view> bearer_token(std::string_view v) {
    v = trim(v);
    const size_t space = v.find_first_of(" \t");
    if (space == std::string_view::npos) return std::nullopt;
    if (lower(v.substr(0, space)) != "bearer") return std::nullopt;
    std::string_view key = trim(v.substr(space));
    if (key.empty()) return std::nullopt;
    return key;
}

RequestGuard::RequestGuard(GuardOptions options) : opt_(std::move(options)) {
    for (auto& h : opt_.allowed_hosts) {
        if (h == "*") any_host_ = true;
        h = host_name(h);
    }
    if (opt_.allowed_hosts.empty() && is_wildcard(host_name(opt_.bound_host))) any_host_ = true;
    for (auto& o : opt_.allowed_origins) {
        o = lower(trim(o));
        while (!o.empty() && o.back() == '/') o.pop_back();
    }
}

bool RequestGuard::host_allowed(std::string_view host) const {
    if (any_host_) return true;
    const std::string h = host_name(host);
    if (is_loopback_name(h)) return true;
    if (h == host_name(opt_.bound_host)) return true;
    return std::find(opt_.allowed_hosts.begin(), opt_.allowed_hosts.end(), h) !=
           opt_.allowed_hosts.end();
}

bool RequestGuard::origin_allowed(std::string_view origin) const {
    std::string o = lower(trim(origin));
    for (const auto& a : opt_.allowed_origins)
        if (a == "*" || a == o) return true;
    return false;
}

std::optional<Refusal> RequestGuard::check(const RequestHeaders& h) const {
    // HTTP/1.1 requires Host; a client without one is not a browser, which always sends it.
    if (!h.host.empty() && !host_allowed(h.host))
        return Refusal{403,
                       "Host '" + std::string(h.host.substr(0, 200)) +
                           "' is not this server's (start it with --allow-host to accept it)",
                       "permission_error"};
    if (!h.origin.empty() && !origin_allowed(h.origin))
        return Refusal{403,
                       "cross-origin requests are refused (start the server with "
                       "--allow-origin to accept this origin)",
                       "permission_error"};
    if (h.method == "OPTIONS") return std::nullopt;  // a preflight: answered with CORS headers
    if (h.has_body && !media_type_is_json(h.content_type))
        return Refusal{415, "the body must be sent as Content-Type: application/json",
                       "invalid_request_error"};
    if (!opt_.api_key.empty() && h.path != "/health") {
        const auto key = bearer_token(h.authorization);
        if (!key || !constant_time_equal(*key, opt_.api_key))
            return Refusal{401, "missing or wrong API key", "authentication_error"};
    }
    return std::nullopt;
}

std::string RequestGuard::cors_headers(std::string_view origin, bool preflight) const {
    if (origin.empty() || !origin_allowed(origin)) return {};
    std::string out =
        "Access-Control-Allow-Origin: " + std::string(trim(origin)) + "\r\nVary: Origin\r\n";
    if (preflight)
        out +=
            "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"
            "Access-Control-Allow-Headers: Authorization, Content-Type\r\n"
            "Access-Control-Max-Age: 600\r\n";
    return out;
}

}  // namespace latent::serve
