// OpenAiService: the OpenAI/DeepSeek API over the Scheduler (see openai_service.h).
#include "engine/serve/openai_service.h"

#include <chrono>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>

#include "engine/prompt_format.h"
#include "engine/serve/api_request.h"
#include "engine/serve/http_response.h"
#include "engine/serve/output_constraint.h"
#include "engine/serve/tool_calls.h"

namespace latent::serve {

using namespace engine;
using nlohmann::json;

namespace {

// A client's error, answered with its status (400 unless said).
struct ClientError {
    std::string message;
    int status = 400;
};

// One piece of an answer on its way from the scheduler's thread to the handler's.
struct Piece {
    std::string text;
    std::vector<TokenLogprobs> logprobs;  // tokens whose text ends in this piece or before
};

// One choice's generation: filled by the scheduler's callbacks, drained by the handler.
struct ChoiceState {
    std::deque<Piece> pieces;
    std::vector<TokenLogprobs> pending_logprobs;  // scheduler thread: not yet in a piece
    bool done = false;
    RequestResult result;
    StopMatcher stop;  // scheduler thread only
    Scheduler::Handle handle = 0;
};

// All choices of a request share one lock and one wake-up.
struct Group {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<ChoiceState> choices;
};

const char* finish_reason_of(const RequestResult& r) {
    return r.finish_reason == "length" || r.finish_reason == "deadline" ? "length" : "stop";
}

json bytes_of(const std::string& s) {
    json b = json::array();
    for (unsigned char c : s) b.push_back(c);
    return b;
}

}  // namespace

OpenAiService::OpenAiService(Scheduler& scheduler, const Tokenizer& tokenizer,
                             ServiceOptions options)
    : sched_(scheduler), tok_(tokenizer), opt_(std::move(options)) {
    for (int32_t id = 0; id < tok_.n_vocab(); ++id)
        if (tok_.is_eog(id)) end_tokens_.push_back(id);
    if (opt_.max_prompt_tokens <= 0)
        opt_.max_prompt_tokens = static_cast<int32_t>(sched_.model().hparams().n_ctx_train);
    constraints_ = std::make_unique<OutputConstraints>(tok_, end_tokens_);
}

OpenAiService::~OpenAiService() = default;

std::optional<std::string> OpenAiService::quick(const HttpRequest& req, const std::string& extra) {
    const std::string& path = req.path;
    const bool get = req.method == "GET" || req.method == "HEAD";
    const bool generation = path == "/v1/completions" || path == "/v1/chat/completions" ||
                            path == "/beta/completions" || path == "/beta/chat/completions" ||
                            path == "/completions" || path == "/chat/completions";
    if (req.method == "OPTIONS") return http_response(204, "", "text/plain", extra);
    if (generation) {
        if (req.method == "POST") return std::nullopt;
        ++errors_;
        return error_response(405, "use POST", "invalid_request_error", extra + "Allow: POST\r\n");
    }
    auto only_get = [&]() -> std::optional<std::string> {
        ++errors_;
        return error_response(405, "use GET", "invalid_request_error", extra + "Allow: GET\r\n");
    };
    if (path == "/health") {
        if (!get) return only_get();
        return http_response(200, R"({"status":"ok"})", "application/json", extra);
    }
    if (path == "/v1/models" || path == "/models" || path == "/beta/models") {
        if (!get) return only_get();
        json j = {{"object", "list"},
                  {"data",
                   {{{"id", opt_.model_name},
                     {"object", "model"},
                     {"created", 0},
                     {"owned_by", "latent"}}}}};
        return http_response(200, dump(j), "application/json", extra);
    }
    if (path == "/metrics") {
        if (!get) return only_get();
        return http_response(200, metrics(), "text/plain; version=0.0.4", extra);
    }
    ++errors_;
    return error_response(404, "no route " + path.substr(0, 200), "not_found_error", extra);
}

// One generation request from its body to its answer.
struct OpenAiService::Run {
    OpenAiService& svc;
    Exchange& ex;
    const std::string& extra;
    ApiRequest req;
    std::vector<int32_t> prompt;
    std::string prompt_text;  // for echo
    std::shared_ptr<Group> group = std::make_shared<Group>();
    std::string id;
    int64_t created = static_cast<int64_t>(std::time(nullptr));
    std::chrono::steady_clock::time_point last_check = std::chrono::steady_clock::now();

