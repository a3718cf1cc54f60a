// The JSON-RPC endpoint: message classification, error replies, the worker pool with its
// ordering rules, cancellation, server->client requests and progress. See jsonrpc.h.
#include "lsp/jsonrpc.h"

#include <atomic>
#include <exception>

namespace latent::lsp {

struct RequestContext::State {
    std::atomic<bool> cancelled{false};
    std::atomic<bool> deferred{false};
    std::atomic<bool> answered{false};  // the one answer was sent (or is being sent)
    std::shared_ptr<EndpointLife> life;
};

void to_json(json& j, const ResponseError& v) {
    j = json{{"code", v.code}, {"message", v.message}};
    if (!v.data.is_null()) j["data"] = v.data;
}
void from_json(const json& j, ResponseError& v) {
    if (!j.is_object()) throw ProtocolError("error: expected object");
    auto code = j.find("code");
    auto message = j.find("message");
    if (code == j.end() || !code->is_number_integer())
        throw ProtocolError("error.code: expected integer");
    if (message == j.end() || !message->is_string())
        throw ProtocolError("error.message: expected string");
    v.code = code->get<int>();
    v.message = message->get<std::string>();
    auto data = j.find("data");
    v.data = data == j.end() ? json() : *data;
}

RequestContext::RequestContext(Endpoint* endpoint, IntOrString id, std::string method,
                               std::shared_ptr<State> state)
    : endpoint_(endpoint),
      id_(std::move(id)),
      method_(std::move(method)),
      state_(std::move(state)) {}

bool RequestContext::cancelled() const { return state_->cancelled.load(); }

bool RequestContext::send_partial_result(const json& value) {
    if (!partial_result_token_ || cancelled()) return false;
    if (!state_->deferred) {  // the handler runs on a worker: the endpoint is alive
        endpoint_->progress(*partial_result_token_, value);
        return true;
    }
    std::lock_guard<std::mutex> lock(state_->life->mu);
    if (!state_->life->endpoint || state_->answered) return false;
    state_->life->endpoint->progress(*partial_result_token_, value);
    return true;
}

std::shared_ptr<DeferredReply> RequestContext::defer() {
    state_->deferred = true;
    return std::shared_ptr<DeferredReply>(new DeferredReply(self_.lock()));
}

DeferredReply::~DeferredReply() {
    reply(ResponseError{error_code::kServerCancelled, "the server gave up on the request", {}});
}

void DeferredReply::reply(Result<json> result) {
    auto& state = *ctx_->state_;
    std::lock_guard<std::mutex> lock(state.life->mu);
    if (!state.life->endpoint || state.answered) return;
    state.life->endpoint->answer(*ctx_, std::move(result));
}

namespace {

// A token from params, or nullopt when absent or of the wrong type (a bad token only
// costs the client its progress, not the request).
std::optional<ProgressToken> token_in(const json& params, const char* key) {
    if (!params.is_object()) return std::nullopt;
    auto it = params.find(key);
    if (it == params.end() || !(it->is_string() || it->is_number_integer())) return std::nullopt;
    try {
        return it->get<ProgressToken>();
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

// No LSP message nests deeper than a dozen levels. nlohmann's parser is iterative, but
// copying and dumping a value recurse, so a body of 64 MiB of '[' would overflow the stack.
constexpr size_t kMaxNesting = 256;

// The deepest bracket nesting in `body`, ignoring brackets inside strings. Stops counting
// once past the cap.
size_t nesting_depth(std::string_view body) {
    size_t depth = 0, deepest = 0;
    bool in_string = false, escaped = false;
    for (char c : body) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > deepest) deepest = depth;
            if (deepest > kMaxNesting) return deepest;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return deepest;
}

}  // namespace

Endpoint::Endpoint(Sink sink, Options options)
    : sink_(std::move(sink)),
      options_(std::move(options)),
      life_(std::make_shared<EndpointLife>()) {
    life_->endpoint = this;
    ungated_.insert(options_.ungated_methods.begin(), options_.ungated_methods.end());
    gate_open_ = !options_.require_initialize;
    for (unsigned i = 0; i < options_.worker_threads; ++i)
        workers_.emplace_back([this] { worker_loop(); });
    if (options_.worker_threads > 0) timer_ = std::thread([this] { timer_loop(); });
}

Endpoint::~Endpoint() { stop(); }

void Endpoint::stop() {
    if (stopped_.exchange(true)) return;
    std::map<int64_t, Outgoing> left;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
        for (auto& [id, state] : in_flight_) state->cancelled = true;
        left.swap(outgoing_);
    }
    // Fail pending server->client requests first: a handler may be waiting on one, and no
    // response can arrive once the owner stopped calling receive().
    for (auto& [id, out] : left)
        out.callback(ResponseError{error_code::kRequestCancelled, "endpoint shut down", {}});
    block_until_idle_for_test();
    // Deferred requests still waiting: answered now (they were marked cancelled above), and
    // no later reply reaches this endpoint.
    {
        std::lock_guard<std::mutex> life(life_->mu);
        std::vector<std::pair<IntOrString, std::shared_ptr<RequestContext::State>>> deferred;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            for (auto& [id, state] : in_flight_)
                if (state->deferred) deferred.emplace_back(id, state);
        }
        for (auto& [id, state] : deferred) cancel_deferred(id, *state);
        life_->endpoint = nullptr;
    }
    work_cv_.notify_all();
    timer_cv_.notify_all();
    // workers_ keeps its (joined) threads: pump() reads its size, under the lock, from
    // threads that may still post work after stop (it then waits in ready_, unrun).
    for (auto& t : workers_) t.join();
    if (timer_.joinable()) timer_.join();
}

