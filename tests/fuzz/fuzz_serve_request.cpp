// libFuzzer target: arbitrary bytes as one raw HTTP request to `latent serve`, down the
// path a request takes before any generation: Boost.Beast's request parser (as the
// transport reads it), the guard's header checks (two guards: the default one, and one
// with a key, extra hosts and origins), then the body through parse_json_body,
// parse_chat_request and parse_completion_request, and every typed request through
// OutputConstraints::for_request on a small vocabulary with DeepSeek-V3's tool tokens —
// whose constraint is then stepped a few tokens (mask, pick, accept) as the scheduler
// would. Bytes that do not parse as HTTP still go through the body path (whatever follows
// the first blank line, else all of them). Findings: a crash, an ASan/UBSan report, or a
// constraint that allows no token at all (the sampler would have nothing to draw).
#include <boost/beast/http.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "engine/prompt_format.h"
#include "engine/serve/api_request.h"
#include "engine/serve/output_constraint.h"
#include "engine/serve/request_guard.h"
#include "engine/tokenizer.h"
#include "tests/support/test_models.h"

using namespace latent;
using namespace latent::serve;
namespace http = boost::beast::http;

namespace {

// The test vocabulary (bytes, a few merges, BOS/EOS, FIM and chat specials) plus the tool
// tokens, so tool requests get the real ToolCallConstraint rather than the text fallback.
const engine::Tokenizer& tokenizer() {
    static const engine::Tokenizer tok = [] {
        engine::Vocab v = test::small_vocab();
        for (const char* s :
             {engine::kToolCallsBegin, engine::kToolCallsEnd, engine::kToolCallBegin,
              engine::kToolCallEnd, engine::kToolSep, engine::kToolOutputsBegin,
              engine::kToolOutputsEnd, engine::kToolOutputBegin, engine::kToolOutputEnd}) {
            v.tokens.push_back(s);
            v.types.push_back(engine::TokenType::kControl);
        }
        auto t = engine::Tokenizer::create(v);
        if (!t) std::abort();
        return std::move(*t);
    }();
    return tok;
}

OutputConstraints& constraints() {
    static OutputConstraints c(tokenizer(), {tokenizer().eos()});
    return c;
}

const RequestGuard& guard(bool strict) {
    static const RequestGuard open(GuardOptions{});
    static const RequestGuard keyed([] {
        GuardOptions o;
        o.api_key = "sk-fuzz";
        o.bound_host = "0.0.0.0";
        o.port = 8080;
        o.allowed_hosts = {"example.com", "latent.local:8080"};
        o.allowed_origins = {"http://localhost:3000", "*"};
        return o;
    }());
    return strict ? keyed : open;
}

void check_headers(const http::request_parser<http::string_body>& parser) {
    const auto& h = parser.get();
    const std::string method(h.method_string());
    const std::string target(h.target());
    const std::string path = target.substr(0, target.find('?'));
    auto view = [&](http::field f) {
        const auto v = h[f];
        return std::string_view(v.data(), v.size());
    };
    RequestHeaders rh;
    rh.method = method;
    rh.path = path;
    rh.host = view(http::field::host);
    rh.origin = view(http::field::origin);
    rh.content_type = view(http::field::content_type);
    rh.authorization = view(http::field::authorization);
    const auto length = parser.content_length();
    rh.has_body = (length && *length > 0) || parser.chunked();
    for (bool strict : {false, true}) {
        const auto refusal = guard(strict).check(rh);
        if (refusal && (refusal->status < 400 || refusal->status > 599)) std::abort();
        (void)guard(strict).cors_headers(rh.origin, method == "OPTIONS");
    }
    (void)bearer_token(rh.authorization);
}

// A few steps of the constraint, as the scheduler runs it: mask a row of logits (chosen by
// the input's hash), take the best allowed token, accept it.
void step_constraint(engine::TokenConstraint& c, const ApiRequest& r, uint32_t seed) {
    const int32_t n = tokenizer().n_vocab();
    std::vector<float> row(static_cast<size_t>(n));
    const int32_t budget = r.max_tokens.value_or(4096);
    for (int32_t step = 0; step < 24 && step < budget; ++step) {
        for (float& v : row) v = static_cast<float>((seed = seed * 1103515245u + 12345u) >> 16);
        c.mask(row.data(), n, budget - step);
        int32_t best = -1;
        for (int32_t id = 0; id < n; ++id)
            if (std::isfinite(row[static_cast<size_t>(id)]) &&
                (best < 0 || row[static_cast<size_t>(id)] > row[static_cast<size_t>(best)]))
                best = id;
        if (best < 0) std::abort();  // nothing may be sampled
        c.accept(best);
        if (tokenizer().is_eog(best)) break;
    }
}

void check_body(std::string_view body, uint32_t seed) {
    auto parsed = parse_json_body(body);
    if (!parsed) return;
    for (bool chat : {true, false}) {
        auto r = chat ? parse_chat_request(*parsed) : parse_completion_request(*parsed);
        if (!r) continue;
        auto c = constraints().for_request(*r);
        if (c && *c) step_constraint(**c, *r, seed);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    uint32_t seed = 2166136261u;  // FNV-1a of the input: the logits the constraint sees
    for (unsigned char ch : bytes) seed = (seed ^ ch) * 16777619u;

    // The transport's limits (http_transport.h), the body's lowered to keep runs fast.
    http::request_parser<http::string_body> parser;
    parser.header_limit(16 * 1024);
    parser.body_limit(1u << 20);
    parser.eager(true);
    boost::beast::error_code ec;
    size_t used = 0;
    while (used < bytes.size() && !parser.is_done()) {
        const size_t n =
            parser.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
        if (ec == http::error::need_more) ec = {};
        if (ec || n == 0) break;
        used += n;
    }
    if (!ec && parser.is_header_done()) check_headers(parser);
    if (!ec && parser.is_done()) {
        check_body(parser.get().body(), seed);
        return 0;
    }
    // Not one whole HTTP request: the bytes after the first blank line (or all of them)
    // still go down the body path.
    const size_t blank = bytes.find("\r\n\r\n");
    check_body(blank == std::string_view::npos ? bytes : bytes.substr(blank + 4), seed);
    return 0;
}
