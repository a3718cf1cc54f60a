// HttpServer: OpenAI-compatible HTTP on Boost.Beast (see http_server.h).
#include "engine/http_server.h"

#include "engine/prompt_format.h"

#include <sys/socket.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <nlohmann/json.hpp>

namespace latent::engine {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using nlohmann::json;

namespace {

// Request headers past this are answered 431: no client needs more to say POST /v1/....
constexpr uint32_t kMaxHeaderBytes = 16 * 1024;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

const char* reason_phrase(int code) {
    switch (code) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 413:
            return "Payload Too Large";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 503:
            return "Service Unavailable";
        default:
            return "Error";
    }
}

std::string response(int code, const std::string& body,
                     const std::string& type = "application/json",
                     const std::string& extra_headers = "") {
    return "HTTP/1.1 " + std::to_string(code) + " " + reason_phrase(code) +
           "\r\nContent-Type: " + type + "\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n" + extra_headers + "\r\n" + body;
}

std::string error_response(int code, const std::string& message,
                           const std::string& type = "invalid_request_error",
                           const std::string& extra_headers = "") {
    json j = {{"error", {{"message", message}, {"type", type}, {"code", code}}}};
    return response(code, dump(j), "application/json", extra_headers);
}

std::string chunk(const std::string& data) {
    char size[32];
    std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
    return size + data + "\r\n";
}

std::string sse(const json& j) { return chunk("data: " + dump(j) + "\n\n"); }

// A client's error, answered 400 with its message.
struct BadRequest {
    std::string message;
};

// Text of an OpenAI message content: a string or an array of {type: "text", text}.
std::string content_text(const json& c) {
    if (c.is_string()) return c.get<std::string>();
    if (c.is_null()) return {};
    if (!c.is_array()) throw BadRequest{"message content must be a string or an array"};
    std::string out;
    for (const auto& part : c) {
        if (part.is_object() && part.value("type", "") == "text" && part.contains("text") &&
            part["text"].is_string())
            out += part["text"].get<std::string>();
    }
    return out;
}

}  // namespace

struct HttpServer::Impl {
    // One connection's socket and the io_context its thread runs its operations on.
    struct Connection {
        net::io_context ioc;
        beast::tcp_stream stream{ioc};
        std::mutex mu;  // guards the socket's closing against stop()'s shutdown
        bool closed = false;
        std::atomic<bool> stop{false};
        std::atomic<bool> finished{false};
        std::thread thread;
    };

    // What the scheduler's callbacks hand to the connection's thread.
    struct Generation {
        std::mutex mu;
        std::condition_variable cv;
        std::deque<std::string> pieces;
        bool done = false;
        RequestResult result;
        StopMatcher stop;  // used on the scheduler's thread only
    };

    HttpServer* self;
    Scheduler& sched;
    const Tokenizer& tok;
    Options opt;
    std::vector<int32_t> end_tokens;
    net::io_context accept_ioc;
    std::unique_ptr<tcp::acceptor> acceptor;
    std::thread accept_thread;
    std::atomic<bool> stopping{false};
    std::mutex conns_mu;
    std::list<std::shared_ptr<Connection>> conns;
    std::atomic<uint64_t> next_id{1};
    std::atomic<uint64_t> http_requests{0}, http_errors{0}, rejected_connections{0};

    Impl(HttpServer* s, Scheduler& sc, const Tokenizer& t, Options o)
        : self(s), sched(sc), tok(t), opt(std::move(o)) {
        for (int32_t id = 0; id < tok.n_vocab(); ++id)
            if (tok.is_eog(id)) end_tokens.push_back(id);
        if (opt.max_prompt_tokens <= 0)
            opt.max_prompt_tokens = static_cast<int32_t>(sc.model().hparams().n_ctx_train);
    }

