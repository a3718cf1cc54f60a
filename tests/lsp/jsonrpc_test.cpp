// The JSON-RPC Endpoint: error codes, ids, notifications, the initialize gate,
// cancellation, server->client requests, progress, ordering and the writer under a pool.
#include "lsp/jsonrpc.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace latent::lsp {
namespace {

// Collects what the endpoint writes, one parsed JSON value per message.
struct Output {
    std::mutex mutex;
    std::vector<json> messages;

    Endpoint::Sink sink() {
        return [this](const std::string& body) {
            std::lock_guard<std::mutex> lock(mutex);
            messages.push_back(json::parse(body));
        };
    }
    std::vector<json> take() {
        std::lock_guard<std::mutex> lock(mutex);
        return std::exchange(messages, {});
    }
};

Endpoint::Options inline_options() {
    Endpoint::Options o;
    o.worker_threads = 0;
    o.require_initialize = false;
    return o;
}

json request(const json& id, const std::string& method, const json& params = json::object()) {
    return json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}};
}
json notification(const std::string& method, const json& params = json::object()) {
    return json{{"jsonrpc", "2.0"}, {"method", method}, {"params", params}};
}

int error_code_of(const json& m) { return m.at("error").at("code").get<int>(); }

class EndpointTest : public ::testing::Test {
protected:
    EndpointTest() : ep(out.sink(), inline_options()) {
        ep.on_request("echo",
                      [](const json& params, RequestContext&) -> Result<json> { return params; });
        ep.on_request<Position, Position>(
            "next_line", [](const Position& p, RequestContext&) -> Result<Position> {
                return Position{p.line + 1, 0};
            });
        ep.on_notification("note", [this](const json& params) { notes.push_back(params); });
    }
    json one_reply(const std::string& body) {
        ep.receive(body);
        auto m = out.take();
        EXPECT_EQ(m.size(), 1u) << body;
        return m.empty() ? json() : m[0];
    }

    Output out;
    std::vector<json> notes;
    Endpoint ep;
};

TEST_F(EndpointTest, RequestGetsResultWithItsId) {
    json r = one_reply(request(7, "echo", {{"x", 1}}).dump());
    EXPECT_EQ(r, (json{{"jsonrpc", "2.0"}, {"id", 7}, {"result", {{"x", 1}}}}));
}

TEST_F(EndpointTest, IdTypesArePreserved) {
    EXPECT_EQ(one_reply(request("abc", "echo").dump()).at("id"), json("abc"));
    EXPECT_EQ(one_reply(request(0, "echo").dump()).at("id"), json(0));
    EXPECT_EQ(one_reply(request(-3, "echo").dump()).at("id"), json(-3));
    const int64_t big = int64_t{1} << 40;
    json r = one_reply(request(big, "echo").dump());
    EXPECT_TRUE(r.at("id").is_number_integer());
    EXPECT_EQ(r.at("id").get<int64_t>(), big);
    // "1" and 1 are different ids: the string stays a string.
    EXPECT_TRUE(one_reply(request("1", "echo").dump()).at("id").is_string());
}

TEST_F(EndpointTest, ParseError) {
    json r = one_reply("{\"jsonrpc\": \"2.0\", \"id\": 1,");
    EXPECT_EQ(error_code_of(r), error_code::kParseError);
    EXPECT_TRUE(r.at("id").is_null());
    EXPECT_EQ(error_code_of(one_reply("")), error_code::kParseError);
    EXPECT_EQ(error_code_of(one_reply("\xff\xfe")), error_code::kParseError);
}

