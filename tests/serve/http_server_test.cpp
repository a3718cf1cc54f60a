// HttpServer: a real server on an ephemeral loopback port, talked to over TCP with a
// small HTTP client: routes, OpenAI-shaped answers and SSE streams, cached-token usage,
// fill-in-the-middle, limits and errors, API keys, and a client leaving mid-stream.
#include "tests/serve/serve_fixture.h"

namespace latent::serve::serve_test {
namespace {

TEST_F(ServeTest, HealthModelsAndMetrics) {
    start();
    auto r = http_exchange(port, get_request("/health"));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(json::parse(r.body)["status"], "ok");
    r = http_exchange(port, get_request("/v1/models"));
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(json::parse(r.body)["data"][0]["id"], "tiny");
    r = http_exchange(port, get_request("/metrics"));
    EXPECT_EQ(r.status, 200);
    EXPECT_NE(r.body.find("latent_queue_depth 0"), std::string::npos);
    EXPECT_NE(r.body.find("# TYPE latent_prompt_cached_tokens_total counter"), std::string::npos);
    EXPECT_NE(r.body.find("# TYPE latent_cache_pool_bytes gauge"), std::string::npos);
}

TEST_F(ServeTest, ARepeatedPromptReportsCachedTokens) {
    start();
    const json req = {
        {"prompt", "def fib(n): return n if n < 2 else"}, {"max_tokens", 4}, {"temperature", 0}};
    auto first = post("/v1/completions", req);
    ASSERT_EQ(first.status, 200) << first.body;
    const json a = json::parse(first.body);
    EXPECT_EQ(a["object"], "text_completion");
    EXPECT_EQ(a["usage"]["completion_tokens"], 4);
    EXPECT_EQ(a["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    const int prompt_tokens = a["usage"]["prompt_tokens"];
    EXPECT_EQ(a["usage"]["prompt_cache_miss_tokens"], prompt_tokens);

    auto second = post("/v1/completions", req);
    ASSERT_EQ(second.status, 200);
    const json b = json::parse(second.body);
    EXPECT_EQ(b["choices"][0]["text"], a["choices"][0]["text"]);
    EXPECT_EQ(b["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(b["usage"]["prompt_tokens_details"]["cached_tokens"], prompt_tokens - 1);
    EXPECT_EQ(b["usage"]["prompt_cache_hit_tokens"], prompt_tokens - 1);
    EXPECT_EQ(b["usage"]["prompt_cache_miss_tokens"], 1);
    // The engine ran the first prompt whole and one row of the second.
    auto m = http_exchange(port, get_request("/metrics"));
    EXPECT_NE(m.body.find("latent_prompt_prefilled_tokens_total " +
                          std::to_string(prompt_tokens + 1) + "\n"),
              std::string::npos)
        << m.body;
    EXPECT_NE(m.body.find("latent_prefix_cache_device_pages 0\n"), std::string::npos);
}

TEST_F(ServeTest, StreamingGivesTheSameTextAsOneAnswer) {
    start();
    json req = {{"prompt", "int main() {"}, {"max_tokens", 6}, {"temperature", 0}};
    const json whole = json::parse(post("/v1/completions", req).body);
    req["stream"] = true;
    auto r = post("/v1/completions", req);
    ASSERT_EQ(r.status, 200);
    EXPECT_NE(r.headers.find("content-type: text/event-stream"), std::string::npos);
    bool done = false;
    const auto ev = events(r.body, &done);
    EXPECT_TRUE(done);
    ASSERT_GE(ev.size(), 2u);
    std::string text;
    for (const auto& e : ev) text += e["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(text, whole["choices"][0]["text"]);
    EXPECT_EQ(ev.back()["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(ev.back()["usage"]["completion_tokens"], 6);
}

TEST_F(ServeTest, ChatStreamsDeltas) {
    start();
    const json req = {{"messages",
                       {{{"role", "system"}, {"content", "Be brief."}},
                        {{"role", "user"}, {"content", "Hello"}}}},
                      {"max_tokens", 5},
                      {"temperature", 0},
                      {"stream", true}};
    auto r = post("/v1/chat/completions", req);
    ASSERT_EQ(r.status, 200) << r.body;
    bool done = false;
    const auto ev = events(r.body, &done);
    EXPECT_TRUE(done);
    ASSERT_GE(ev.size(), 2u);
    EXPECT_EQ(ev.front()["object"], "chat.completion.chunk");
    EXPECT_EQ(ev.front()["choices"][0]["delta"]["role"], "assistant");
    EXPECT_FALSE(ev.back()["choices"][0]["finish_reason"].is_null());

    json plain = req;
    plain["stream"] = false;
    auto p = post("/v1/chat/completions", plain);
    ASSERT_EQ(p.status, 200);
    const json j = json::parse(p.body);
    EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
    std::string streamed;
    for (const auto& e : ev)
        if (e["choices"][0]["delta"].contains("content"))
            streamed += e["choices"][0]["delta"]["content"].get<std::string>();
    EXPECT_EQ(streamed, j["choices"][0]["message"]["content"]);
    EXPECT_GT(j["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 0);
}

TEST_F(ServeTest, SuffixMakesAFillInTheMiddlePrompt) {
    start();
    const json req = {{"prompt", "ab"}, {"suffix", "cd"}, {"max_tokens", 2}, {"temperature", 0}};
    auto r = post("/v1/completions", req);
    ASSERT_EQ(r.status, 200) << r.body;
    // BOS, fim begin, "a" "b", fim hole, "c" "d", fim end.
    EXPECT_EQ(json::parse(r.body)["usage"]["prompt_tokens"], 8);
}

TEST_F(ServeTest, BadRequestsAreAnsweredNotFatal) {
    HttpServer::Options o;
    o.max_body_bytes = 1024;
    start(o);
    EXPECT_EQ(http_exchange(port, post_request("/v1/completions", "{not json")).status, 400);
    EXPECT_EQ(post("/v1/completions", json{{"max_tokens", 2}}).status, 400);
    EXPECT_EQ(post("/v1/completions", json{{"prompt", "x"}, {"temperature", -1}}).status, 400);
    EXPECT_EQ(post("/v1/completions", json{{"prompt", 5}}).status, 400);
    EXPECT_EQ(post("/v1/chat/completions", json{{"messages", "hi"}}).status, 400);
    EXPECT_EQ(post("/v1/completions", json{{"prompt", "x"}, {"max_tokens", 0}}).status, 400);
    EXPECT_EQ(http_exchange(port, get_request("/v1/nothing")).status, 404);
    EXPECT_EQ(http_exchange(port, get_request("/v1/completions")).status, 405);
    const auto big = post("/v1/completions", json{{"prompt", std::string(4096, 'x')}});
    EXPECT_EQ(big.status, 413);
    EXPECT_EQ(http_exchange(port, "NONSENSE\r\n\r\n").status, 400);
    // Still serving.
    EXPECT_EQ(http_exchange(port, get_request("/health")).status, 200);
}

TEST_F(ServeTest, AnApiKeyIsRequiredWhenSet) {
    HttpServer::Options o;
    o.api_key = "sekrit";
    start(o);
    EXPECT_EQ(http_exchange(port, get_request("/v1/models")).status, 401);
    EXPECT_EQ(
        http_exchange(port, get_request("/v1/models", "Authorization: Bearer nope\r\n")).status,
        401);
    EXPECT_EQ(
        http_exchange(port, get_request("/v1/models", "Authorization: Bearer sekrit\r\n")).status,
        200);
    EXPECT_EQ(http_exchange(port, get_request("/health")).status, 200);
}

TEST_F(ServeTest, AClientLeavingMidStreamCancelsItsRequest) {
    start();
    const int fd = connect_to(port);
    ASSERT_GE(fd, 0);
    const json req = {
        {"prompt", "x"}, {"max_tokens", 100000}, {"temperature", 0}, {"stream", true}};
    send_all(fd, post_request("/v1/completions", req.dump()));
    std::string got;
    char buf[1024];
    while (std::count(got.begin(), got.end(), '\n') < 12) {  // a few events in
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        ASSERT_GT(n, 0);
        got.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    // The server notices at its next write and cancels; wait for it (not a timing test:
    // the bound only keeps a broken build from hanging).
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (scheduler->stats().cancelled == 0 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(scheduler->stats().cancelled, 1u);
    scheduler->wait_idle();
    EXPECT_LT(scheduler->stats().generated_tokens, 100000u);
}

}  // namespace
}  // namespace latent::serve::serve_test