    // Runs one asynchronous operation on the connection's io_context to its end.
    template <class Start>
    beast::error_code run_io(Connection& c, Start start) {
        beast::error_code result;
        start([&](beast::error_code ec, std::size_t) { result = ec; });
        c.ioc.restart();
        c.ioc.run();
        return result;
    }

    bool write(Connection& c, const std::string& data) {
        c.stream.expires_after(std::chrono::seconds(30));
        return !run_io(c, [&](auto done) { net::async_write(c.stream, net::buffer(data), done); });
    }

    void close(Connection& c) {
        std::lock_guard lock(c.mu);
        beast::error_code ec;
        c.stream.socket().shutdown(tcp::socket::shutdown_both, ec);
        c.stream.socket().close(ec);
        c.closed = true;
    }

    void accept_loop() {
        while (!stopping) {
            auto c = std::make_shared<Connection>();
            beast::error_code ec;
            acceptor->accept(c->stream.socket(), ec);
            if (stopping) break;
            if (ec) continue;
            reap();
            if (self->open_.load() >= opt.max_connections) {
                ++rejected_connections;
                write(*c, error_response(503, "too many connections", "server_busy",
                                         "Retry-After: 1\r\n"));
                close(*c);
                continue;
            }
            ++self->open_;
            std::lock_guard lock(conns_mu);
            conns.push_back(c);
            c->thread = std::thread([this, c] {
                serve(*c);
                close(*c);
                --self->open_;
                c->finished = true;
            });
        }
    }

    // Joins the threads of finished connections.
    void reap() {
        std::list<std::shared_ptr<Connection>> done;
        {
            std::lock_guard lock(conns_mu);
            for (auto it = conns.begin(); it != conns.end();) {
                if ((*it)->finished) {
                    done.push_back(*it);
                    it = conns.erase(it);
                } else {
                    ++it;
                }
            }
        }
        for (auto& c : done) c->thread.join();
    }

    void serve(Connection& c) {
        beast::flat_buffer buffer;
        http::request_parser<http::string_body> parser;
        parser.header_limit(kMaxHeaderBytes);
        parser.body_limit(opt.max_body_bytes);
        c.stream.expires_after(
            std::chrono::milliseconds(static_cast<int64_t>(opt.read_timeout_s * 1000)));
        const beast::error_code ec =
            run_io(c, [&](auto done) { http::async_read(c.stream, buffer, parser, done); });
        ++http_requests;
        if (ec == http::error::body_limit) {
            ++http_errors;
            write(c, error_response(413, "request body larger than " +
                                             std::to_string(opt.max_body_bytes) + " bytes"));
            return;
        }
        if (ec == http::error::header_limit) {
            ++http_errors;
            write(c, error_response(431, "request headers too large"));
            return;
        }
        if (ec) {
            // Timed out, went away, or not HTTP.
            if (ec != http::error::end_of_stream && ec != beast::error::timeout) {
                ++http_errors;
                write(c, error_response(400, "malformed HTTP request: " + ec.message()));
            }
            return;
        }
        const auto& req = parser.get();
        try {
            route(c, req);
        } catch (const BadRequest& e) {
            ++http_errors;
            write(c, error_response(400, e.message));
        } catch (const json::exception& e) {
            ++http_errors;
            write(c, error_response(400, std::string("bad request JSON: ") + e.what()));
        } catch (const std::exception& e) {
            ++http_errors;
            write(c, error_response(500, e.what(), "server_error"));
        }
    }