TEST_F(EndpointTest, InvalidRequest) {
    // Not an object.
    EXPECT_EQ(error_code_of(one_reply("42")), error_code::kInvalidRequest);
    // Wrong or missing version; the id is echoed when readable.
    json r = one_reply(R"({"jsonrpc":"1.0","id":5,"method":"echo"})");
    EXPECT_EQ(error_code_of(r), error_code::kInvalidRequest);
    EXPECT_EQ(r.at("id"), json(5));
    EXPECT_EQ(error_code_of(one_reply(R"({"id":5,"method":"echo"})")), error_code::kInvalidRequest);
    // Method not a string.
    EXPECT_EQ(error_code_of(one_reply(R"({"jsonrpc":"2.0","id":1,"method":3})")),
              error_code::kInvalidRequest);
    // An id that is neither integer nor string.
    r = one_reply(R"({"jsonrpc":"2.0","id":1.5,"method":"echo"})");
    EXPECT_EQ(error_code_of(r), error_code::kInvalidRequest);
    EXPECT_TRUE(r.at("id").is_null());
    EXPECT_EQ(error_code_of(one_reply(R"({"jsonrpc":"2.0","id":{},"method":"echo"})")),
              error_code::kInvalidRequest);
    // Params that are not structured.
    EXPECT_EQ(error_code_of(one_reply(R"({"jsonrpc":"2.0","id":1,"method":"echo","params":3})")),
              error_code::kInvalidRequest);
    // Neither request nor response.
    EXPECT_EQ(error_code_of(one_reply(R"({"jsonrpc":"2.0","id":1})")), error_code::kInvalidRequest);
    EXPECT_EQ(error_code_of(one_reply(R"({"jsonrpc":"2.0"})")), error_code::kInvalidRequest);
}

TEST_F(EndpointTest, BatchesAreAnsweredWithOneInvalidRequest) {
    json r = one_reply("[" + request(1, "echo").dump() + "," + request(2, "echo").dump() + "]");
    EXPECT_EQ(error_code_of(r), error_code::kInvalidRequest);
    EXPECT_TRUE(r.at("id").is_null());
    EXPECT_EQ(error_code_of(one_reply("[]")), error_code::kInvalidRequest);
}

TEST_F(EndpointTest, DeepNestingIsRefusedNotRecursedInto) {
    const std::string deep = R"({"jsonrpc":"2.0","id":1,"method":"echo","params":)" +
                             std::string(100000, '[') + std::string(100000, ']') + "}";
    EXPECT_EQ(error_code_of(one_reply(deep)), error_code::kInvalidRequest);
    // Brackets inside strings do not count.
    json params = {{"s", std::string(1000, '[')}};
    EXPECT_EQ(one_reply(request(1, "echo", params).dump()).at("result"), params);
}

TEST_F(EndpointTest, MethodNotFound) {
    json r = one_reply(request("q", "no/such").dump());
    EXPECT_EQ(error_code_of(r), error_code::kMethodNotFound);
    EXPECT_EQ(r.at("id"), json("q"));
}

TEST_F(EndpointTest, TypedHandlerAndInvalidParams) {
    EXPECT_EQ(
        one_reply(request(1, "next_line", {{"line", 4}, {"character", 9}}).dump()).at("result"),
        (json{{"line", 5}, {"character", 0}}));
    for (const json& bad : {json{{"line", "4"}, {"character", 9}}, json{{"line", 4}},
                            json{{"line", -1}, {"character", 0}}, json::array()}) {
        json r = one_reply(request(2, "next_line", bad).dump());
        EXPECT_EQ(error_code_of(r), error_code::kInvalidParams) << bad.dump();
        EXPECT_EQ(r.at("id"), json(2));
    }
    // No params at all.
    EXPECT_EQ(error_code_of(one_reply(R"({"jsonrpc":"2.0","id":3,"method":"next_line"})")),
              error_code::kInvalidParams);
}

TEST_F(EndpointTest, HandlerErrorsPassThroughAndThrowsBecomeInternalError) {
    ep.on_request("modified", [](const json&, RequestContext&) -> Result<json> {
        return ResponseError{error_code::kContentModified, "document changed", {}};
    });
    ep.on_request("throws", [](const json&, RequestContext&) -> Result<json> {
        throw std::runtime_error("boom");
    });
    ep.on_request("bad_get", [](const json& params, RequestContext&) -> Result<json> {
        return json(params.get<Range>());  // ProtocolError from inside a raw handler
    });
    EXPECT_EQ(error_code_of(one_reply(request(1, "modified").dump())),
              error_code::kContentModified);
    EXPECT_EQ(error_code_of(one_reply(request(2, "throws").dump())), error_code::kInternalError);
    EXPECT_EQ(error_code_of(one_reply(request(3, "bad_get").dump())), error_code::kInvalidParams);
}