    bool write(const std::string& bytes) { return ex.write(bytes); }

    void build_prompt() {
        const Tokenizer& tok = svc.tok_;
        if (req.chat) {
            ChatOptions co;
            co.prefix = req.prefix;
            if (req.tool_choice != ToolChoice::kNone || !req.tools.empty())
                co.tool_prompt = tool_prompt(req.tools);
            prompt = chat_tokens(tok, req.messages, co);
        } else if (!req.prompt_ids.empty()) {
            prompt = req.prompt_ids;
            for (int32_t t : prompt)
                if (t >= tok.n_vocab()) throw ClientError{"'prompt' token id out of range"};
            if (req.echo) prompt_text = tok.decode(prompt);
        } else if (req.suffix) {
            auto fim = fim_tokens(tok, req.prompt, *req.suffix);
            if (!fim) throw ClientError{fim.error().message};
            prompt = std::move(*fim);
        } else {
            // A raw prompt may spell special tokens (a FIM template sent as text, as to
            // vLLM and llama.cpp's server, which parse them too); BOS as the model wants
            // it, once (a prompt that spells it out gets no second one).
            prompt = tok.encode(req.prompt, false, true);
            if (tok.add_bos_by_default() && (prompt.empty() || prompt.front() != tok.bos()))
                prompt.insert(prompt.begin(), tok.bos());
            prompt_text = req.prompt;
        }
        if (prompt.empty()) throw ClientError{"the prompt is empty"};
        if (static_cast<int32_t>(prompt.size()) > svc.opt_.max_prompt_tokens)
            throw ClientError{"the prompt has " + std::to_string(prompt.size()) +
                              " tokens; the limit is " +
                              std::to_string(svc.opt_.max_prompt_tokens)};
    }

    int32_t max_tokens() const {
        const int32_t ctx = static_cast<int32_t>(svc.sched_.model().hparams().n_ctx_train);
        const int32_t room = ctx - static_cast<int32_t>(prompt.size());
        if (room < 1) throw ClientError{"the prompt fills the model's context"};
        const int32_t wanted =
            req.max_tokens.value_or(req.chat ? svc.opt_.default_chat_max_tokens : 16);
        return std::min(wanted, room);
    }

    // Submits one scheduler request per choice; false when the scheduler refused (written).
    bool submit(const std::shared_ptr<TokenConstraint>& first_constraint) {
        const int32_t n_max = max_tokens();
        group->choices.resize(static_cast<size_t>(req.n));
        for (int32_t i = 0; i < req.n; ++i) {
            auto matcher = StopMatcher::create(req.stop);
            if (!matcher) throw ClientError{matcher.error().message};
            group->choices[size_t(i)].stop = std::move(*matcher);
        }
        for (int32_t i = 0; i < req.n; ++i) {
            Request r;
            r.prompt = prompt;
            r.priority = req.chat ? Priority::kChat : Priority::kInline;
            if (req.warm) r.priority = Priority::kWarm;
            r.sampling = req.sampling;
            r.sampling.seed += static_cast<uint64_t>(i);  // choices differ, reproducibly
            r.max_tokens = n_max;
            r.end_tokens = svc.end_tokens_;
            r.frequency_penalty = req.frequency_penalty;
            r.presence_penalty = req.presence_penalty;
            r.deadline =
                std::chrono::steady_clock::now() +
                std::chrono::milliseconds(static_cast<int64_t>(svc.opt_.request_timeout_s * 1000));
            if (i == 0) {
                r.constraint = first_constraint;
            } else if (first_constraint) {
                auto c = svc.constraints_->for_request(req);
                if (!c) throw ClientError{c.error().message};
                r.constraint = *c;
            }
            const int32_t want_lp =
                req.chat ? (req.chat_logprobs ? req.top_logprobs : -1) : req.logprobs;
            auto g = group;
            const size_t k = static_cast<size_t>(i);
            const Tokenizer* t = &svc.tok_;
            if (want_lp >= 0) {
                r.logprobs = want_lp;
                r.on_logprobs = [g, k](const TokenLogprobs& lp) {
                    g->choices[k].pending_logprobs.push_back(lp);
                };
            }
            r.on_token = [g, k, t](int32_t token) {
                auto& c = g->choices[k];
                auto step = c.stop.push(t->token_to_piece(token));
                std::lock_guard lock(g->mu);
                if (!step.emit.empty() || !c.pending_logprobs.empty())
                    c.pieces.push_back({std::move(step.emit), std::move(c.pending_logprobs)});
                c.pending_logprobs.clear();
                g->cv.notify_all();
                return !step.stopped;
            };
            r.on_done = [g, k](const RequestResult& res) {
                auto& c = g->choices[k];
                std::string tail = c.stop.flush();
                std::lock_guard lock(g->mu);
                if (!tail.empty() || !c.pending_logprobs.empty())
                    c.pieces.push_back({std::move(tail), std::move(c.pending_logprobs)});
                c.pending_logprobs.clear();
                c.result = res;
                c.done = true;
                g->cv.notify_all();
            };
            auto handle = svc.sched_.submit(std::move(r));
            if (!handle) {
                cancel_all();
                ++svc.errors_;
                if (handle.error().message == "busy") {
                    write(error_response(503, "the server is busy; retry later", "server_busy",
                                         extra + "Retry-After: 1\r\n"));
                    return false;
                }
                throw ClientError{handle.error().message};
            }
            std::lock_guard lock(group->mu);
            group->choices[k].handle = *handle;
        }
        return true;
    }