void Endpoint::cancel_deferred(const IntOrString& id, RequestContext::State& state) {
    if (state.answered.exchange(true)) return;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        in_flight_.erase(id);
    }
    send_error(json(id), error_code::kRequestCancelled, "request cancelled");
}

void Endpoint::answer(RequestContext& ctx, Result<json> result) {
    if (ctx.state_->answered.exchange(true)) return;
    // The client asked to cancel: it gets -32800 whatever the handler made, so a cancelled
    // request always reads the same.
    if (ctx.cancelled())
        result = ResponseError{error_code::kRequestCancelled, "request cancelled", {}};
    {
        // Forget the id before replying: the client may reuse it at once.
        std::lock_guard<std::mutex> lock(mutex_);
        in_flight_.erase(ctx.id());
    }
    if (result)
        send(json{{"jsonrpc", "2.0"}, {"id", ctx.id()}, {"result", std::move(result.value())}});
    else
        send(json{{"jsonrpc", "2.0"}, {"id", ctx.id()}, {"error", result.error()}});
}

void Endpoint::post(Concurrency concurrency, std::function<void()> work) {
    auto run = [this, work = std::move(work)] {
        try {
            work();
        } catch (const std::exception& e) {
            log(std::string("error: lsp: posted work failed: ") + e.what());
        }
    };
    if (concurrency == Concurrency::kReader)
        run();
    else
        schedule(Work{concurrency, std::move(run)});
}

void Endpoint::on_request(std::string method, RequestHandler handler, Concurrency concurrency) {
    request_handlers_[std::move(method)] = {std::move(handler), concurrency};
}

void Endpoint::on_notification(std::string method, NotificationHandler handler,
                               Concurrency concurrency) {
    notification_handlers_[std::move(method)] = {std::move(handler), concurrency};
}

void Endpoint::open_gate() {
    std::lock_guard<std::mutex> lock(mutex_);
    gate_open_ = true;
}

bool Endpoint::gate_open() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return gate_open_;
}

bool Endpoint::gated(const std::string& method) const {
    return !gate_open() && ungated_.count(method) == 0;
}

void Endpoint::log(const std::string& line) const {
    if (options_.log) options_.log(line);
}

void Endpoint::send(const json& message) {
    // `replace`: a handler's string with invalid UTF-8 becomes U+FFFD instead of throwing.
    const std::string body = message.dump(-1, ' ', false, json::error_handler_t::replace);
    std::lock_guard<std::mutex> lock(write_mutex_);
    sink_(body);
}

void Endpoint::send_error(const json& id, int code, const std::string& message) {
    send(json{{"jsonrpc", "2.0"}, {"id", id}, {"error", ResponseError{code, message, {}}}});
}

void Endpoint::report_framing_error(const std::string& error) {
    log("error: lsp: framing error: " + error);
}

