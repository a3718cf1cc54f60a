// RemoteGenerator (see remote_backend.h). Every network operation is asynchronous under the
// hood so that one deadline and the caller's cancellation apply to all of them; the
// public calls block until the answer is complete.
#include "agent/remote_generator.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <map>
#include <thread>

namespace latent::agent {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using engine::Expected;
using engine::make_error;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {
// An answer larger than this is not a completion: stop reading (a misbehaving server
// must not fill our memory).
constexpr size_t kMaxResponseBytes = 16u << 20;
constexpr size_t kMaxSseLine = 1u << 20;
// Tool calls kept from one answer; a server sending more is not answering a person.
constexpr size_t kMaxToolCalls = 64;

struct NetError {
    bool connect_failure = false;  // nothing was sent: safe to retry
    std::string message;
};
}  // namespace

struct RemoteGenerator::Tls {
    asio::ssl::context ctx{asio::ssl::context::tls_client};
};

std::string http_error_message(int status, const std::string& body) {
    std::string detail = body.substr(0, 300);
    try {
        const json j = json::parse(body);
        if (j.contains("error")) {
            const json& e = j["error"];
            detail = e.is_object() ? e.value("message", e.dump()) : e.dump();
        }
    } catch (const std::exception&) {
    }
    std::string m;
    if (status == 401 || status == 403)
        m = "the remote server refused the API key (HTTP " + std::to_string(status) +
            "): check latent.remote.apiKey";
    else if (status == 404)
        m = "the remote server has no such endpoint or model (HTTP 404): check latent.remote.url "
            "and latent.remote.model";
    else if (status == 429)
        m = "the remote server is rate-limiting requests (HTTP 429): try again later";
    else if (status >= 500)
        m = "the remote server failed (HTTP " + std::to_string(status) + ")";
    else
        m = "the remote server answered HTTP " + std::to_string(status);
    if (!detail.empty()) m += ": " + detail;
    return m;
}

Expected<RemoteGenerator::Url> RemoteGenerator::parse_url(const std::string& url) {
    Url u;
    std::string rest;
    if (url.rfind("https://", 0) == 0) {
        u.tls = true;
        rest = url.substr(8);
    } else if (url.rfind("http://", 0) == 0) {
        rest = url.substr(7);
    } else {
        return make_error("remote URL must start with http:// or https://: " + url);
    }
    const size_t slash = rest.find('/');
    std::string hostport = rest.substr(0, slash);
    u.base = slash == std::string::npos ? "" : rest.substr(slash);
    while (!u.base.empty() && u.base.back() == '/') u.base.pop_back();
    if (u.base.empty()) u.base = "/v1";
    if (hostport.find('@') != std::string::npos)
        return make_error("remote URL must not hold credentials (use the apiKey setting)");
    size_t colon = hostport.rfind(':');
    if (!hostport.empty() && hostport[0] == '[') {  // [::1]:8000
        const size_t close = hostport.find(']');
        if (close == std::string::npos) return make_error("bad IPv6 host in URL: " + url);
        u.host = hostport.substr(1, close - 1);
        colon = hostport.find(':', close);
    } else {
        u.host = hostport.substr(0, colon);
    }
    u.port = colon == std::string::npos ? (u.tls ? "443" : "80") : hostport.substr(colon + 1);
    if (u.host.empty() || u.port.empty() ||
        u.port.find_first_not_of("0123456789") != std::string::npos)
        return make_error("bad host or port in remote URL: " + url);
    return u;
}

Expected<std::unique_ptr<RemoteGenerator>> RemoteGenerator::create(RemoteOptions options) {
    auto u = parse_url(options.url);
    if (!u) return u.error();
    return std::unique_ptr<RemoteGenerator>(new RemoteGenerator(std::move(options), *u));
}

RemoteGenerator::RemoteGenerator(RemoteOptions options, Url url)
    : options_(std::move(options)), url_(std::move(url)) {
    if (url_.tls) {
        tls_ = std::make_unique<Tls>();
        tls_->ctx.set_default_verify_paths();
        tls_->ctx.set_verify_mode(asio::ssl::verify_peer);
    }
}

RemoteGenerator::~RemoteGenerator() = default;

std::string RemoteGenerator::describe() const {
    return "remote " + std::string(url_.tls ? "https://" : "http://") + url_.host + ":" +
           url_.port + url_.base + (options_.model.empty() ? "" : " (" + options_.model + ")");
}

json RemoteGenerator::stats() const { return {{"remote", describe()}}; }

namespace {

// Runs the io_context until `done`, the deadline, or cancellation; on the last two the
// stream is closed (which completes the pending operation with an error).
template <class Close>
bool wait(asio::io_context& ioc, bool& done, Clock::time_point deadline,
          const std::function<bool()>& cancelled, Close close, bool* timed_out) {
    ioc.restart();
    bool stopped = false;
    while (!done) {
        ioc.run_for(std::chrono::milliseconds(20));
        if (done) break;
        if (!stopped && (Clock::now() > deadline || (cancelled && cancelled()))) {
            if (Clock::now() > deadline && timed_out) *timed_out = true;
            close();
            stopped = true;
        }
        if (ioc.stopped()) ioc.restart();
    }
    return !stopped;
}

template <class Stream>
std::optional<NetError> exchange(asio::io_context& ioc, Stream& stream, tcp::socket& socket,
                                 const http::request<http::string_body>& req,
                                 Clock::time_point deadline, const std::function<bool()>& cancelled,
                                 int& status, std::string& error_body,
                                 const std::function<void(const char*, size_t)>& on_body) {
    bool timed_out = false;
    auto close = [&] {
        beast::error_code ig;
        socket.cancel(ig);
        socket.close(ig);
    };
    beast::error_code ec;
    bool done = false;
    http::async_write(stream, req, [&](beast::error_code e, size_t) {
        ec = e;
        done = true;
    });
    wait(ioc, done, deadline, cancelled, close, &timed_out);
    if (ec) return NetError{false, timed_out ? "timed out sending the request" : ec.message()};
    beast::flat_buffer buf;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(kMaxResponseBytes);
    done = false;
    http::async_read_header(stream, buf, parser, [&](beast::error_code e, size_t) {
        ec = e;
        done = true;
    });
    wait(ioc, done, deadline, cancelled, close, &timed_out);
    if (ec) return NetError{false, timed_out ? "timed out waiting for the server" : ec.message()};
    status = static_cast<int>(parser.get().result_int());
    char chunk[8192];
    size_t total = 0;
    while (!parser.is_done()) {
        parser.get().body().data = chunk;
        parser.get().body().size = sizeof chunk;
        done = false;
        http::async_read_some(stream, buf, parser, [&](beast::error_code e, size_t) {
            ec = e;
            done = true;
        });
        wait(ioc, done, deadline, cancelled, close, &timed_out);
        if (ec == http::error::need_buffer) ec = {};
        const size_t n = sizeof chunk - parser.get().body().size;
        total += n;
        if (status >= 200 && status < 300)
            on_body(chunk, n);
        else if (error_body.size() < 4096)
            error_body.append(chunk, std::min<size_t>(n, 4096 - error_body.size()));
        if (ec) {
            if (ec == http::error::end_of_stream || ec == asio::error::eof) break;
            return NetError{false, timed_out ? "timed out reading the answer" : ec.message()};
        }
        if (total > kMaxResponseBytes) return NetError{false, "the answer is too large"};
        if (cancelled && cancelled()) break;
    }
    return std::nullopt;
}

}  // namespace

engine::Status RemoteGenerator::post(const std::string& path, const std::string& body,
                                     const GenerateOptions& options,
                                     const std::function<void(const std::string&)>& on_event) {
    http::request<http::string_body> req{http::verb::post, path, 11};
    req.set(http::field::host, url_.host);
    req.set(http::field::user_agent, "latent/" LATENT_VERSION);
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "text/event-stream, application/json");
    if (!options_.api_key.empty())
        req.set(http::field::authorization, "Bearer " + options_.api_key);
    req.body() = body;
    req.prepare_payload();