TEST_F(EndpointTest, NotificationsGetNoResponse) {
    ep.receive(notification("note", {{"a", 1}}).dump());
    ep.receive(notification("unknown/notification").dump());
    ep.receive(notification("$/setTrace").dump());
    ep.receive(R"({"jsonrpc":"2.0","method":"note","params":"not structured"})");
    ep.receive(R"({"jsonrpc":"2.0","method":"note","params":null})");  // as if absent
    ep.receive(notification("note", {{"a", 2}}).dump());
    EXPECT_TRUE(out.take().empty());
    ASSERT_EQ(notes.size(), 3u);
    EXPECT_TRUE(notes[1].is_null());
    EXPECT_EQ(notes[2], (json{{"a", 2}}));
}

TEST_F(EndpointTest, TypedNotificationWithBadParamsIsDroppedAndLogged) {
    std::vector<TextDocumentIdentifier> opened;
    ep.on_notification<TextDocumentIdentifier>(
        "open", [&](const TextDocumentIdentifier& d) { opened.push_back(d); });
    ep.receive(notification("open", {{"uri", 5}}).dump());
    ep.receive(notification("open", {{"uri", "file:///a"}}).dump());
    EXPECT_TRUE(out.take().empty());
    ASSERT_EQ(opened.size(), 1u);
    EXPECT_EQ(opened[0].uri, "file:///a");
}

TEST(EndpointGate, ServerNotInitializedUntilTheGateOpens) {
    Output out;
    Endpoint::Options o = inline_options();
    o.require_initialize = true;
    std::vector<std::string> log;
    o.log = [&](const std::string& line) { log.push_back(line); };
    Endpoint ep(out.sink(), o);
    int notes = 0;
    ep.on_request("initialize", [&](const json&, RequestContext&) -> Result<json> {
        ep.open_gate();
        return json{{"capabilities", json::object()}};
    });
    ep.on_request("work", [](const json&, RequestContext&) -> Result<json> { return json(1); });
    ep.on_notification("note", [&](const json&) { ++notes; });

    ep.receive(request(1, "work").dump());
    ep.receive(notification("note").dump());  // dropped before initialize (spec)
    auto m = out.take();
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(error_code_of(m[0]), error_code::kServerNotInitialized);
    EXPECT_EQ(notes, 0);
    EXPECT_FALSE(log.empty());

    ep.receive(request(2, "initialize").dump());
    ep.receive(request(3, "work").dump());
    ep.receive(notification("note").dump());
    m = out.take();
    ASSERT_EQ(m.size(), 2u);
    EXPECT_TRUE(m[0].contains("result"));
    EXPECT_EQ(m[1].at("result"), json(1));
    EXPECT_EQ(notes, 1);
}

TEST(EndpointCancel, CancelOfARunningHandlerAnswersRequestCancelled) {
    Output out;
    Endpoint::Options o = inline_options();
    o.worker_threads = 1;
    Endpoint ep(out.sink(), o);
    std::promise<void> started;
    std::atomic<bool> saw_cancel{false};
    ep.on_request("slow", [&](const json&, RequestContext& ctx) -> Result<json> {
        started.set_value();
        while (!ctx.cancelled()) std::this_thread::yield();
        saw_cancel = true;
        return json("finished anyway");
    });
    ep.receive(request("s1", "slow").dump());
    started.get_future().wait();
    ep.receive(notification("$/cancelRequest", {{"id", "s1"}}).dump());
    ep.block_until_idle_for_test();
    auto m = out.take();
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(error_code_of(m[0]), error_code::kRequestCancelled);
    EXPECT_EQ(m[0].at("id"), json("s1"));
    EXPECT_TRUE(saw_cancel);
}

