// HttpTransport: asynchronous reads on one I/O thread, a thread per request being
// handled (see http_transport.h).
#include "engine/serve/http_transport.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <list>
#include <mutex>
#include <thread>

#include "engine/serve/http_response.h"

namespace latent::serve {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

std::string HttpRequest::header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
}

namespace {

std::chrono::milliseconds ms(double seconds) {
    return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

}  // namespace

struct HttpTransport::Impl {
    // A connection still reading its request (I/O thread only).
    struct Reader {
        explicit Reader(tcp::socket s) : stream(std::move(s)) {}
        beast::tcp_stream stream;
        beast::flat_buffer buffer;
        http::request_parser<http::string_body> parser;
        std::list<std::shared_ptr<Reader>>::iterator pos;
        bool listed = false;
        std::array<char, 4096> scratch{};  // drained bytes after an early answer
        size_t drained = 0;
    };

    // A request being handled, on its own thread.
    struct Worker final : Exchange {
        Impl* impl = nullptr;
        int fd = -1;
        HttpRequest req;
        std::mutex mu;  // guards fd's closing against stop()'s shutdown
        bool closed = false;
        std::atomic<bool> stop{false};
        std::atomic<bool> finished{false};
        std::thread thread;

        const HttpRequest& request() const override { return req; }
        bool stopping() const override { return stop.load(); }