    bool gone() {
        ++svc.disconnects_;
        cancel_all();
        return false;
    }

    void cancel_all() {
        std::lock_guard lock(group->mu);
        for (auto& c : group->choices)
            if (c.handle && !c.done) svc.sched_.cancel(c.handle);
    }

    // Waits for news from any choice: per choice, the pieces that arrived. False when the
    // client went away or the server stops (the requests are cancelled then).
    bool next(std::vector<std::deque<Piece>>& out, bool& all_done) {
        // The client is looked at every 100 ms whether or not text arrives, so a whole
        // answer that generates steadily still stops when its client leaves.
        const auto now = std::chrono::steady_clock::now();
        if (now - last_check >= std::chrono::milliseconds(100)) {
            last_check = now;
            if (ex.stopping() || ex.client_gone()) return gone();
        }
        std::unique_lock lock(group->mu);
        for (;;) {
            bool any = false;
            all_done = true;
            for (auto& c : group->choices) {
                any = any || !c.pieces.empty();
                all_done = all_done && c.done;
            }
            if (any || all_done) break;
            group->cv.wait_for(lock, std::chrono::milliseconds(100));
            bool news = false;
            for (auto& c : group->choices) news = news || !c.pieces.empty() || c.done;
            if (!news) {
                last_check = std::chrono::steady_clock::now();
                if (ex.stopping() || ex.client_gone()) {
                    lock.unlock();
                    return gone();
                }
            }
        }
        out.assign(group->choices.size(), {});
        for (size_t i = 0; i < group->choices.size(); ++i) out[i].swap(group->choices[i].pieces);
        return true;
    }

    json usage() const {
        int32_t completion = 0, cached = 0, computed = 0, prompt_tokens = 0;
        for (const auto& c : group->choices) {
            completion += static_cast<int32_t>(c.result.tokens.size());
            prompt_tokens = c.result.prompt_tokens;
            cached = std::max(cached, c.result.cached_tokens);
        }
        computed = prompt_tokens - cached;
        return json{{"prompt_tokens", prompt_tokens},
                    {"completion_tokens", completion},
                    {"total_tokens", prompt_tokens + completion},
                    {"prompt_tokens_details", {{"cached_tokens", cached}}},
                    {"prompt_cache_hit_tokens", cached},
                    {"prompt_cache_miss_tokens", computed}};
    }

    json chat_logprob_entries(const std::vector<TokenLogprobs>& lps) const {
        json content = json::array();
        for (const auto& lp : lps) {
            const std::string piece = svc.tok_.token_to_piece(lp.token);
            json top = json::array();
            for (const auto& [tid, l] : lp.top) {
                const std::string p = svc.tok_.token_to_piece(tid);
                top.push_back({{"token", p}, {"logprob", l}, {"bytes", bytes_of(p)}});
            }
            content.push_back({{"token", piece},
                               {"logprob", lp.logprob},
                               {"bytes", bytes_of(piece)},
                               {"top_logprobs", top}});
        }
        return content;
    }