    void route(Connection& c, const http::request<http::string_body>& req) {
        std::string path(req.target());
        if (auto q = path.find('?'); q != std::string::npos) path.resize(q);
        const bool get = req.method() == http::verb::get;
        const bool post = req.method() == http::verb::post;
        if (path == "/health") {
            if (!get) return (void)write(c, error_response(405, "use GET"));
            return (void)write(c, response(200, R"({"status":"ok"})"));
        }
        if (!opt.api_key.empty()) {
            const auto auth = req[http::field::authorization];
            if (auth != "Bearer " + opt.api_key) {
                ++http_errors;
                return (void)write(
                    c, error_response(401, "missing or wrong API key", "authentication_error"));
            }
        }
        if (path == "/v1/models") {
            if (!get) return (void)write(c, error_response(405, "use GET"));
            json j = {{"object", "list"},
                      {"data",
                       {{{"id", opt.model_name},
                         {"object", "model"},
                         {"created", 0},
                         {"owned_by", "latent"}}}}};
            return (void)write(c, response(200, dump(j)));
        }
        if (path == "/metrics") {
            if (!get) return (void)write(c, error_response(405, "use GET"));
            return (void)write(c, response(200, metrics(), "text/plain; version=0.0.4"));
        }
        if (path == "/v1/completions" || path == "/v1/chat/completions") {
            if (!post) return (void)write(c, error_response(405, "use POST"));
            const json body = json::parse(req.body(), nullptr, false);
            if (body.is_discarded() || !body.is_object())
                throw BadRequest{"the body is not a JSON object"};
            return generate(c, body, path == "/v1/chat/completions");
        }
        ++http_errors;
        write(c, error_response(404, "no route " + path, "not_found_error"));
    }

    std::vector<int32_t> encode_text(const std::string& s) const {
        return tok.encode(s, false, false);
    }