    // SSE: "data: <payload>" lines; events end at a blank line.
    std::string line;
    bool sse_seen = false;
    std::string whole;
    auto on_body = [&](const char* p, size_t n) {
        whole.append(p, std::min(n, kMaxResponseBytes - std::min(whole.size(), kMaxResponseBytes)));
        for (size_t i = 0; i < n; ++i) {
            if (p[i] == '\n') {
                if (!line.empty() && line.back() == '\r') line.pop_back();
                if (line.rfind("data:", 0) == 0) {
                    sse_seen = true;
                    std::string data = line.substr(5);
                    if (!data.empty() && data[0] == ' ') data.erase(0, 1);
                    if (data != "[DONE]") on_event(data);
                }
                line.clear();
            } else if (line.size() < kMaxSseLine) {
                line += p[i];
            }
        }
    };

    const auto deadline = Clock::now() + std::chrono::milliseconds(options_.request_timeout_ms);
    std::string last_error;
    for (int attempt = 0; attempt <= options_.retries; ++attempt) {
        if (attempt > 0) {
            const int ms = options_.backoff_ms << (attempt - 1);
            if (options_.log)
                options_.log("warning: remote: " + last_error + "; retrying in " +
                             std::to_string(ms) + " ms");
            const auto until = Clock::now() + std::chrono::milliseconds(ms);
            while (Clock::now() < until) {
                if (options.cancelled && options.cancelled()) return engine::Status();
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
        }
        asio::io_context ioc;
        tcp::resolver resolver(ioc);
        beast::error_code ec;
        const auto endpoints = resolver.resolve(url_.host, url_.port, ec);
        if (ec) {
            last_error = "cannot resolve " + url_.host + ": " + ec.message();
            continue;
        }
        const auto connect_deadline = std::min(
            deadline, Clock::now() + std::chrono::milliseconds(options_.connect_timeout_ms));
        tcp::socket socket(ioc);
        bool done = false, timed_out = false;
        auto close = [&] {
            beast::error_code ig;
            socket.close(ig);
        };
        asio::async_connect(socket, endpoints, [&](beast::error_code e, const tcp::endpoint&) {
            ec = e;
            done = true;
        });
        wait(ioc, done, connect_deadline, options.cancelled, close, &timed_out);
        if (options.cancelled && options.cancelled()) return engine::Status();
        if (ec) {
            last_error = "cannot connect to " + url_.host + ":" + url_.port + ": " +
                         (timed_out ? std::string("timed out") : ec.message());
            continue;
        }
        int status = 0;
        std::string error_body;
        std::optional<NetError> err;
        if (url_.tls) {
            asio::ssl::stream<tcp::socket&> tls(socket, tls_->ctx);
            if (!SSL_set_tlsext_host_name(tls.native_handle(), url_.host.c_str()))
                return make_error("TLS: cannot set the server name");
            tls.set_verify_callback(asio::ssl::host_name_verification(url_.host));
            done = false;
            tls.async_handshake(asio::ssl::stream_base::client, [&](beast::error_code e) {
                ec = e;
                done = true;
            });
            wait(ioc, done, connect_deadline, options.cancelled, close, &timed_out);
            if (ec) {
                last_error = "TLS handshake with " + url_.host + " failed: " + ec.message();
                continue;
            }
            err = exchange(ioc, tls, socket, req, deadline, options.cancelled, status, error_body,
                           on_body);
        } else {
            err = exchange(ioc, socket, socket, req, deadline, options.cancelled, status,
                           error_body, on_body);
        }
        if (options.cancelled && options.cancelled()) return engine::Status();
        if (err) return make_error("remote " + url_.host + ": " + err->message);
        if (status < 200 || status >= 300)
            return make_error(http_error_message(status, error_body));
        if (!sse_seen && !whole.empty()) on_event(whole);  // a non-streamed answer
        return engine::Status();
    }
    return make_error("remote: " + last_error);
}

Expected<GenerateResult> RemoteGenerator::stream(const std::string& path, json body,
                                                 const GenerateOptions& options, bool chat) {
    GenerateResult r;
    std::string bad;
    const auto t0 = Clock::now();
    // Each event with text or a piece of a tool call stands for about one token.
    auto got_token = [&] {
        if (r.generated_tokens == 0)
            r.first_token_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        ++r.generated_tokens;
    };
    auto got_text = [&](const std::string& piece) {
        got_token();
        r.text += piece;
        if (options.on_text) options.on_text(piece);
        if (options.enough && !r.ended_early && options.enough(r.text)) r.ended_early = true;
    };
    // Tool calls by index. Streamed (OpenAI's shape), each arrives in pieces carrying its
    // index: the first with its id and the start of the name, the next ones more of the
    // name and the arguments, to be concatenated; the pieces of parallel calls may
    // interleave. A whole answer lists each call once (its position is its index).
    std::map<int64_t, ToolCall> calls;
    auto got_tool_calls = [&](const json& tcs, bool whole) {
        if (!tcs.is_array()) return;
        for (size_t i = 0; i < tcs.size(); ++i) {
            const json& tc = tcs[i];
            if (!tc.is_object()) continue;
            const std::string id = tc.contains("id") && tc["id"].is_string()
                                       ? tc["id"].get<std::string>()
                                       : std::string();
            int64_t index;
            if (tc.contains("index") && tc["index"].is_number_integer()) {
                index = tc["index"].get<int64_t>();
            } else if (whole) {
                index = static_cast<int64_t>(i);
            } else {
                // No index (some servers): a piece with a new id starts a call, one without
                // continues the last.
                const bool new_call =
                    calls.empty() || (!id.empty() && calls.rbegin()->second.id != id);
                index = new_call ? (calls.empty() ? 0 : calls.rbegin()->first + 1)
                                 : calls.rbegin()->first;
            }
            if (!calls.count(index) && calls.size() >= kMaxToolCalls) continue;
            got_token();
            ToolCall& call = calls[index];
            if (!id.empty()) call.id = id;
            const json f = tc.value("function", json::object());
            if (!f.is_object()) continue;
            if (f.contains("name") && f["name"].is_string())
                call.name += f["name"].get<std::string>();
            if (f.contains("arguments")) {
                const json& a = f["arguments"];
                // A string of JSON text (OpenAI); some servers send the object itself.
                if (a.is_string())
                    call.arguments += a.get<std::string>();
                else if (!a.is_null())
                    call.arguments += a.dump();
            }
        }
    };
    auto on_event = [&](const std::string& data) {
        if (r.ended_early) return;  // the rest of the stream is not wanted
        json j;
        try {
            j = json::parse(data);
        } catch (const std::exception&) {
            bad = "the remote server sent something that is not JSON";
            return;
        }
        if (j.contains("usage") && j["usage"].is_object()) {
            const json& u = j["usage"];
            const int64_t prompt = u.value("prompt_tokens", int64_t{0});
            int64_t cached = u.value("prompt_cache_hit_tokens", int64_t{0});  // DeepSeek
            if (u.contains("prompt_tokens_details") && u["prompt_tokens_details"].is_object())
                cached = u["prompt_tokens_details"].value("cached_tokens", cached);
            r.prompt_tokens = static_cast<int32_t>(prompt);
            r.cached_tokens = static_cast<int32_t>(cached);
            r.computed_tokens = static_cast<int32_t>(std::max<int64_t>(0, prompt - cached));
        }
        if (j.contains("timings") && j["timings"].is_object()) {  // llama.cpp's own shape
            const json& t = j["timings"];
            r.cached_tokens = static_cast<int32_t>(t.value("cache_n", int64_t{0}));
            r.computed_tokens = static_cast<int32_t>(t.value("prompt_n", int64_t{0}));
            r.prompt_tokens = r.cached_tokens + r.computed_tokens;
        }
        if (!j.contains("choices") && j.contains("content") && j["content"].is_string()) {
            const std::string piece = j["content"].get<std::string>();
            if (!piece.empty()) got_text(piece);
            return;
        }
        if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) return;
        const json& c = j["choices"][0];
        std::string piece;
        if (c.contains("finish_reason") && c["finish_reason"].is_string())
            r.finish_reason = c["finish_reason"].get<std::string>();
        if (chat) {
            const bool whole = !c.contains("delta");
            const json d = whole ? c.value("message", json::object()) : c["delta"];
            if (d.is_object() && d.contains("content") && d["content"].is_string())
                piece = d["content"].get<std::string>();
            if (d.is_object() && d.contains("tool_calls")) got_tool_calls(d["tool_calls"], whole);
        } else if (c.contains("text") && c["text"].is_string()) {
            piece = c["text"].get<std::string>();
        }
        if (!piece.empty()) got_text(piece);
    };
    if (!options_.model.empty()) body["model"] = options_.model;
    body["max_tokens"] = options.max_tokens;
    body["temperature"] = options.temperature;
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    if (!options.stop.empty()) body["stop"] = options.stop;
    // Enough text: the connection is dropped as for a cancellation (the server stops).
    GenerateOptions o = options;
    o.cancelled = [&] { return r.ended_early || (options.cancelled && options.cancelled()); };
    engine::Status st =
        post(path, body.dump(-1, ' ', false, json::error_handler_t::replace), o, on_event);
    for (auto& [index, call] : calls) r.tool_calls.push_back(std::move(call));
    if (options.cancelled && options.cancelled()) {
        r.cancelled = true;
        r.ended_early = false;
        return r;
    }
    if (r.ended_early) return r;
    if (!st) return st.error();
    if (!bad.empty() && r.text.empty() && r.tool_calls.empty()) return make_error(bad);
    return r;
}