void Endpoint::receive(std::string_view body) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) return;
    }
    if (nesting_depth(body) > kMaxNesting) {
        send_error(nullptr, error_code::kInvalidRequest,
                   "JSON nested deeper than " + std::to_string(kMaxNesting) + " levels");
        return;
    }
    json msg = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (msg.is_discarded()) {
        send_error(nullptr, error_code::kParseError, "parse error: the body is not valid JSON");
        return;
    }
    if (msg.is_array()) {
        send_error(nullptr, error_code::kInvalidRequest,
                   "batch messages are not supported (LSP does not use JSON-RPC batches)");
        return;
    }
    if (!msg.is_object()) {
        send_error(nullptr, error_code::kInvalidRequest, "a message must be a JSON object");
        return;
    }

    std::optional<IntOrString> id;
    bool has_id = false;
    if (auto it = msg.find("id"); it != msg.end()) {
        has_id = true;
        try {
            id = it->get<IntOrString>();
        } catch (const std::exception&) {
            // null, a fraction, an object, an integer past int64: not an id we can echo.
        }
    }
    const json id_json = id ? json(*id) : json(nullptr);

    auto version = msg.find("jsonrpc");
    if (version == msg.end() || *version != "2.0") {
        send_error(id_json, error_code::kInvalidRequest, "\"jsonrpc\" must be \"2.0\"");
        return;
    }

    auto method_it = msg.find("method");
    if (method_it != msg.end()) {
        if (!method_it->is_string()) {
            if (has_id) send_error(id_json, error_code::kInvalidRequest, "method must be a string");
            return;
        }
        const std::string method = method_it->get<std::string>();
        if (has_id && !id) {
            send_error(nullptr, error_code::kInvalidRequest, "id must be an integer or a string");
            return;
        }
        json params;
        // "params": null is taken as absent: some clients send it with exit and shutdown.
        if (auto p = msg.find("params"); p != msg.end() && !p->is_null()) {
            if (!p->is_object() && !p->is_array()) {
                if (id)
                    send_error(id_json, error_code::kInvalidRequest,
                               "params must be an object or an array");
                else
                    log("warning: lsp: dropped notification " + method + ": params not structured");
                return;
            }
            params = std::move(*p);  // a didOpen's params hold a whole document
        }
        if (id)
            handle_request(*id, method, std::move(params));
        else
            handle_notification(method, std::move(params));
        return;
    }
    if (id && (msg.contains("result") || msg.contains("error"))) {
        handle_response(*id, msg);
        return;
    }
    if (has_id && !id && (msg.contains("result") || msg.contains("error"))) {
        // A response with a null id: the client could not read one of our messages.
        log("warning: lsp: client reported an error without an id: " +
            msg.dump(-1, ' ', false, json::error_handler_t::replace).substr(0, 512));
        return;
    }
    send_error(id_json, error_code::kInvalidRequest,
               "neither a request, a notification nor a response");
}

void Endpoint::handle_request(IntOrString id, const std::string& method, json params) {
    if (gated(method)) {
        send_error(json(id), error_code::kServerNotInitialized,
                   "server not initialized: " + method + " before initialize");
        return;
    }
    auto handler_it = request_handlers_.find(method);
    if (handler_it == request_handlers_.end()) {
        send_error(json(id), error_code::kMethodNotFound, "method not found: " + method);
        return;
    }
    auto state = std::make_shared<RequestContext::State>();
    state->life = life_;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!in_flight_.emplace(id, state).second) {
            // Answering would be ambiguous: the client could not tell the two apart.
            send_error(json(id), error_code::kInvalidRequest,
                       "request id " + to_string(id) + " is already in flight");
            return;
        }
    }
    auto ctx = std::shared_ptr<RequestContext>(new RequestContext(this, id, method, state));
    ctx->self_ = ctx;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        ctx->arrival_ = ++arrivals_;
        newest_arrival_[method] = ctx->arrival_;
    }
    ctx->work_done_token_ = token_in(params, "workDoneToken");
    ctx->partial_result_token_ = token_in(params, "partialResultToken");
    const RequestHandler* handler = &handler_it->second.first;
    Concurrency concurrency = handler_it->second.second;
    if (concurrency == Concurrency::kReader) concurrency = Concurrency::kParallel;  // requests wait
    schedule(Work{concurrency, [this, ctx, handler, params = std::move(params)] {
                      Result<json> result =
                          ResponseError{error_code::kRequestCancelled, "request cancelled", {}};
                      if (!ctx->cancelled()) {
                          try {
                              result = (*handler)(params, *ctx);
                          } catch (const ProtocolError& e) {
                              result = ResponseError{error_code::kInvalidParams, e.what(), {}};
                          } catch (const json::exception& e) {
                              result = ResponseError{error_code::kInvalidParams, e.what(), {}};
                          } catch (const std::exception& e) {
                              result = ResponseError{error_code::kInternalError,
                                                     std::string("internal error: ") + e.what(),
                                                     {}};
                          }
                      }
                      // A deferred request is answered by its DeferredReply — unless the
                      // client cancelled it before it deferred: $/cancelRequest then found
                      // no deferred request to answer, so it is answered now, not when the
                      // work it waits for is done (the cancel's flag and `deferred` are
                      // seq_cst: one of the two sides sees the other).
                      if (!ctx->state_->deferred) {
                          answer(*ctx, std::move(result));
                      } else if (ctx->cancelled()) {
                          std::lock_guard<std::mutex> life(life_->mu);
                          cancel_deferred(ctx->id(), *ctx->state_);
                      }
                  }});
}

