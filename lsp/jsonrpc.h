// JSON-RPC 2.0 as LSP uses it: an Endpoint that parses message bodies, dispatches requests
// and notifications to handlers on a worker pool, answers errors with the spec's codes,
// sends server->client requests and routes their responses, cancellation and progress.
// It knows no framing (transport.h) and no Latent methods (agent/ registers those).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "lsp/protocol.h"
#include "lsp/transport.h"

namespace latent::lsp {

// The error codes of JSON-RPC 2.0 and LSP, in one place.
namespace error_code {
constexpr int kParseError = -32700;            // the body is not JSON
constexpr int kInvalidRequest = -32600;        // JSON, but not a request/notification/response
constexpr int kMethodNotFound = -32601;        // no handler for a request's method
constexpr int kInvalidParams = -32602;         // params of the wrong shape (ProtocolError)
constexpr int kInternalError = -32603;         // a handler threw
constexpr int kServerNotInitialized = -32002;  // a request before the gate was opened
constexpr int kRequestFailed = -32803;         // valid request that failed; also our timeouts
constexpr int kServerCancelled = -32802;       // the server gave up on the request
constexpr int kContentModified = -32801;       // the document changed under the request
constexpr int kRequestCancelled = -32800;      // the client cancelled ($/cancelRequest)
}  // namespace error_code

struct ResponseError {
    int code = error_code::kInternalError;
    std::string message;
    json data;  // optional extra information; null when absent
};
void to_json(json& j, const ResponseError& v);
void from_json(const json& j, ResponseError& v);

// A value or a ResponseError: what a request handler returns and what a server->client
// request's callback receives.
template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    Result(ResponseError error) : v_(std::in_place_index<1>, std::move(error)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() { return std::get<0>(v_); }
    const T& value() const { return std::get<0>(v_); }
    const ResponseError& error() const { return std::get<1>(v_); }

private:
    std::variant<T, ResponseError> v_;
};

class Endpoint;

// Deferred replies and their contexts reach the endpoint through this, under its mutex;
// the endpoint's destructor clears it, so a late reply finds no endpoint, not a dangling one.
struct EndpointLife {
    std::mutex mu;
    Endpoint* endpoint = nullptr;
};

// What a request handler may know and do besides reading its params.
//
// Thread safety: used by the one handler invocation it was made for; cancelled() may be
// called from any thread.
class RequestContext {
public:
    const IntOrString& id() const { return id_; }
    const std::string& method() const { return method_; }
    // The order in which the endpoint read this request (1, 2, ...): a request read later
    // has a larger number, whatever order parallel handlers happen to start in.
    uint64_t arrival() const { return arrival_; }
    // True once the client sent $/cancelRequest for this id (or the endpoint is shutting
    // down). Long handlers should check it and return early; whatever they return after
    // cancellation, the client is answered -32800.
    bool cancelled() const;
    // The tokens the client passed in params (workDoneToken, partialResultToken).
    const std::optional<ProgressToken>& work_done_token() const { return work_done_token_; }
    const std::optional<ProgressToken>& partial_result_token() const {
        return partial_result_token_;
    }
    // Sends `value` as a partial result ($/progress with the partialResultToken). False,
    // and nothing sent, when the client gave no token or the request was cancelled.
    bool send_partial_result(const json& value);
    Endpoint& endpoint() { return *endpoint_; }

    // Lets the handler return before it has the answer, so that waiting on something slow
    // (a model loading) holds no worker: whatever the handler returns after calling defer()
    // is ignored, and the request is answered by the DeferredReply, from any thread. A
    // deferred request cancelled by the client is answered -32800 at once; one whose
    // DeferredReply is dropped unanswered is answered -32802. Call at most once.
    std::shared_ptr<class DeferredReply> defer();

private:
    friend class Endpoint;
    friend class DeferredReply;
    struct State;
    RequestContext(Endpoint* endpoint, IntOrString id, std::string method,
                   std::shared_ptr<State> state);

    Endpoint* endpoint_;
    IntOrString id_;
    std::string method_;
    std::shared_ptr<State> state_;
    std::optional<ProgressToken> work_done_token_;
    std::optional<ProgressToken> partial_result_token_;
    std::weak_ptr<RequestContext> self_;
    uint64_t arrival_ = 0;
};

// The answer to a deferred request (RequestContext::defer()). It may outlive the Endpoint:
// once the endpoint is gone (it answers every deferred request -32800 as it shuts down),
// reply() does nothing.
//
// Thread safety: reply() and context() from any thread; the first reply() wins.
class DeferredReply {
public:
    ~DeferredReply();  // unanswered: -32802 "the server gave up"
    DeferredReply(const DeferredReply&) = delete;
    DeferredReply& operator=(const DeferredReply&) = delete;