    std::vector<int32_t> completion_prompt(const json& body) const {
        if (!body.contains("prompt")) throw BadRequest{"'prompt' is required"};
        const json& p = body["prompt"];
        std::string text;
        std::vector<int32_t> ids;
        if (p.is_string()) {
            text = p.get<std::string>();
        } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
            text = p[0].get<std::string>();
        } else if (p.is_array() && !p.empty() && p[0].is_number_integer()) {
            for (const auto& v : p) ids.push_back(v.get<int32_t>());
            return ids;
        } else {
            throw BadRequest{"'prompt' must be a string, one string in an array, or token ids"};
        }
        const json suffix = body.value("suffix", json());
        if (!suffix.is_null()) {
            if (!suffix.is_string()) throw BadRequest{"'suffix' must be a string"};
            auto fim = fim_tokens(tok, text, suffix.get<std::string>());
            if (!fim) throw BadRequest{fim.error().message};
            return std::move(*fim);
        }
        return tok.encode(text, tok.add_bos_by_default(), false);
    }

    // The messages in the model family's chat format (prompt_format.h).
    std::vector<int32_t> chat_prompt(const json& body) const {
        if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty())
            throw BadRequest{"'messages' must be a non-empty array"};
        std::vector<ChatMessage> messages;
        for (const auto& m : body["messages"]) {
            if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
                throw BadRequest{"each message needs a 'role'"};
            const std::string role = m["role"].get<std::string>();
            if (role != "system" && role != "user" && role != "assistant")
                throw BadRequest{"unknown role '" + role + "'"};
            messages.push_back({role, content_text(m.value("content", json()))});
        }
        return chat_tokens(tok, messages);
    }

    void generate(Connection& c, const json& body, bool chat) {
        std::vector<int32_t> prompt = chat ? chat_prompt(body) : completion_prompt(body);
        if (prompt.empty()) throw BadRequest{"the prompt is empty"};
        const int32_t n_prompt = static_cast<int32_t>(prompt.size());
        if (n_prompt > opt.max_prompt_tokens)
            throw BadRequest{"the prompt has " + std::to_string(n_prompt) +
                             " tokens; the limit is " + std::to_string(opt.max_prompt_tokens)};
        const int32_t ctx = static_cast<int32_t>(sched.model().hparams().n_ctx_train);
        int32_t max_tokens = chat ? ctx - n_prompt : 16;  // OpenAI's defaults
        for (const char* key : {"max_tokens", "max_completion_tokens"}) {
            if (body.contains(key) && !body[key].is_null()) max_tokens = body[key].get<int32_t>();
        }
        if (max_tokens < 1) throw BadRequest{"max_tokens must be >= 1"};
        max_tokens = std::min(max_tokens, ctx - n_prompt);
        if (max_tokens < 1) throw BadRequest{"the prompt fills the model's context"};

        SamplingParams sp;
        sp.temperature = body.value("temperature", 1.0f);
        sp.top_p = body.value("top_p", 1.0f);
        sp.top_k = body.value("top_k", 0);  // not OpenAI's; off unless asked
        sp.min_p = body.value("min_p", 0.0f);
        sp.repeat_penalty = body.value("repeat_penalty", 1.0f);
        if (body.contains("seed") && !body["seed"].is_null())
            sp.seed = body["seed"].get<uint64_t>();
        if (Status st = sp.validate(); !st) throw BadRequest{st.error().message};

        std::vector<std::string> stops;
        if (body.contains("stop") && !body["stop"].is_null()) {
            const json& s = body["stop"];
            if (s.is_string())
                stops.push_back(s.get<std::string>());
            else if (s.is_array())
                for (const auto& x : s) stops.push_back(x.get<std::string>());
            else
                throw BadRequest{"'stop' must be a string or an array of strings"};
        }
        auto matcher = StopMatcher::create(stops);
        if (!matcher) throw BadRequest{matcher.error().message};
        const bool stream = body.value("stream", false);

        auto gen = std::make_shared<Generation>();
        gen->stop = std::move(*matcher);
        Request r;
        r.prompt = std::move(prompt);
        r.priority = chat ? Priority::kChat : Priority::kInline;
        if (body.value("priority", "") == "warm") r.priority = Priority::kWarm;
        r.sampling = sp;
        r.max_tokens = max_tokens;
        r.end_tokens = end_tokens;
        r.deadline = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(opt.request_timeout_s * 1000));
        const Tokenizer* t = &tok;
        r.on_token = [gen, t](int32_t id) {
            auto step = gen->stop.push(t->token_to_piece(id));
            std::lock_guard lock(gen->mu);
            if (!step.emit.empty()) gen->pieces.push_back(std::move(step.emit));
            gen->cv.notify_all();
            return !step.stopped;
        };
        r.on_done = [gen](const RequestResult& res) {
            std::string tail = gen->stop.flush();
            std::lock_guard lock(gen->mu);
            if (!tail.empty()) gen->pieces.push_back(std::move(tail));
            gen->result = res;
            gen->done = true;
            gen->cv.notify_all();
        };
        auto handle = sched.submit(std::move(r));
        if (!handle) {
            ++http_errors;
            if (handle.error().message == "busy")
                return (void)write(c, error_response(503, "the server is busy; retry later",
                                                     "server_busy", "Retry-After: 1\r\n"));
            throw BadRequest{handle.error().message};
        }

        const std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id++);
        const int64_t created = static_cast<int64_t>(std::time(nullptr));
        const char* object = chat ? "chat.completion" : "text_completion";
        auto usage = [&](const RequestResult& res) {
            const int32_t completion = static_cast<int32_t>(res.tokens.size());
            return json{{"prompt_tokens", res.prompt_tokens},
                        {"completion_tokens", completion},
                        {"total_tokens", res.prompt_tokens + completion},
                        {"prompt_tokens_details", {{"cached_tokens", res.cached_tokens}}},
                        {"prompt_cache_hit_tokens", res.cached_tokens},
                        {"prompt_cache_miss_tokens", res.computed_tokens}};
        };
        auto finish_reason = [](const RequestResult& res) {
            return res.finish_reason == "length" || res.finish_reason == "deadline" ? "length"
                                                                                    : "stop";
        };

        // Waits for text or the end; false when the server stops meanwhile.
        auto next = [&](std::deque<std::string>& out, bool& done, RequestResult& res) {
            std::unique_lock lock(gen->mu);
            while (gen->pieces.empty() && !gen->done) {
                if (c.stop) return false;
                gen->cv.wait_for(lock, std::chrono::milliseconds(100));
            }
            out.swap(gen->pieces);
            done = gen->done;
            if (done) res = gen->result;
            return true;
        };

        if (!stream) {
            std::string text;
            bool done = false;
            RequestResult res;
            while (!done) {
                std::deque<std::string> pieces;
                if (!next(pieces, done, res)) return sched.cancel(*handle);
                for (auto& p : pieces) text += p;
            }
            if (res.finish_reason == "error")
                return (void)write(c, error_response(500, res.error, "server_error"));
            json choice = {{"index", 0}, {"finish_reason", finish_reason(res)}};
            if (chat) {
                choice["message"] = {{"role", "assistant"}, {"content", text}};
            } else {
                choice["text"] = text;
                choice["logprobs"] = nullptr;
            }
            json j = {{"id", id},
                      {"object", object},
                      {"created", created},
                      {"model", opt.model_name},
                      {"choices", json::array({choice})},
                      {"usage", usage(res)}};
            return (void)write(c, response(200, dump(j)));
        }

        const char* chunk_object = chat ? "chat.completion.chunk" : "text_completion";
        auto event = [&](const std::string& text, const json& reason) {
            json choice = {{"index", 0}, {"finish_reason", reason}};
            if (chat) {
                choice["delta"] = {{"content", text}};
            } else {
                choice["text"] = text;
                choice["logprobs"] = nullptr;
            }
            return json{{"id", id},
                        {"object", chunk_object},
                        {"created", created},
                        {"model", opt.model_name},
                        {"choices", json::array({choice})}};
        };
        std::string head =
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        if (chat) {
            json first = event("", nullptr);
            first["choices"][0]["delta"] = {{"role", "assistant"}, {"content", ""}};
            head += sse(first);
        }
        if (!write(c, head)) return sched.cancel(*handle);
        bool done = false;
        RequestResult res;
        while (!done) {
            std::deque<std::string> pieces;
            if (!next(pieces, done, res)) return sched.cancel(*handle);
            std::string out;
            for (auto& p : pieces) out += sse(event(p, nullptr));
            if (!out.empty() && !write(c, out)) {
                // The client went away: stop computing for it.
                return sched.cancel(*handle);
            }
        }
        std::string tail;
        if (res.finish_reason == "error") {
            tail += sse(json{{"error", {{"message", res.error}, {"type", "server_error"}}}});
        } else {
            json last = event("", finish_reason(res));
            if (chat) last["choices"][0]["delta"] = json::object();
            last["usage"] = usage(res);
            tail += sse(last);
        }
        tail += chunk("data: [DONE]\n\n") + "0\r\n\r\n";
        write(c, tail);
    }

    std::string metrics() const {
        const auto s = sched.stats();
        std::string out;
        auto metric = [&](const char* name, const char* type, const char* help, double v) {
            char value[64];
            std::snprintf(value, sizeof(value), "%.17g", v);  // counters print as integers
            out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type +
                   "\n" + name + " " + value + "\n";
        };
        metric("latent_http_requests_total", "counter", "HTTP requests read",
               double(http_requests));
        metric("latent_http_errors_total", "counter", "HTTP requests answered with an error",
               double(http_errors));
        metric("latent_http_rejected_connections_total", "counter",
               "connections answered 503 (too many open)", double(rejected_connections));
        metric("latent_http_open_connections", "gauge", "open connections", self->open_.load());
        metric("latent_requests_total", "counter", "generation requests accepted",
               double(s.requests));
        metric("latent_requests_busy_total", "counter", "requests refused: queue full",
               double(s.rejected_busy));
        metric("latent_requests_cancelled_total", "counter", "requests cancelled",
               double(s.cancelled));
        metric("latent_prompt_tokens_total", "counter", "prompt tokens", double(s.prompt_tokens));
        metric("latent_prompt_cached_tokens_total", "counter",
               "prompt tokens served from the prefix cache", double(s.cached_tokens));
        metric("latent_prompt_computed_tokens_total", "counter", "prompt tokens computed",
               double(s.computed_tokens));
        metric("latent_prompt_prefilled_tokens_total", "counter",
               "prompt rows the model ran (warm-ups and cancelled requests included)",
               double(s.prefilled_tokens));
        metric("latent_generated_tokens_total", "counter", "tokens generated",
               double(s.generated_tokens));
        metric("latent_draft_tokens_total", "counter", "speculative draft tokens proposed",
               double(s.drafted_tokens));
        metric("latent_draft_accepted_tokens_total", "counter", "draft tokens accepted",
               double(s.accepted_tokens));
        metric("latent_queue_depth", "gauge", "requests waiting or running", double(s.queue_depth));
        metric("latent_running", "gauge", "sequences running", double(s.running));
        metric("latent_steps_total", "counter", "scheduler steps", double(s.steps));
        metric("latent_step_seconds_total", "counter", "time spent in scheduler steps",
               s.step_seconds);
        metric("latent_step_sequences_total", "counter",
               "sequences run in scheduler steps (divided by steps: the mean batch)",
               double(s.batched_sequences));
        metric("latent_prefix_cache_bytes", "gauge", "bytes of cached prefix pages in RAM",
               double(s.prefix.bytes));
        metric("latent_prefix_cache_evictions_total", "counter", "prefix pages evicted from RAM",
               double(s.prefix.evictions));
        metric("latent_prefix_cache_disk_loads_total", "counter", "prefix pages read from disk",
               double(s.prefix.disk_loads));
        metric("latent_prefix_cache_device_pages", "gauge", "cache pages held in device memory",
               double(s.device.pages));
        metric("latent_prefix_cache_device_hits_total", "counter",
               "cache page ranges a sequence got from device memory", double(s.device.hits));
        metric("latent_prefix_cache_device_uploads_total", "counter",
               "cache page ranges a sequence got from host memory instead",
               double(s.device.uploads));
        return out;
    }
};