    // Completions' logprobs object; text_offset counts from `offset` bytes.
    json completion_logprobs(const std::vector<TokenLogprobs>& lps, size_t offset) const {
        json tokens = json::array(), values = json::array(), tops = json::array(),
             offsets = json::array();
        for (const auto& lp : lps) {
            const std::string piece = svc.tok_.token_to_piece(lp.token);
            tokens.push_back(piece);
            values.push_back(lp.logprob);
            json top = json::object();
            for (const auto& [tid, l] : lp.top) top[svc.tok_.token_to_piece(tid)] = l;
            tops.push_back(top);
            offsets.push_back(offset);
            offset += piece.size();
        }
        return json{{"tokens", tokens},
                    {"token_logprobs", values},
                    {"top_logprobs", tops},
                    {"text_offset", offsets}};
    }

    bool with_tools() const { return req.chat && !req.tools.empty(); }

    json tool_call_json(const ToolCallText& t, int index, bool streamed) const {
        json j = {{"id", t.id},
                  {"type", "function"},
                  {"function", {{"name", t.name}, {"arguments", t.arguments}}}};
        if (streamed) j["index"] = index;
        return j;
    }

    void answer_whole() {
        std::vector<std::string> texts(group->choices.size());
        std::vector<std::vector<TokenLogprobs>> lps(group->choices.size());
        bool done = false;
        while (!done) {
            std::vector<std::deque<Piece>> news;
            if (!next(news, done)) return;
            for (size_t i = 0; i < news.size(); ++i)
                for (auto& p : news[i]) {
                    texts[i] += p.text;
                    lps[i].insert(lps[i].end(), p.logprobs.begin(), p.logprobs.end());
                }
        }
        json choices = json::array();
        for (size_t i = 0; i < group->choices.size(); ++i) {
            const RequestResult& res = group->choices[i].result;
            if (res.finish_reason == "error") {
                ++svc.errors_;
                write(error_response(500, res.error, "server_error", extra));
                return;
            }
            json choice = {{"index", i}, {"finish_reason", finish_reason_of(res)}};
            if (req.chat) {
                json message = {{"role", "assistant"}};
                if (with_tools()) {
                    ToolCallStream split;
                    auto a = split.push(texts[i]);
                    auto b = split.finish();
                    message["content"] = a.content + b.content;
                    a.calls.insert(a.calls.end(), b.calls.begin(), b.calls.end());
                    if (!a.calls.empty()) {
                        json calls = json::array();
                        for (const auto& t : a.calls) calls.push_back(tool_call_json(t, 0, false));
                        message["tool_calls"] = calls;
                        if (message["content"] == "") message["content"] = nullptr;
                        choice["finish_reason"] = "tool_calls";
                    }
                } else {
                    message["content"] = texts[i];
                }
                choice["message"] = message;
                choice["logprobs"] = req.chat_logprobs
                                         ? json{{"content", chat_logprob_entries(lps[i])}}
                                         : json(nullptr);
            } else {
                choice["text"] = (req.echo ? prompt_text : "") + texts[i];
                choice["logprobs"] =
                    req.logprobs >= 0
                        ? completion_logprobs(lps[i], req.echo ? prompt_text.size() : 0)
                        : json(nullptr);
            }
            choices.push_back(choice);
        }
        json j = {
            {"id", id},           {"object", req.chat ? "chat.completion" : "text_completion"},
            {"created", created}, {"model", svc.opt_.model_name},
            {"choices", choices}, {"usage", usage()}};
        if (req.chat) j["system_fingerprint"] = "latent-" LATENT_VERSION;
        write(http_response(200, dump(j), "application/json", extra));
    }

    json chunk(json choice_fields, size_t index, const json& reason) const {
        choice_fields["index"] = index;
        choice_fields["finish_reason"] = reason;
        return json{{"id", id},
                    {"object", req.chat ? "chat.completion.chunk" : "text_completion"},
                    {"created", created},
                    {"model", svc.opt_.model_name},
                    {"choices", json::array({choice_fields})}};
    }