    // The request's context (cancelled(), send_partial_result()), alive as long as this.
    RequestContext& context() { return *ctx_; }
    void reply(Result<json> result);

private:
    friend class RequestContext;
    explicit DeferredReply(std::shared_ptr<RequestContext> ctx) : ctx_(std::move(ctx)) {}
    std::shared_ptr<RequestContext> ctx_;
};

// The dispatcher. Feed it message bodies with receive(); it writes replies and its own
// messages through the Sink, one whole message at a time.
//
// Ordering. Each handler is registered as kReader, kSequential or kParallel:
//  - kReader handlers (notifications only) run on the reading thread, inside receive(),
//    before it returns: whatever they change is in effect for every message read after
//    them, however the workers are scheduled. For cheap state changes only (document
//    sync applies an edit there); slower follow-ups go to post().
//  - kSequential handlers (the default for notifications: didOpen/didChange/didClose must
//    apply in order) run one at a time, in arrival order.
//  - kParallel handlers (the default for requests) may run concurrently with each other,
//    but start only after every kSequential message that arrived before them finished,
//    so a completion request sees the edits sent before it.
// With worker_threads == 0 everything runs inline inside receive(), in arrival order: the
// deterministic mode for tests and the fuzzer. A handler that waits on a server->client
// response would deadlock in that mode (the response can only arrive via receive()).
//
// Built in: $/cancelRequest (marks the request cancelled; a queued one is answered
// -32800 without running), the initialize gate (see Options), JSON-RPC error replies.
// Batches (JSON arrays) are answered with one -32600 error: LSP does not use them.
//
// Thread safety: receive() from one thread (the reader). Register handlers before the first
// receive(). notify(), progress(), send_request(), open_gate(), expire_requests() and
// RequestContext calls are safe from any thread, handlers included. The Sink is called
// under the endpoint's writer mutex, so it needs no locking of its own.
class Endpoint {
public:
    using Sink = std::function<void(const std::string& body)>;
    using Log = std::function<void(const std::string& line)>;
    using RequestHandler = std::function<Result<json>(const json& params, RequestContext& ctx)>;
    using NotificationHandler = std::function<void(const json& params)>;
    using ResponseCallback = std::function<void(Result<json>)>;
    enum class Concurrency { kSequential, kParallel, kReader };

    struct Options {
        // Threads that run handlers; 0 runs them inline in receive(). Default 4: enough to
        // answer a completion while a chat request streams, without oversubscribing the
        // machine the engine needs.
        unsigned worker_threads = 4;
        // Until open_gate(), requests other than these are answered -32002 and
        // notifications other than these are dropped (LSP: before initialize, drop
        // notifications except exit). False starts with the gate open.
        bool require_initialize = true;
        std::vector<std::string> ungated_methods = {"initialize", "exit"};
        // How long a server->client request waits for its response before its callback gets
        // a -32803 error and the client a $/cancelRequest. 30 s: a user answering a prompt
        // such as applyEdit's diff view is slow, but a lost response must not leak forever.
        std::chrono::milliseconds request_timeout{30000};
        // Diagnostics (framing errors, unhandled notifications), called from the reader and
        // worker threads, so it must be thread-safe. Never stdout: in `latent lsp` stdout is
        // the protocol. Null: silent.
        Log log;
    };

    Endpoint(Sink sink, Options options);
    // stop(). The Sink must outlive this.
    ~Endpoint();
    // Cancels every in-flight request, lets queued work finish (answered -32800), answers
    // deferred requests -32800, fails pending server->client requests and joins the
    // workers; later messages are dropped. Call it before the handlers' owner goes (their
    // lambdas may hold it). Idempotent; not from a handler.
    void stop();
    Endpoint(const Endpoint&) = delete;
    Endpoint& operator=(const Endpoint&) = delete;

    void on_request(std::string method, RequestHandler handler,
                    Concurrency concurrency = Concurrency::kParallel);
    void on_notification(std::string method, NotificationHandler handler,
                         Concurrency concurrency = Concurrency::kSequential);

    // Typed forms: params are read with from_json (a failure is answered -32602) and the
    // result written with to_json. F: Result<R>(const P&, RequestContext&) / void(const P&).
    template <class P, class R, class F>
    void on_request(std::string method, F handler,
                    Concurrency concurrency = Concurrency::kParallel) {
        on_request(std::move(method),
                   RequestHandler([h = std::move(handler)](const json& params,
                                                           RequestContext& ctx) -> Result<json> {
                       P p;
                       try {
                           p = params.get<P>();
                       } catch (const std::exception& e) {
                           return ResponseError{error_code::kInvalidParams, e.what(), {}};
                       }
                       Result<R> r = h(p, ctx);
                       if (!r) return r.error();
                       return json(r.value());
                   }),
                   concurrency);
    }
    template <class P, class F>
    void on_notification(std::string method, F handler,
                         Concurrency concurrency = Concurrency::kSequential) {
        on_notification(std::move(method),
                        NotificationHandler([h = std::move(handler)](const json& params) {
                            h(params.get<P>());  // a ProtocolError here is logged, not fatal
                        }),
                        concurrency);
    }

    // Queues `work` under the ordering rules above, as if a message of that kind had just
    // arrived (kReader: runs inline). For follow-ups of reader handlers and for deferred
    // requests' continuations. Exceptions from `work` are logged.
    void post(Concurrency concurrency, std::function<void()> work);

    // Lets every method through (call it from the initialize handler, before it returns).
    void open_gate();
    bool gate_open() const;