void Endpoint::handle_notification(const std::string& method, json params) {
    if (method == "$/cancelRequest") {
        try {
            const auto cancel = params.get<CancelParams>();
            std::shared_ptr<RequestContext::State> state;
            {
                std::lock_guard<std::mutex> lock(mutex_);
                if (auto it = in_flight_.find(cancel.id); it != in_flight_.end()) {
                    it->second->cancelled = true;
                    state = it->second;
                }
            }
            // A deferred request has no handler left to notice: answer it now.
            if (state && state->deferred) {
                std::lock_guard<std::mutex> life(life_->mu);
                cancel_deferred(cancel.id, *state);
            }
        } catch (const std::exception& e) {
            log(std::string("warning: lsp: bad $/cancelRequest: ") + e.what());
        }
        return;
    }
    if (gated(method)) {
        log("warning: lsp: dropped notification " + method + " before initialize");
        return;
    }
    auto handler_it = notification_handlers_.find(method);
    if (handler_it == notification_handlers_.end()) {
        // "$/" notifications are optional by the spec; others are worth a line in the log.
        if (method.rfind("$/", 0) != 0) log("lsp: no handler for notification " + method);
        return;
    }
    const NotificationHandler* handler = &handler_it->second.first;
    auto run = [this, handler, params = std::move(params), method] {
        try {
            (*handler)(params);
        } catch (const std::exception& e) {
            log("error: lsp: notification " + method + " failed: " + e.what());
        }
    };
    if (handler_it->second.second == Concurrency::kReader)
        run();
    else
        schedule(Work{handler_it->second.second, std::move(run)});
}

void Endpoint::handle_response(const IntOrString& id, const json& message) {
    if (!id.is_int()) {
        log("warning: lsp: response with an id we never sent: " + to_string(id));
        return;
    }
    Outgoing out;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = outgoing_.find(std::get<int64_t>(id.value));
        if (it == outgoing_.end()) {
            log("warning: lsp: response with an id we never sent (or that timed out): " +
                to_string(id));
            return;
        }
        out = std::move(it->second);
        outgoing_.erase(it);
    }
    if (auto err = message.find("error"); err != message.end()) {
        ResponseError e;
        try {
            e = err->get<ResponseError>();
        } catch (const std::exception& ex) {
            e = ResponseError{error_code::kInvalidRequest,
                              std::string("malformed error in response: ") + ex.what(),
                              {}};
        }
        out.callback(std::move(e));
    } else {
        out.callback(message.at("result"));
    }
}

void Endpoint::notify(const std::string& method, const json& params) {
    send(json{{"jsonrpc", "2.0"}, {"method", method}, {"params", params}});
}

void Endpoint::progress(const ProgressToken& token, const json& value) {
    notify("$/progress", ProgressParams{token, value});
}

IntOrString Endpoint::send_request(const std::string& method, const json& params,
                                   ResponseCallback callback,
                                   std::optional<std::chrono::milliseconds> timeout) {
    int64_t id;
    {
        std::unique_lock<std::mutex> lock(mutex_);
        id = next_outgoing_id_++;
        if (stopping_) {  // nobody would ever answer or expire it
            lock.unlock();
            callback(ResponseError{error_code::kRequestCancelled, "endpoint shut down", {}});
            return IntOrString(id);
        }
        outgoing_[id] =
            Outgoing{method, std::move(callback),
                     std::chrono::steady_clock::now() + timeout.value_or(options_.request_timeout)};
    }
    timer_cv_.notify_all();
    send(json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}});
    return IntOrString(id);
}

std::future<Result<json>> Endpoint::send_request(const std::string& method, const json& params,
                                                 std::optional<std::chrono::milliseconds> timeout) {
    auto promise = std::make_shared<std::promise<Result<json>>>();
    auto future = promise->get_future();
    send_request(
        method, params, [promise](Result<json> r) { promise->set_value(std::move(r)); }, timeout);
    return future;
}

void Endpoint::expire_requests(std::chrono::steady_clock::time_point now) {
    std::vector<std::pair<int64_t, Outgoing>> expired;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto it = outgoing_.begin(); it != outgoing_.end();) {
            if (it->second.deadline <= now) {
                expired.emplace_back(it->first, std::move(it->second));
                it = outgoing_.erase(it);
            } else {
                ++it;
            }
        }
    }
    for (auto& [id, out] : expired) {
        notify("$/cancelRequest", CancelParams{IntOrString(id)});
        out.callback(ResponseError{
            error_code::kRequestFailed, "no response to " + out.method + " in time", {}});
    }
}

