// HttpTransport: the connections of `latent serve` — accepting, reading requests, writing
// answers — and nothing about what a request means. One I/O thread (Boost.Asio) accepts
// and reads every connection asynchronously, so a client that sends its request slowly
// costs a socket and a buffer, never a thread: reading has a deadline per phase (the
// header, then the body), and when max_reading connections are still reading, the one
// that has read the longest is dropped to make room, so slow senders cannot keep a
// prompt client out. Headers are checked (check_headers: the guard) before any body is
// read; a request read whole goes to `quick` on the I/O thread (cheap GET answers such as
// /health) or to `handler` on a thread of its own (at most max_active at once; more are
// answered 503). Every response closes its connection.
//
// Thread safety: start() and stop() from one thread. Handlers run on their own threads;
// each Exchange belongs to its handler.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "engine/expected.h"
#include "engine/serve/request_guard.h"

namespace latent::serve {

struct HttpRequest {
    std::string method;                          // "GET", "POST", ...
    std::string target;                          // as sent
    std::string path;                            // target without the query
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;
    std::string header(const std::string& lower_name) const;
};

// One request read whole and its connection, owned by the handler's thread.
class Exchange {
public:
    virtual ~Exchange() = default;
    virtual const HttpRequest& request() const = 0;
    // Writes all of `bytes`; false when the client is gone, the write timed out or the
    // server is stopping (then write no more).
    virtual bool write(const std::string& bytes) = 0;
    // The client closed its end (checked without blocking). A handler waiting for a
    // generation polls it, so a client that gives up stops the work it asked for.
    virtual bool client_gone() = 0;
    virtual bool stopping() const = 0;
};

struct TransportOptions {
    std::string host = "127.0.0.1";
    uint16_t port = 8080;  // 0: any free port
    uint64_t max_body_bytes = 8u << 20;
    uint32_t max_header_bytes = 16 * 1024;
    double header_timeout_s = 10;  // to receive the request line and headers
    double body_timeout_s = 30;    // then the body
    double write_timeout_s = 30;   // for each write to a client that does not read
    int32_t max_active = 64;       // requests being handled at once; more: 503
    int32_t max_reading = 256;     // connections still reading; more: the oldest dropped
};

struct TransportStats {
    uint64_t requests = 0;       // read whole
    uint64_t refused = 0;        // answered an error by the transport or the guard
    uint64_t busy = 0;           // answered 503: max_active handlers running
    uint64_t dropped_slow = 0;   // readers dropped for a newer connection
    uint64_t read_timeouts = 0;  // readers dropped at a deadline
    int32_t active = 0;          // handlers running now
    int32_t reading = 0;         // connections reading now
};

class HttpTransport {
public:
    // nullopt: go on; otherwise the whole response to send before closing.
    using CheckHeaders = std::function<std::optional<std::string>(const RequestHeaders&)>;
    // A whole response for a request cheap enough for the I/O thread; nullopt: not one.
    using Quick = std::function<std::optional<std::string>(const HttpRequest&)>;
    using Handler = std::function<void(Exchange&)>;

    HttpTransport(TransportOptions options, CheckHeaders check, Quick quick, Handler handler);
    ~HttpTransport();  // stop()
    HttpTransport(const HttpTransport&) = delete;
    HttpTransport& operator=(const HttpTransport&) = delete;

    engine::Status start();  // binds; error when the address cannot be bound
    // Stops accepting and reading, shuts every handler's connection down (its writes
    // fail, stopping() turns true) and joins every thread.
    void stop();
    uint16_t port() const { return port_; }
    TransportStats stats() const;

    struct Impl;  // http_transport.cpp

private:
    std::unique_ptr<Impl> impl_;
    uint16_t port_ = 0;
};

}  // namespace latent::serve