        bool write(const std::string& bytes) override {
            const auto deadline = Clock::now() + ms(impl->opt.write_timeout_s);
            size_t at = 0;
            while (at < bytes.size()) {
                if (stop) return false;
                const ssize_t n =
                    ::send(fd, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n > 0) {
                    at += static_cast<size_t>(n);
                    continue;
                }
                if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                    return false;
                const auto left =
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
                if (left.count() <= 0) return false;
                pollfd p{fd, POLLOUT, 0};
                ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 100)));
            }
            return true;
        }

        bool client_gone() override {
            pollfd p{fd, POLLIN | POLLRDHUP, 0};
            if (::poll(&p, 1, 0) <= 0) return stop.load();
            if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL)) return true;
            if (p.revents & POLLIN) {
                char c;
                const ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
                return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
            }
            return false;
        }

        void close() {
            std::lock_guard lock(mu);
            if (closed) return;
            ::shutdown(fd, SHUT_WR);  // the answer is complete: a FIN, not a reset
            ::close(fd);
            closed = true;
        }
    };

    TransportOptions opt;
    CheckHeaders check;
    Quick quick;
    Handler handler;

    net::io_context ioc;
    std::unique_ptr<tcp::acceptor> acceptor;
    std::thread io_thread;
    std::list<std::shared_ptr<Reader>> readers;  // oldest first; I/O thread only

    std::mutex workers_mu;
    std::list<std::shared_ptr<Worker>> workers;
    bool stopping = false;  // under workers_mu

    std::atomic<uint64_t> requests{0}, refused{0}, busy{0}, dropped_slow{0}, read_timeouts{0};
    std::atomic<int32_t> active{0}, reading{0};

    void accept() {
        acceptor->async_accept([this](beast::error_code ec, tcp::socket socket) {
            if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
            if (!ec) on_accept(std::move(socket));
            accept();
        });
    }

    void on_accept(tcp::socket socket) {
        while (static_cast<int32_t>(readers.size()) >= opt.max_reading) {
            // The connection that has been reading the longest makes room: a client that
            // sends its request at once is never the one dropped.
            auto oldest = readers.front();
            unlist(*oldest);
            ++dropped_slow;
            close_now(*oldest);
        }
        auto r = std::make_shared<Reader>(std::move(socket));
        r->pos = readers.insert(readers.end(), r);
        r->listed = true;
        ++reading;
        r->parser.header_limit(opt.max_header_bytes);
        r->parser.body_limit(opt.max_body_bytes);
        r->stream.expires_after(ms(opt.header_timeout_s));
        http::async_read_header(r->stream, r->buffer, r->parser,
                                [this, r](beast::error_code e, size_t) { on_header(r, e); });
    }

    void unlist(Reader& r) {
        if (!r.listed) return;
        readers.erase(r.pos);
        r.listed = false;
        --reading;
    }

    static void close_now(Reader& r) {
        beast::error_code ec;
        r.stream.socket().shutdown(tcp::socket::shutdown_both, ec);
        r.stream.socket().close(ec);
    }

    // Writes a whole answer, then reads and drops what the client still sends (a bounded
    // amount, for a bounded time) before closing, so the answer is not lost to a reset.
    void answer_and_close(const std::shared_ptr<Reader>& r, std::string bytes) {
        unlist(*r);
        auto data = std::make_shared<std::string>(std::move(bytes));
        r->stream.expires_after(std::chrono::seconds(5));
        net::async_write(r->stream, net::buffer(*data),
                         [this, r, data](beast::error_code ec, size_t) {
                             if (ec) return close_now(*r);
                             beast::error_code e;
                             r->stream.socket().shutdown(tcp::socket::shutdown_send, e);
                             drain(r);
                         });
    }

    void drain(const std::shared_ptr<Reader>& r) {
        r->stream.expires_after(std::chrono::seconds(2));
        r->stream.async_read_some(net::buffer(r->scratch),
                                  [this, r](beast::error_code ec, size_t n) {
                                      r->drained += n;
                                      if (ec || r->drained > (1u << 20)) return close_now(*r);
                                      drain(r);
                                  });
    }

    void read_error(const std::shared_ptr<Reader>& r, beast::error_code ec) {
        unlist(*r);
        if (ec == http::error::body_limit) {
            ++refused;
            return answer_and_close(
                r, error_response(413, "request body larger than " +
                                           std::to_string(opt.max_body_bytes) + " bytes"));
        }
        if (ec == http::error::header_limit) {
            ++refused;
            return answer_and_close(r, error_response(431, "request headers too large"));
        }
        if (ec == beast::error::timeout) {
            ++read_timeouts;  // the stream has closed the socket already
            return close_now(*r);
        }
        if (ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
            ec == net::error::eof || ec == net::error::connection_reset ||
            !r->stream.socket().is_open())
            return close_now(*r);
        ++refused;
        answer_and_close(r, error_response(400, "malformed HTTP request: " + ec.message()));
    }

    void on_header(const std::shared_ptr<Reader>& r, beast::error_code ec) {
        if (ec) return read_error(r, ec);
        const auto& h = r->parser.get();
        RequestHeaders rh;
        const std::string method(h.method_string());
        std::string target(h.target());
        std::string path = target.substr(0, target.find('?'));
        rh.method = method;
        rh.path = path;
        auto view = [&](http::field f) {
            const auto v = h[f];
            return std::string_view(v.data(), v.size());
        };
        rh.host = view(http::field::host);
        rh.origin = view(http::field::origin);
        rh.content_type = view(http::field::content_type);
        rh.authorization = view(http::field::authorization);
        const auto length = r->parser.content_length();
        rh.has_body = (length && *length > 0) || r->parser.chunked();
        if (length && *length > opt.max_body_bytes) {
            ++refused;
            return answer_and_close(
                r, error_response(413, "request body larger than " +
                                           std::to_string(opt.max_body_bytes) + " bytes"));
        }
        if (check) {
            if (auto refusal = check(rh)) {
                ++refused;
                return answer_and_close(r, std::move(*refusal));
            }
        }
        if (r->parser.is_done()) return on_body(r, {});
        auto read_body = [this, r] {
            r->stream.expires_after(ms(opt.body_timeout_s));
            http::async_read(r->stream, r->buffer, r->parser,
                             [this, r](beast::error_code e, size_t) { on_body(r, e); });
        };
        if (beast::iequals(h[http::field::expect], "100-continue")) {
            static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
            net::async_write(r->stream, net::buffer(kContinue),
                             [this, r, read_body](beast::error_code e, size_t) {
                                 if (e) return read_error(r, e);
                                 read_body();
                             });
            return;
        }
        read_body();
    }

    void on_body(const std::shared_ptr<Reader>& r, beast::error_code ec) {
        if (ec) return read_error(r, ec);
        unlist(*r);
        ++requests;
        auto msg = r->parser.release();
        HttpRequest req;
        req.method = std::string(msg.method_string());
        req.target = std::string(msg.target());
        req.path = req.target.substr(0, req.target.find('?'));
        for (const auto& f : msg) {
            std::string name = lower(std::string(f.name_string()));
            auto& slot = req.headers[name];
            slot = slot.empty() ? std::string(f.value()) : slot + ", " + std::string(f.value());
        }
        req.body = std::move(msg.body());
        if (quick) {
            if (auto answer = quick(req)) return answer_and_close(r, std::move(*answer));
        }
        reap();
        if (active.load() >= opt.max_active) {
            ++busy;
            return answer_and_close(r, error_response(503, "the server is busy; retry later",
                                                      "server_busy", "Retry-After: 1\r\n"));
        }
        auto w = std::make_shared<Worker>();
        w->impl = this;
        w->req = std::move(req);
        beast::error_code e;
        w->fd = r->stream.socket().release(e);
        if (e) return close_now(*r);
        std::lock_guard lock(workers_mu);
        if (stopping) {
            w->close();
            return;
        }
        ++active;
        workers.push_back(w);
        w->thread = std::thread([this, w] {
            try {
                handler(*w);
            } catch (const std::exception& ex) {
                // A handler's own failure: answered if nothing was written yet is not
                // knowable here, so the connection just closes; the service catches first.
                (void)ex;
            }
            w->close();
            --active;
            w->finished = true;
        });
    }

    // Joins the threads of finished handlers (I/O thread).
    void reap() {
        std::list<std::shared_ptr<Worker>> done;
        {
            std::lock_guard lock(workers_mu);
            for (auto it = workers.begin(); it != workers.end();) {
                if ((*it)->finished) {
                    done.push_back(*it);
                    it = workers.erase(it);
                } else {
                    ++it;
                }
            }
        }
        for (auto& w : done) w->thread.join();
    }
};