uint64_t Endpoint::newest_arrival(const std::string& method) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = newest_arrival_.find(method);
    return it == newest_arrival_.end() ? 0 : it->second;
}

size_t Endpoint::pending_client_requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return outgoing_.size();
}

void Endpoint::schedule(Work work) {
    std::unique_lock<std::mutex> lock(mutex_);
    pending_.push_back(std::move(work));
    pump(lock);
}

// Releases pending work in arrival order as far as the ordering rules allow: a sequential
// item waits for the sequential item before it and holds back everything after it.
void Endpoint::pump(std::unique_lock<std::mutex>& lock) {
    while (!pending_.empty()) {
        const bool sequential = pending_.front().concurrency == Concurrency::kSequential;
        if (sequential_running_) return;  // a running sequential item holds back everything
        Work work = std::move(pending_.front());
        pending_.pop_front();
        if (sequential) sequential_running_ = true;
        ++running_;
        if (workers_.empty()) {
            lock.unlock();
            work.run();
            work.run = nullptr;  // as in worker_loop: destroyed without the lock
            lock.lock();
            --running_;
            if (sequential) sequential_running_ = false;
        } else {
            ready_.push_back(std::move(work));
            work_cv_.notify_one();
            if (sequential) return;
        }
    }
    if (running_ == 0) idle_cv_.notify_all();
}

void Endpoint::finish(const Work& work, std::unique_lock<std::mutex>& lock) {
    --running_;
    if (work.concurrency == Concurrency::kSequential) {
        sequential_running_ = false;
        pump(lock);
    }
    if (running_ == 0 && pending_.empty()) idle_cv_.notify_all();
}

void Endpoint::worker_loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        // While stopping, a worker stays until nothing is pending anywhere: a pending item
        // may still be released when the sequential item ahead of it finishes.
        work_cv_.wait(lock, [this] {
            return !ready_.empty() || (stopping_ && pending_.empty() && running_ == 0);
        });
        if (ready_.empty()) return;
        Work work = std::move(ready_.front());
        ready_.pop_front();
        lock.unlock();
        work.run();
        // Destroyed before the lock is taken again: what the work holds (a deferred reply
        // answering from its destructor) may take the endpoint's other locks.
        work.run = nullptr;
        lock.lock();
        finish(work, lock);
        if (stopping_) work_cv_.notify_all();
    }
}

void Endpoint::timer_loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
        if (outgoing_.empty()) {
            timer_cv_.wait(lock);
            continue;
        }
        auto earliest = std::chrono::steady_clock::time_point::max();
        for (const auto& [id, out] : outgoing_) earliest = std::min(earliest, out.deadline);
        if (timer_cv_.wait_until(lock, earliest) == std::cv_status::timeout) {
            lock.unlock();
            expire_requests(std::chrono::steady_clock::now());
            lock.lock();
        }
    }
}

void Endpoint::block_until_idle_for_test() {
    std::unique_lock<std::mutex> lock(mutex_);
    idle_cv_.wait(lock, [this] { return pending_.empty() && ready_.empty() && running_ == 0; });
}

WorkDoneProgress::WorkDoneProgress(Endpoint& endpoint, ProgressToken token)
    : endpoint_(endpoint), token_(std::move(token)) {}

WorkDoneProgress::~WorkDoneProgress() {
    if (stage_ == Stage::kBegun) end();
}

void WorkDoneProgress::begin(const WorkDoneProgressBegin& value) {
    if (stage_ != Stage::kIdle) return;
    stage_ = Stage::kBegun;
    endpoint_.progress(token_, value);
}

void WorkDoneProgress::report(const WorkDoneProgressReport& value) {
    if (stage_ != Stage::kBegun) return;
    endpoint_.progress(token_, value);
}

void WorkDoneProgress::end(const WorkDoneProgressEnd& value) {
    if (stage_ != Stage::kBegun) return;
    stage_ = Stage::kEnded;
    endpoint_.progress(token_, value);
}

void run_message_loop(FdTransport& transport, Endpoint& endpoint) {
    for (;;) {
        ReadResult r = transport.read();
        switch (r.kind) {
            case ReadResult::Kind::kMessage:
                endpoint.receive(r.body);
                break;
            case ReadResult::Kind::kError:
                endpoint.report_framing_error(r.error);
                break;
            case ReadResult::Kind::kFatal:
                endpoint.report_framing_error(r.error);
                return;
            case ReadResult::Kind::kEof:
                return;
        }
    }
}

}  // namespace latent::lsp