HttpServer::HttpServer(Scheduler& scheduler, const Tokenizer& tokenizer, Options options)
    : impl_(std::make_unique<Impl>(this, scheduler, tokenizer, std::move(options))) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start() {
    beast::error_code ec;
    const auto address = net::ip::make_address(impl_->opt.host, ec);
    if (ec) return make_error("--host " + impl_->opt.host + ": not an IP address");
    auto acceptor = std::make_unique<tcp::acceptor>(impl_->accept_ioc);
    const tcp::endpoint ep(address, impl_->opt.port);
    acceptor->open(ep.protocol(), ec);
    if (!ec) acceptor->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
    if (ec)
        return make_error("cannot listen on " + impl_->opt.host + ":" +
                          std::to_string(impl_->opt.port) + ": " + ec.message());
    port_ = acceptor->local_endpoint().port();
    impl_->acceptor = std::move(acceptor);
    impl_->accept_thread = std::thread([this] { impl_->accept_loop(); });
    return Status::success();
}

void HttpServer::stop() {
    if (!impl_->acceptor) return;
    impl_->stopping = true;
    // Wakes the blocking accept() (Linux answers it with EINVAL).
    ::shutdown(impl_->acceptor->native_handle(), SHUT_RDWR);
    if (impl_->accept_thread.joinable()) impl_->accept_thread.join();
    std::list<std::shared_ptr<Impl::Connection>> conns;
    {
        std::lock_guard lock(impl_->conns_mu);
        conns.swap(impl_->conns);
    }
    for (auto& c : conns) {
        c->stop = true;
        std::lock_guard lock(c->mu);
        if (!c->closed) ::shutdown(c->stream.socket().native_handle(), SHUT_RDWR);
    }
    for (auto& c : conns) c->thread.join();
    beast::error_code ec;
    impl_->acceptor->close(ec);
    impl_->acceptor.reset();
}

}  // namespace latent::engine