HttpTransport::HttpTransport(TransportOptions options, CheckHeaders check, Quick quick,
                             Handler handler)
    : impl_(std::make_unique<Impl>()) {
    impl_->opt = std::move(options);
    impl_->check = std::move(check);
    impl_->quick = std::move(quick);
    impl_->handler = std::move(handler);
}

HttpTransport::~HttpTransport() { stop(); }

engine::Status HttpTransport::start() {
    beast::error_code ec;
    const auto address = net::ip::make_address(impl_->opt.host, ec);
    if (ec) return engine::make_error("--host " + impl_->opt.host + ": not an IP address");
    auto acceptor = std::make_unique<tcp::acceptor>(impl_->ioc);
    const tcp::endpoint ep(address, impl_->opt.port);
    acceptor->open(ep.protocol(), ec);
    if (!ec) acceptor->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
    if (ec)
        return engine::make_error("cannot listen on " + impl_->opt.host + ":" +
                                  std::to_string(impl_->opt.port) + ": " + ec.message());
    port_ = acceptor->local_endpoint().port();
    impl_->acceptor = std::move(acceptor);
    impl_->accept();
    impl_->io_thread = std::thread([this] { impl_->ioc.run(); });
    return engine::Status::success();
}

void HttpTransport::stop() {
    if (!impl_->acceptor) return;
    // Close the acceptor and every reader on the I/O thread, then let it run out.
    net::post(impl_->ioc, [this] {
        beast::error_code ec;
        impl_->acceptor->close(ec);
        for (auto& r : impl_->readers) Impl::close_now(*r);
        impl_->readers.clear();
        impl_->reading = 0;
        impl_->ioc.stop();
    });
    if (impl_->io_thread.joinable()) impl_->io_thread.join();
    std::list<std::shared_ptr<Impl::Worker>> workers;
    {
        std::lock_guard lock(impl_->workers_mu);
        impl_->stopping = true;
        workers.swap(impl_->workers);
    }
    for (auto& w : workers) {
        w->stop = true;
        std::lock_guard lock(w->mu);
        if (!w->closed) ::shutdown(w->fd, SHUT_RDWR);
    }
    for (auto& w : workers) w->thread.join();
    impl_->acceptor.reset();
}

TransportStats HttpTransport::stats() const {
    TransportStats s;
    s.requests = impl_->requests;
    s.refused = impl_->refused;
    s.busy = impl_->busy;
    s.dropped_slow = impl_->dropped_slow;
    s.read_timeouts = impl_->read_timeouts;
    s.active = impl_->active;
    s.reading = impl_->reading;
    return s;
}

}  // namespace latent::serve
