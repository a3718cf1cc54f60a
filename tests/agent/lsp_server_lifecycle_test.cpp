// LspServer constructed in-process on an Endpoint with workers, so the lifecycle races run
// under the sanitizers: requests waiting for a model load hold no worker, a cancelled one
// is answered at once, a storm of setting changes ends on the last one, shutdown during a
// load answers everything.
#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <thread>

#include "agent/lsp_server.h"
#include "tests/support/test_models.h"

namespace latent::agent {
namespace {

using nlohmann::json;
using std::chrono::seconds;

// The client side: what the server sent, and a wait for a response by id.
class Client {
public:
    Client() {
        lsp::Endpoint::Options eo;
        eo.worker_threads = 4;
        endpoint = std::make_unique<lsp::Endpoint>(
            [this](const std::string& body) {
                std::lock_guard<std::mutex> lock(mu_);
                seen_.push_back(json::parse(body));
                cv_.notify_all();
            },
            eo);
    }
    // The server first (its endpoint's stop answers waiting requests into seen_), then the
    // endpoint, then what they wrote to.
    ~Client() {
        server.reset();
        endpoint.reset();
    }
    void start(LspServerOptions o, const json& init_options) {
        server = std::make_unique<LspServer>(*endpoint, std::move(o));
        const int id = request("initialize", {{"processId", nullptr},
                                              {"rootUri", nullptr},
                                              {"capabilities", json::object()},
                                              {"initializationOptions", init_options}});
        ASSERT_TRUE(wait(id).contains("result"));
        notify("initialized", json::object());
    }
    int request(const std::string& method, const json& params) {
        const int id = next_id_++;
        endpoint->receive(
            json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}.dump());
        return id;
    }
    void notify(const std::string& method, const json& params) {
        endpoint->receive(json{{"jsonrpc", "2.0"}, {"method", method}, {"params", params}}.dump());
    }
    // The response to `id`; null JSON if none came within the hang detector's limit.
    json wait(int id, std::chrono::seconds limit = seconds(60)) {
        std::unique_lock<std::mutex> lock(mu_);
        json found;
        cv_.wait_for(lock, limit, [&] {
            for (const auto& m : seen_)
                if (m.contains("id") && m["id"] == id && !m.contains("method")) {
                    found = m;
                    return true;
                }
            return false;
        });
        return found;
    }
    bool answered(int id) {
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& m : seen_)
            if (m.contains("id") && m["id"] == id && !m.contains("method")) return true;
        return false;
    }

    std::unique_ptr<lsp::Endpoint> endpoint;
    std::unique_ptr<LspServer> server;

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<json> seen_;
    int next_id_ = 1;
};

// A model load the test ends when it wants.
struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
    int entered = 0;
    void pass() {
        std::unique_lock<std::mutex> lock(mu);
        ++entered;
        cv.notify_all();
        cv.wait(lock, [&] { return open; });
    }
    void wait_entered() {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return entered > 0; });
    }
    void release() {
        std::lock_guard<std::mutex> lock(mu);
        open = true;
        cv.notify_all();
    }
};

LspServerOptions gated_options(Gate& gate) {
    LspServerOptions o;
    o.factory = [&gate](const Settings&) -> engine::Expected<std::shared_ptr<Generator>> {
        gate.pass();
        return std::shared_ptr<Generator>(
            std::make_shared<ScriptedGenerator>(std::vector<std::string>{"an answer"}));
    };
    return o;
}

const json kNoIndex = {{"index", {{"enabled", false}}}};

json chat_params() { return {{"messages", {{{"role", "user"}, {"content", "hi"}}}}}; }

// Four chats wait for the model; the endpoint has four workers. Were they held, status
// could not be answered until the model loaded.
TEST(LspServerLifecycle, RequestsWaitingForTheModelHoldNoWorker) {
    Gate gate;
    Client c;
    c.start(gated_options(gate), kNoIndex);
    gate.wait_entered();  // the model is loading
    std::vector<int> chats;
    for (int i = 0; i < 4; ++i) chats.push_back(c.request("latent/chat", chat_params()));
    const json st = c.wait(c.request("latent/status", json::object()));
    ASSERT_TRUE(st.contains("result")) << st.dump();
    EXPECT_EQ(st["result"]["backend"], "loading");
    for (int id : chats) EXPECT_FALSE(c.answered(id));
    gate.release();
    for (int id : chats) {
        const json r = c.wait(id);
        ASSERT_TRUE(r.contains("result")) << r.dump();
        EXPECT_EQ(r["result"]["text"], "an answer");
    }
}