TEST(EndpointCancel, QueuedRequestIsCancelledWithoutRunning) {
    Output out;
    Endpoint::Options o = inline_options();
    o.worker_threads = 1;
    Endpoint ep(out.sink(), o);
    std::promise<void> started, release;
    std::shared_future<void> release_f = release.get_future().share();
    std::atomic<int> runs{0};
    ep.on_request("block", [&](const json&, RequestContext&) -> Result<json> {
        started.set_value();
        release_f.wait();
        return json(0);
    });
    ep.on_request("count",
                  [&](const json&, RequestContext&) -> Result<json> { return json(++runs); });
    ep.receive(request(1, "block").dump());
    started.get_future().wait();  // the only worker is busy: request 2 stays queued
    ep.receive(request(2, "count").dump());
    ep.receive(notification("$/cancelRequest", {{"id", 2}}).dump());
    ep.receive(notification("$/cancelRequest", {{"id", 99}}).dump());  // unknown: ignored
    release.set_value();
    ep.block_until_idle_for_test();
    auto m = out.take();
    ASSERT_EQ(m.size(), 2u);
    EXPECT_EQ(m[0].at("id"), json(1));
    EXPECT_EQ(m[1].at("id"), json(2));
    EXPECT_EQ(error_code_of(m[1]), error_code::kRequestCancelled);
    EXPECT_EQ(runs.load(), 0);
}

TEST(EndpointCancel, DuplicateIdInFlightIsRejected) {
    Output out;
    Endpoint::Options o = inline_options();
    o.worker_threads = 1;
    Endpoint ep(out.sink(), o);
    std::promise<void> started, release;
    std::shared_future<void> release_f = release.get_future().share();
    ep.on_request("block", [&](const json&, RequestContext&) -> Result<json> {
        started.set_value();
        release_f.wait();
        return json(0);
    });
    ep.receive(request(1, "block").dump());
    started.get_future().wait();
    ep.receive(request(1, "block").dump());
    auto m = out.take();
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(error_code_of(m[0]), error_code::kInvalidRequest);
    release.set_value();
    ep.block_until_idle_for_test();
    m = out.take();
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(m[0].at("result"), json(0));
}

TEST_F(EndpointTest, ServerToClientRequestRoundTrip) {
    ApplyWorkspaceEditParams params;
    params.label = "Rename";
    params.edit.changes["file:///a.cpp"] = {TextEdit{Range{{1, 2}, {1, 5}}, "new"}};
    auto future = ep.send_request("workspace/applyEdit", params);
    auto sent = out.take();
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0].at("method"), "workspace/applyEdit");
    EXPECT_EQ(sent[0].at("params").get<ApplyWorkspaceEditParams>(), params);
    const json id = sent[0].at("id");
    EXPECT_EQ(ep.pending_client_requests(), 1u);

    // A response to an id we never sent is ignored.
    ep.receive(R"({"jsonrpc":"2.0","id":12345,"result":null})");
    EXPECT_EQ(future.wait_for(std::chrono::seconds(0)), std::future_status::timeout);

    ep.receive(json{{"jsonrpc", "2.0"}, {"id", id}, {"result", {{"applied", true}}}}.dump());
    Result<json> r = future.get();
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r.value().get<ApplyWorkspaceEditResult>().applied);
    EXPECT_EQ(ep.pending_client_requests(), 0u);
    EXPECT_TRUE(out.take().empty());  // responses are not answered
}

TEST_F(EndpointTest, ServerToClientErrorAndCallbackForm) {
    std::vector<Result<json>> got;
    ep.send_request("client/registerCapability",
                    RegistrationParams{{Registration{"r1", "workspace/didChangeWatchedFiles", {}}}},
                    [&](Result<json> r) { got.push_back(std::move(r)); });
    ep.send_request("window/workDoneProgress/create", WorkDoneProgressCreateParams{"tok"},
                    [&](Result<json> r) { got.push_back(std::move(r)); });
    auto sent = out.take();
    ASSERT_EQ(sent.size(), 2u);
    EXPECT_NE(sent[0].at("id"), sent[1].at("id"));
    // Answer out of order.
    ep.receive(json{{"jsonrpc", "2.0"}, {"id", sent[1].at("id")}, {"result", nullptr}}.dump());
    ep.receive(json{{"jsonrpc", "2.0"},
                    {"id", sent[0].at("id")},
                    {"error", {{"code", -32601}, {"message", "nope"}}}}
                   .dump());
    ASSERT_EQ(got.size(), 2u);
    EXPECT_TRUE(got[0].ok());
    ASSERT_FALSE(got[1].ok());
    EXPECT_EQ(got[1].error().code, error_code::kMethodNotFound);
}