    // One message body, as the transport delivered it.
    void receive(std::string_view body);
    // A framing error from the transport: logged (nobody to answer: no id is known).
    void report_framing_error(const std::string& error);

    void notify(const std::string& method, const json& params);
    // $/progress {token, value}.
    void progress(const ProgressToken& token, const json& value);

    // Server->client request. `callback` runs once, with the result, the client's error, or
    // a -32803 timeout error; it runs on the thread that delivers the response (the reader,
    // or the timer) and must be short. timeout: Options::request_timeout when absent.
    IntOrString send_request(const std::string& method, const json& params,
                             ResponseCallback callback,
                             std::optional<std::chrono::milliseconds> timeout = std::nullopt);
    // The same, as a future.
    std::future<Result<json>> send_request(
        const std::string& method, const json& params,
        std::optional<std::chrono::milliseconds> timeout = std::nullopt);
    // Times out server->client requests whose deadline is before `now`. With workers, a
    // timer thread calls this; with 0 workers the owner (or a test, with a chosen `now`) does.
    void expire_requests(std::chrono::steady_clock::time_point now);
    size_t pending_client_requests() const;
    // The arrival (RequestContext::arrival) of the newest request for `method` read so far,
    // 0 if none: lets a handler see, at once, that the client already asked again.
    uint64_t newest_arrival(const std::string& method) const;

    // Blocks until no handler is queued or running.
    void block_until_idle_for_test();

private:
    struct Work {
        Concurrency concurrency;
        std::function<void()> run;
    };
    struct Outgoing {
        std::string method;
        ResponseCallback callback;
        std::chrono::steady_clock::time_point deadline;
    };

    void send(const json& message);
    void send_error(const json& id, int code, const std::string& message);
    void log(const std::string& line) const;
    void handle_request(IntOrString id, const std::string& method, json params);
    void handle_notification(const std::string& method, json params);
    // Sends the request's one answer (-32800 when cancelled) unless it was answered.
    void answer(RequestContext& ctx, Result<json> result);
    // Answers a deferred request -32800 unless it was answered. With life_->mu held.
    void cancel_deferred(const IntOrString& id, RequestContext::State& state);
    void handle_response(const IntOrString& id, const json& message);
    bool gated(const std::string& method) const;
    void schedule(Work work);
    void pump(std::unique_lock<std::mutex>& lock);
    void finish(const Work& work, std::unique_lock<std::mutex>& lock);
    void worker_loop();
    void timer_loop();

    Sink sink_;
    Options options_;
    std::map<std::string, std::pair<RequestHandler, Concurrency>> request_handlers_;
    std::map<std::string, std::pair<NotificationHandler, Concurrency>> notification_handlers_;
    std::set<std::string> ungated_;

    std::mutex write_mutex_;  // one whole message at a time into the Sink

    mutable std::mutex mutex_;  // everything below
    bool gate_open_ = false;
    bool stopping_ = false;
    std::map<IntOrString, std::shared_ptr<RequestContext::State>> in_flight_;
    std::map<int64_t, Outgoing> outgoing_;
    int64_t next_outgoing_id_ = 1;
    uint64_t arrivals_ = 0;  // requests read so far (RequestContext::arrival)
    std::map<std::string, uint64_t> newest_arrival_;  // per method
    std::deque<Work> pending_;                        // arrived, not started (ordering rules above)
    std::deque<Work> ready_;                          // released to the workers
    bool sequential_running_ = false;
    size_t running_ = 0;  // released or running, not finished
    std::condition_variable work_cv_;
    std::condition_variable idle_cv_;
    std::condition_variable timer_cv_;
    std::vector<std::thread> workers_;
    std::thread timer_;
    std::shared_ptr<struct EndpointLife> life_;
    std::atomic<bool> stopped_{false};  // stop() ran
    friend class DeferredReply;
    friend class RequestContext;
};

// Work-done progress on one token: begin, then reports, then end, in that order whatever
// the caller does (a report before begin or after end is dropped; end is sent once, by the
// destructor when the caller forgot). For server-initiated progress, create the token first
// with window/workDoneProgress/create (send_request) and wait for the client's answer.
//
// Thread safety: one thread at a time.
class WorkDoneProgress {
public:
    WorkDoneProgress(Endpoint& endpoint, ProgressToken token);
    ~WorkDoneProgress();
    WorkDoneProgress(const WorkDoneProgress&) = delete;
    WorkDoneProgress& operator=(const WorkDoneProgress&) = delete;

    void begin(const WorkDoneProgressBegin& value);
    void report(const WorkDoneProgressReport& value);
    void end(const WorkDoneProgressEnd& value = {});

private:
    enum class Stage { kIdle, kBegun, kEnded };
    Endpoint& endpoint_;
    ProgressToken token_;
    Stage stage_ = Stage::kIdle;
};

// Reads and dispatches messages until end of stream or a fatal framing error; header
// errors are reported to the endpoint and reading continues. Returns when the stream ends.
void run_message_loop(FdTransport& transport, Endpoint& endpoint);

}  // namespace latent::lsp