    void answer_stream() {
        std::string head = sse_head(extra);
        const size_t n = group->choices.size();
        std::vector<ToolCallStream> splits(n);
        std::vector<int> calls_sent(n, 0);
        std::vector<size_t> text_offset(n, 0);
        for (size_t i = 0; i < n; ++i) {
            if (req.chat) {
                head += sse_event(chunk(
                    {{"delta", {{"role", "assistant"}, {"content", ""}}}, {"logprobs", nullptr}}, i,
                    nullptr));
            } else if (req.echo && !prompt_text.empty()) {
                head +=
                    sse_event(chunk({{"text", prompt_text}, {"logprobs", nullptr}}, i, nullptr));
                text_offset[i] = prompt_text.size();
            }
        }
        if (!write(head)) return cancel_all();
        // Text (or tool calls) of one choice as events.
        auto events_for = [&](size_t i, const std::string& text,
                              const std::vector<TokenLogprobs>& lps, bool final) {
            std::string out;
            if (req.chat) {
                std::string content = text;
                std::vector<ToolCallText> calls;
                if (with_tools()) {
                    auto u = splits[i].push(text);
                    content = u.content;
                    calls = u.calls;
                    if (final) {
                        auto f = splits[i].finish();
                        content += f.content;
                        calls.insert(calls.end(), f.calls.begin(), f.calls.end());
                    }
                }
                if (!content.empty() || !lps.empty()) {
                    json fields = {{"delta", {{"content", content}}}};
                    fields["logprobs"] = req.chat_logprobs
                                             ? json{{"content", chat_logprob_entries(lps)}}
                                             : json(nullptr);
                    out += sse_event(chunk(fields, i, nullptr));
                }
                for (const auto& t : calls)
                    out += sse_event(chunk({{"delta",
                                             {{"tool_calls", json::array({tool_call_json(
                                                                 t, calls_sent[i]++, true)})}}},
                                            {"logprobs", nullptr}},
                                           i, nullptr));
            } else if (!text.empty() || !lps.empty()) {
                json fields = {{"text", text}};
                fields["logprobs"] =
                    req.logprobs >= 0 ? completion_logprobs(lps, text_offset[i]) : json(nullptr);
                text_offset[i] += text.size();
                out += sse_event(chunk(fields, i, nullptr));
            }
            return out;
        };
        std::vector<bool> finished(n, false);
        bool done = false;
        while (!done) {
            std::vector<std::deque<Piece>> news;
            if (!next(news, done)) return;
            std::string out;
            for (size_t i = 0; i < n; ++i) {
                std::string text;
                std::vector<TokenLogprobs> lps;
                for (auto& p : news[i]) {
                    text += p.text;
                    lps.insert(lps.end(), p.logprobs.begin(), p.logprobs.end());
                }
                bool choice_done;
                {
                    std::lock_guard lock(group->mu);
                    choice_done = group->choices[i].done && group->choices[i].pieces.empty();
                }
                const bool final = choice_done && !finished[i];
                out += events_for(i, text, lps, final);
                if (final) {
                    finished[i] = true;
                    const RequestResult& res = group->choices[i].result;
                    if (res.finish_reason == "error") {
                        out += sse_event(
                            json{{"error", {{"message", res.error}, {"type", "server_error"}}}});
                        continue;
                    }
                    json reason =
                        calls_sent[i] > 0 ? json("tool_calls") : json(finish_reason_of(res));
                    json fields = req.chat ? json{{"delta", json::object()}, {"logprobs", nullptr}}
                                           : json{{"text", ""}, {"logprobs", nullptr}};
                    json last = chunk(fields, i, reason);
                    // Latent's own: usage on the last chunk of the last choice, always.
                    if (i + 1 == n) last["usage"] = usage();
                    out += sse_event(last);
                }
            }
            if (!out.empty() && !write(out)) {
                ++svc.disconnects_;
                return cancel_all();  // the client went away: stop computing for it
            }
        }
        std::string tail;
        if (req.include_usage) {
            json u = {{"id", id},
                      {"object", req.chat ? "chat.completion.chunk" : "text_completion"},
                      {"created", created},
                      {"model", svc.opt_.model_name},
                      {"choices", json::array()},
                      {"usage", usage()}};
            tail += sse_event(u);
        }
        write(tail + sse_done());
    }