TEST_F(EndpointTest, ServerToClientTimeoutCancelsAndFails) {
    auto future =
        ep.send_request("workspace/applyEdit", json::object(), std::chrono::milliseconds(1000));
    const json id = out.take().at(0).at("id");
    const auto t0 = std::chrono::steady_clock::now();
    ep.expire_requests(t0 - std::chrono::seconds(1));  // not yet due
    EXPECT_EQ(ep.pending_client_requests(), 1u);
    ep.expire_requests(t0 + std::chrono::hours(1));
    Result<json> r = future.get();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, error_code::kRequestFailed);
    auto m = out.take();
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(m[0].at("method"), "$/cancelRequest");
    EXPECT_EQ(m[0].at("params").at("id"), id);
    // A late response is ignored.
    ep.receive(json{{"jsonrpc", "2.0"}, {"id", id}, {"result", nullptr}}.dump());
    EXPECT_TRUE(out.take().empty());
}

TEST_F(EndpointTest, ProgressMessagesComeInOrderBeforeTheResponse) {
    ep.on_request("stream", [](const json&, RequestContext& ctx) -> Result<json> {
        WorkDoneProgress progress(ctx.endpoint(), *ctx.work_done_token());
        progress.report({std::nullopt, "dropped: before begin", std::nullopt});
        progress.begin({"Thinking", true, std::nullopt, 0});
        progress.report({std::nullopt, "half", 50});
        EXPECT_TRUE(ctx.send_partial_result(json::array({"a"})));
        EXPECT_TRUE(ctx.send_partial_result(json::array({"b"})));
        progress.end({"done"});
        progress.report({std::nullopt, "dropped: after end", std::nullopt});
        return json::array();
    });
    ep.receive(request(1, "stream", {{"workDoneToken", 7}, {"partialResultToken", "p"}}).dump());
    auto m = out.take();
    ASSERT_EQ(m.size(), 6u);
    std::vector<std::string> kinds;
    for (size_t i = 0; i < 5; ++i) {
        ASSERT_EQ(m[i].at("method"), "$/progress");
        const json& value = m[i].at("params").at("value");
        kinds.push_back(value.is_object() ? value.at("kind").get<std::string>()
                                          : "partial:" + value[0].get<std::string>());
    }
    EXPECT_EQ(kinds,
              (std::vector<std::string>{"begin", "report", "partial:a", "partial:b", "end"}));
    EXPECT_EQ(m[0].at("params").at("token"), json(7));
    EXPECT_EQ(m[2].at("params").at("token"), json("p"));
    EXPECT_EQ(m[0].at("params").at("value").get<WorkDoneProgressBegin>().title, "Thinking");
    EXPECT_EQ(m[5].at("id"), json(1));
    EXPECT_EQ(m[5].at("result"), json::array());
}

TEST_F(EndpointTest, ProgressEndsWhenTheReporterGoesAwayAndPartialsNeedAToken) {
    ep.on_request("forgetful", [](const json&, RequestContext& ctx) -> Result<json> {
        EXPECT_FALSE(ctx.send_partial_result(1));  // no partialResultToken given
        WorkDoneProgress progress(ctx.endpoint(), "w");
        progress.begin({"Indexing", std::nullopt, std::nullopt, std::nullopt});
        return json(0);
    });
    ep.receive(request(1, "forgetful").dump());
    auto m = out.take();
    ASSERT_EQ(m.size(), 3u);
    EXPECT_EQ(m[0].at("params").at("value").at("kind"), "begin");
    EXPECT_EQ(m[1].at("params").at("value").at("kind"), "end");
    EXPECT_TRUE(m[2].contains("result"));
}