Expected<GenerateResult> RemoteGenerator::fim(const FimPrompt& prompt,
                                              const GenerateOptions& options) {
    if (options_.fim_api == "infill") {
        // The request llama.vscode sends: the prefix, the text from its end up to the
        // cursor as `prompt` (llama.vscode sends the cursor's line so far there), and the
        // suffix; llama-server puts the prompt after the prefix, before the suffix.
        json body = {{"input_prefix", prompt.context + prompt.prefix},
                     {"input_suffix", prompt.suffix},
                     {"prompt", prompt.middle},
                     {"input_extra", json::array()},
                     {"n_predict", options.max_tokens},
                     {"cache_prompt", true}};
        // /infill lives at the server's root: a base path ending in /v1 loses it.
        std::string root = url_.base;
        if (root.size() >= 3 && root.compare(root.size() - 3, 3, "/v1") == 0)
            root.resize(root.size() - 3);
        return stream(root + "/infill", std::move(body), options, false);
    }
    if (options_.fim_api == "chat") {
        const std::string ask =
            "Fill in the code at <CURSOR>. Answer with the inserted code only, no fences.\n" +
            prompt.context + prompt.prefix + prompt.middle + "<CURSOR>" + prompt.suffix;
        return chat({{"user", ask}}, options);
    }
    if (options_.fim_api == "raw") {
        // The whole FIM prompt as text; the server's tokenizer makes the markers special
        // tokens. No suffix: vLLM refuses one.
        json body = {{"prompt", options_.fim_template.render(prompt)}};
        return stream(url_.base + "/completions", std::move(body), options, false);
    }
    json body = {{"prompt", prompt.context + prompt.prefix + prompt.middle},
                 {"suffix", prompt.suffix}};
    return stream(url_.base + "/completions", std::move(body), options, false);
}

Expected<GenerateResult> RemoteGenerator::chat(const std::vector<ChatMessage>& messages,
                                               const GenerateOptions& options) {
    json ms = json::array();
    for (const auto& m : messages) {
        json j = {{"role", m.role}, {"content", m.content}};
        // OpenAI's shape for a turn that called tools and for a tool's result.
        if (!m.tool_calls.empty()) {
            j["tool_calls"] = json::array();
            for (const auto& c : m.tool_calls)
                j["tool_calls"].push_back(
                    {{"id", c.id},
                     {"type", "function"},
                     {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
            if (m.content.empty()) j["content"] = nullptr;
        }
        if (!m.tool_call_id.empty()) j["tool_call_id"] = m.tool_call_id;
        ms.push_back(std::move(j));
    }
    json body = {{"messages", ms}};
    // Passed through as given (GenerateOptions); null means absent.
    if (!options.tools.is_null()) body["tools"] = options.tools;
    if (!options.tool_choice.is_null()) body["tool_choice"] = options.tool_choice;
    if (!options.response_format.is_null()) body["response_format"] = options.response_format;
    return stream(url_.base + "/chat/completions", std::move(body), options, true);
}

}  // namespace latent::agent