    void run() {
        const HttpRequest& http = ex.request();
        auto body = parse_json_body(http.body);
        if (!body) throw ClientError{body.error().message};
        const bool chat = http.path.ends_with("/chat/completions");
        auto parsed = chat ? parse_chat_request(*body) : parse_completion_request(*body);
        if (!parsed) throw ClientError{parsed.error().message};
        req = std::move(*parsed);
        if (!req.chat && req.echo && req.logprobs >= 0)
            throw ClientError{
                "'echo' with 'logprobs' is not supported (prompt tokens have no "
                "logprobs here)"};
        build_prompt();
        std::shared_ptr<TokenConstraint> constraint;
        if (req.chat) {
            auto c = svc.constraints_->for_request(req);
            if (!c) throw ClientError{c.error().message};
            constraint = *c;
        }
        id = (req.chat ? "chatcmpl-" : "cmpl-") + std::to_string(svc.next_id_++);
        if (!submit(constraint)) return;
        if (req.stream)
            answer_stream();
        else
            answer_whole();
    }
};

void OpenAiService::handle(Exchange& ex, const std::string& extra) {
    Run run{*this, ex, extra, {}};
    try {
        run.run();
    } catch (const ClientError& e) {
        ++errors_;
        run.cancel_all();
        ex.write(error_response(e.status, e.message, "invalid_request_error", extra));
    } catch (const std::exception& e) {
        ++errors_;
        run.cancel_all();
        ex.write(error_response(500, e.what(), "server_error", extra));
    }
}

std::string OpenAiService::metrics() const {
    const auto s = sched_.stats();
    const TransportStats t = transport_stats_ ? transport_stats_() : TransportStats{};
    std::string out;
    auto metric = [&](const char* name, const char* type, const char* help, double v) {
        char value[64];
        std::snprintf(value, sizeof(value), "%.17g", v);  // counters print as integers
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
               name + " " + value + "\n";
    };
    metric("latent_http_requests_total", "counter", "HTTP requests read", double(t.requests));
    metric("latent_http_errors_total", "counter", "HTTP requests answered with an error",
           double(t.refused + t.busy + errors_.load()));
    metric("latent_http_rejected_connections_total", "counter",
           "requests answered 503 (too many being handled)", double(t.busy));
    metric("latent_http_dropped_slow_total", "counter",
           "connections dropped while still reading, to make room for newer ones",
           double(t.dropped_slow));
    metric("latent_http_read_timeouts_total", "counter",
           "connections that did not send their request in time", double(t.read_timeouts));
    metric("latent_http_client_disconnects_total", "counter",
           "requests whose client went away before the answer was complete",
           double(disconnects_.load()));
    metric("latent_http_open_connections", "gauge", "requests being handled", double(t.active));
    metric("latent_http_reading_connections", "gauge", "connections reading their request",
           double(t.reading));
    metric("latent_requests_total", "counter", "generation requests accepted", double(s.requests));
    metric("latent_requests_busy_total", "counter", "requests refused: queue full",
           double(s.rejected_busy));
    metric("latent_requests_cancelled_total", "counter", "requests cancelled", double(s.cancelled));
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
    metric("latent_step_seconds_total", "counter", "time spent in scheduler steps", s.step_seconds);
    metric("latent_step_sequences_total", "counter",
           "sequences run in scheduler steps (divided by steps: the mean batch)",
           double(s.batched_sequences));
    metric("latent_prefix_cache_bytes", "gauge", "bytes of cached prefix pages in RAM",
           double(s.prefix.bytes));
    metric("latent_cache_pages_in_use", "gauge", "latent cache pages held by sequences or prefixes",
           double(s.cache_pages_in_use));
    metric("latent_cache_pool_bytes", "gauge",
           "latent cache memory allocated (pages in use and free pages kept for reuse)",
           double(s.cache_pool_bytes));
    metric("latent_prefix_cache_evictions_total", "counter", "prefix pages evicted from RAM",
           double(s.prefix.evictions));
    metric("latent_prefix_cache_disk_loads_total", "counter", "prefix pages read from disk",
           double(s.prefix.disk_loads));
    metric("latent_prefix_cache_device_pages", "gauge", "cache pages held in device memory",
           double(s.device.pages));
    metric("latent_prefix_cache_device_hits_total", "counter",
           "cache page ranges a sequence got from device memory", double(s.device.hits));
    metric("latent_prefix_cache_device_uploads_total", "counter",
           "cache page ranges a sequence got from host memory instead", double(s.device.uploads));
    return out;
}

}  // namespace latent::serve