// A sink that is not thread-safe on its own and writes slowly, piece by piece: if the
// endpoint let two messages in at once, their bytes would interleave in `stream`.
TEST(EndpointPool, ConcurrentHandlersNeverInterleaveMessages) {
    std::string stream;
    Endpoint::Options o = inline_options();
    o.worker_threads = 4;
    Endpoint ep(
        [&](const std::string& body) {
            const std::string framed = frame_message(body);
            for (size_t i = 0; i < framed.size(); i += 7) {
                stream.append(framed, i, 7);
                if (i % 70 == 0) std::this_thread::yield();
            }
        },
        o);
    std::atomic<int> concurrent{0}, max_concurrent{0};
    ep.on_request("chatty", [&](const json& params, RequestContext& ctx) -> Result<json> {
        const int now = ++concurrent;
        int seen = max_concurrent.load();
        while (now > seen && !max_concurrent.compare_exchange_weak(seen, now)) {
        }
        const int n = params.at("n").get<int>();
        for (int i = 0; i < 50; ++i)
            ctx.endpoint().notify("chatter", {{"n", n}, {"i", i}, {"pad", std::string(300, 'x')}});
        --concurrent;
        return json(n);
    });
    constexpr int kRequests = 16;
    for (int n = 0; n < kRequests; ++n) ep.receive(request(n, "chatty", {{"n", n}}).dump());
    ep.block_until_idle_for_test();

    MessageReader reader;
    reader.feed(stream);
    std::vector<int> next_i(kRequests, 0);
    int responses = 0;
    while (auto r = reader.next()) {
        ASSERT_EQ(r->kind, ReadResult::Kind::kMessage);
        json m = json::parse(r->body, nullptr, false);
        ASSERT_FALSE(m.is_discarded()) << r->body.substr(0, 200);
        if (m.contains("method")) {
            const int n = m["params"]["n"].get<int>();
            EXPECT_EQ(m["params"]["i"].get<int>(), next_i[n]++);  // per-handler order kept
        } else {
            const int n = m["id"].get<int>();
            EXPECT_EQ(next_i[n], 50);  // the response comes after its notifications
            ++responses;
        }
    }
    EXPECT_EQ(responses, kRequests);
    EXPECT_EQ(reader.buffered(), 0u);
    EXPECT_GE(max_concurrent.load(), 1);
}

TEST(EndpointPool, SequentialNotificationsRunInOrderAndRequestsWaitForThem) {
    Output out;
    Endpoint::Options o = inline_options();
    o.worker_threads = 4;
    Endpoint ep(out.sink(), o);
    std::mutex m;
    std::vector<int> applied;
    std::promise<void> first_started, release_first;
    std::shared_future<void> release_f = release_first.get_future().share();
    ep.on_notification("change", [&](const json& p) {
        const int v = p.at("v").get<int>();
        if (v == 0) {
            first_started.set_value();
            release_f.wait();
        }
        std::lock_guard<std::mutex> lock(m);
        applied.push_back(v);
    });
    ep.on_request("read", [&](const json&, RequestContext&) -> Result<json> {
        std::lock_guard<std::mutex> lock(m);
        return json(applied);
    });
    ep.receive(notification("change", {{"v", 0}}).dump());
    first_started.get_future().wait();
    for (int v = 1; v < 20; ++v) ep.receive(notification("change", {{"v", v}}).dump());
    ep.receive(request(1, "read").dump());
    // Were the request free to start, it would run now, while change 0 is still blocked.
    release_first.set_value();
    ep.block_until_idle_for_test();
    std::vector<int> expected;
    for (int v = 0; v < 20; ++v) expected.push_back(v);
    EXPECT_EQ(applied, expected);
    auto msgs = out.take();
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_EQ(msgs[0].at("result").get<std::vector<int>>(), expected);
}