// Typing while the model loads: only the newest completion runs once it is ready.
TEST(LspServerLifecycle, OnlyTheNewestWaitingCompletionRunsAfterTheLoad) {
    Gate gate;
    Client c;
    c.start(gated_options(gate), kNoIndex);
    gate.wait_entered();
    const std::string uri = "file:///tmp/latent-test/typing.py";
    c.notify("textDocument/didOpen",
             {{"textDocument",
               {{"uri", uri}, {"languageId", "python"}, {"version", 1}, {"text", "x = \n"}}}});
    std::vector<int> ids;
    for (int i = 0; i < 3; ++i)
        ids.push_back(c.request("textDocument/inlineCompletion",
                                {{"textDocument", {{"uri", uri}}},
                                 {"position", {{"line", 0}, {"character", 4}}},
                                 {"context", {{"triggerKind", 2}}}}));
    gate.release();
    EXPECT_EQ(c.wait(ids[0])["error"]["code"], -32802);
    EXPECT_EQ(c.wait(ids[1])["error"]["code"], -32802);
    const json last = c.wait(ids[2]);
    ASSERT_TRUE(last.contains("result")) << last.dump();
    EXPECT_EQ(last["result"]["items"][0]["insertText"], "an answer");
}

TEST(LspServerLifecycle, AWaitingRequestCancelledIsAnsweredAtOnce) {
    Gate gate;
    Client c;
    c.start(gated_options(gate), kNoIndex);
    gate.wait_entered();
    const int id = c.request("latent/chat", chat_params());
    c.notify("$/cancelRequest", {{"id", id}});
    const json r = c.wait(id);  // while the model still loads
    ASSERT_TRUE(r.contains("error")) << r.dump();
    EXPECT_EQ(r["error"]["code"], -32800);
    gate.release();
    const json ok = c.wait(c.request("latent/chat", chat_params()));
    EXPECT_TRUE(ok.contains("result")) << ok.dump();
}

TEST(LspServerLifecycle, ShutdownDuringALoadAnswersEveryRequest) {
    Gate gate;
    Client c;
    c.start(gated_options(gate), kNoIndex);
    gate.wait_entered();
    const int a = c.request("latent/chat", chat_params());
    const int b = c.request(
        "latent/explain",
        {{"textDocument", {{"uri", "file:///x.py"}}},
         {"range",
          {{"start", {{"line", 0}, {"character", 0}}}, {"end", {{"line", 0}, {"character", 1}}}}}});
    EXPECT_TRUE(c.wait(c.request("shutdown", nullptr)).contains("result"));
    // Tearing the server down answers the waiting requests first (the load still blocked),
    // then joins the loader, which needs the load to end.
    std::thread closer([&] { c.server.reset(); });
    EXPECT_EQ(c.wait(a)["error"]["code"], -32800);
    EXPECT_EQ(c.wait(b)["error"]["code"], -32800);
    gate.release();
    closer.join();
}

// local (a tiny model) <-> remote <-> none, 100 times, as fast as the client can send
// them: the last setting wins, and the server answers throughout.
TEST(LspServerLifecycle, ASettingsStormEndsOnTheLastSetting) {
    engine::MakeModelOptions mo;
    mo.preset = "tiny";
    const std::string model = latent::test::make_test_model(mo);
    ASSERT_FALSE(model.empty());
    Client c;
    c.start({}, {{"backend", "none"}, {"index", {{"enabled", false}}}});
    const json local = {{"backend", "local"},
                        {"engine", "reference"},
                        {"model", model},
                        {"diskCache", {{"mb", 0}}}};
    const json remote = {{"backend", "remote"}, {"remote", {{"url", "http://127.0.0.1:9"}}}};
    const json none = {{"backend", "none"}};
    for (int i = 0; i < 100; ++i) {
        const json& s = i % 3 == 0 ? local : i % 3 == 1 ? remote : none;
        c.notify("workspace/didChangeConfiguration", {{"settings", s}});
        if (i % 10 == 0) {
            EXPECT_TRUE(c.wait(c.request("latent/status", json::object())).contains("result"));
        }
    }
    c.notify("workspace/didChangeConfiguration", {{"settings", local}});
    // The chat waits for the newest load and is answered by it.
    const json r = c.wait(c.request("latent/chat", chat_params()), seconds(120));
    ASSERT_TRUE(r.contains("result")) << r.dump();
    const json st = c.wait(c.request("latent/status", json::object()));
    EXPECT_NE(st["result"]["backend"].get<std::string>().find("local"), std::string::npos)
        << st.dump();
    // A second storm with the server torn down in the middle of it.
    for (int i = 0; i < 30; ++i)
        c.notify("workspace/didChangeConfiguration", {{"settings", i % 2 ? local : remote}});
    c.server.reset();
}

}  // namespace
}  // namespace latent::agent