TEST(EndpointShutdown, FailsClientRequestsAndCancelsWaitingHandlers) {
    Output out;
    std::promise<void> waiting;
    std::optional<Result<json>> seen_by_handler;
    {
        Endpoint::Options o = inline_options();
        o.worker_threads = 1;
        Endpoint ep(out.sink(), o);
        ep.on_request("ask_client", [&](const json&, RequestContext& ctx) -> Result<json> {
            auto answer = ctx.endpoint().send_request("workspace/applyEdit", json::object());
            waiting.set_value();
            seen_by_handler = answer.get();  // no response will ever come
            return json("unreachable result");
        });
        ep.receive(request(1, "ask_client").dump());
        waiting.get_future().wait();
    }  // ~Endpoint must not hang on the waiting handler
    ASSERT_TRUE(seen_by_handler);
    EXPECT_FALSE(seen_by_handler->ok());
    auto m = out.take();
    ASSERT_EQ(m.size(), 2u);
    EXPECT_EQ(m[0].at("method"), "workspace/applyEdit");
    EXPECT_EQ(m[1].at("id"), json(1));
    EXPECT_EQ(error_code_of(m[1]), error_code::kRequestCancelled);
}

TEST(MessageLoop, ServesOverASocketPair) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    FdTransport server_side(sv[0], sv[0]);
    FdTransport client(sv[1], sv[1]);
    Endpoint::Options o;
    o.worker_threads = 2;
    Endpoint ep([&](const std::string& body) { server_side.write(body); }, o);
    ep.on_request<InitializeParams, InitializeResult>(
        "initialize", [&](const InitializeParams& p, RequestContext&) -> Result<InitializeResult> {
            ep.open_gate();
            InitializeResult r;
            r.capabilities.inlineCompletionProvider = true;
            r.serverInfo = ServerInfo{p.rootUri.value_or("none"), std::nullopt};
            return r;
        });
    std::thread loop([&] { run_message_loop(server_side, ep); });

    InitializeParams init;
    init.processId = 42;
    init.rootUri = "file:///ws";
    ASSERT_TRUE(client.write(request(1, "initialize", init).dump()));
    ASSERT_TRUE(client.write("not json"));
    ReadResult r1 = client.read();
    ReadResult r2 = client.read();
    ASSERT_EQ(r1.kind, ReadResult::Kind::kMessage);
    ASSERT_EQ(r2.kind, ReadResult::Kind::kMessage);
    // The two replies may come in either order: the parse error is written by the reader
    // thread, the initialize result by a worker.
    json a = json::parse(r1.body), b = json::parse(r2.body);
    if (a.contains("error")) std::swap(a, b);
    EXPECT_EQ(error_code_of(b), error_code::kParseError);
    const auto result = a.at("result").get<InitializeResult>();
    EXPECT_EQ(result.capabilities.inlineCompletionProvider, true);
    EXPECT_EQ(result.serverInfo->name, "file:///ws");

    ::shutdown(sv[1], SHUT_WR);  // end of stream for the server: the loop returns
    loop.join();
    ep.block_until_idle_for_test();
    ::close(sv[0]);
    ::close(sv[1]);
}

}  // namespace
}  // namespace latent::lsp

namespace latent::lsp {
namespace {

// A cancel that arrives while the handler still runs, before it defers: the request is
// answered -32800 as soon as the handler returns, not when its deferred work would end
// (seen under ASan: a chat cancelled while the model loaded waited for the load).
TEST(EndpointDeferred, CancelledBeforeItDeferredIsAnsweredWhenTheHandlerReturns) {
    Output out;
    Endpoint::Options o;
    o.worker_threads = 2;
    o.require_initialize = false;
    auto ep = std::make_unique<Endpoint>(out.sink(), o);
    std::mutex mu;
    std::condition_variable cv;
    bool entered = false, go = false;
    std::shared_ptr<DeferredReply> held;
    ep->on_request("later", [&](const json&, RequestContext& ctx) -> Result<json> {
        std::unique_lock<std::mutex> lock(mu);
        entered = true;
        cv.notify_all();
        cv.wait(lock, [&] { return go; });
        held = ctx.defer();  // the work it waits for never ends in this test
        return json("ignored");
    });
    ep->receive(request(7, "later").dump());
    {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return entered; });
    }
    ep->receive(notification("$/cancelRequest", {{"id", 7}}).dump());  // handled inline
    EXPECT_TRUE(out.take().empty()) << "not deferred yet: the handler still runs";
    {
        std::lock_guard<std::mutex> lock(mu);
        go = true;
        cv.notify_all();
    }
    ep->block_until_idle_for_test();
    auto m = out.take();
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(m[0]["id"], 7);
    EXPECT_EQ(error_code_of(m[0]), error_code::kRequestCancelled);
    held->reply(json("late"));  // harmless: already answered
    EXPECT_TRUE(out.take().empty());
    held.reset();
    ep.reset();
    EXPECT_TRUE(out.take().empty());
}

// Deferred replies: the handler returns at once and the answer comes later from another
// thread; a cancel answers a deferred request at once; one dropped unanswered is -32802;
// the endpoint's stop answers the rest -32800. Arrival numbers follow reading order.
TEST(EndpointDeferred, AnsweredLaterCancelledAtOnceDroppedOrStopped) {
    Output out;
    Endpoint::Options o;
    o.worker_threads = 2;
    o.require_initialize = false;
    auto ep = std::make_unique<Endpoint>(out.sink(), o);
    std::mutex mu;
    std::vector<std::shared_ptr<DeferredReply>> held;
    std::vector<uint64_t> arrivals;
    ep->on_request("later", [&](const json&, RequestContext& ctx) -> Result<json> {
        std::lock_guard<std::mutex> lock(mu);
        arrivals.push_back(ctx.arrival());
        held.push_back(ctx.defer());
        return json("ignored");
    });
    auto receive = [&](int id) { ep->receive(request(id, "later").dump()); };
    for (int id = 1; id <= 4; ++id) receive(id);
    ep->block_until_idle_for_test();
    EXPECT_TRUE(out.take().empty());  // nothing answered yet: no worker is held either
    EXPECT_EQ(ep->newest_arrival("later"), 4u);
    EXPECT_EQ(ep->newest_arrival("other"), 0u);
    {
        std::lock_guard<std::mutex> lock(mu);
        std::sort(arrivals.begin(), arrivals.end());
        EXPECT_EQ(arrivals, (std::vector<uint64_t>{1, 2, 3, 4}));
    }
    // Answered from another thread.
    std::shared_ptr<DeferredReply> first;
    {
        std::lock_guard<std::mutex> lock(mu);
        for (auto& h : held)
            if (h->context().id() == IntOrString(1)) first = h;
    }
    std::thread([first] { first->reply(json("done")); }).join();
    auto m = out.take();
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(m[0]["result"], "done");
    first->reply(json("twice"));  // the first answer wins
    EXPECT_TRUE(out.take().empty());
    // Cancelled while deferred: answered now.
    ep->receive(notification("$/cancelRequest", {{"id", 2}}).dump());
    m = out.take();
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(m[0]["id"], 2);
    EXPECT_EQ(error_code_of(m[0]), error_code::kRequestCancelled);
    // Dropped unanswered: the server gave up.
    {
        std::lock_guard<std::mutex> lock(mu);
        std::erase_if(held, [](const auto& h) { return h->context().id() == IntOrString(3); });
    }
    m = out.take();
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(m[0]["id"], 3);
    EXPECT_EQ(error_code_of(m[0]), error_code::kServerCancelled);
    // The endpoint goes: the last one is answered -32800, and a late reply is harmless.
    ep.reset();
    m = out.take();
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(m[0]["id"], 4);
    EXPECT_EQ(error_code_of(m[0]), error_code::kRequestCancelled);
    std::lock_guard<std::mutex> lock(mu);
    for (auto& h : held) h->reply(json("after"));
    held.clear();
    EXPECT_TRUE(out.take().empty());
}

}  // namespace
}  // namespace latent::lsp
