// `latent lsp` as a child process, driven through whole sessions by tests/support's
// LspClient: lifecycle, documents, inline completion (scripted backend and a tiny model),
// cancellation, chat streaming, explain/edit, indexing progress, and faults.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/support/lsp_client.h"
#include "tests/support/scripted_openai_server.h"
// The agent tests link latent_agent only; the tiny-model maker is compiled in here.
#include "tests/support/test_models.cpp"

namespace latent::agent {
namespace {

using json = nlohmann::json;
using latent::test::LspClient;
using std::chrono::milliseconds;

std::string tmp() { return latent::test::temp_dir(); }

std::unique_ptr<LspClient> start(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {LATENT_BINARY, "lsp", "--enable-test-backend"};
    for (const auto& e : extra) argv.push_back(e);
    auto c =
        std::make_unique<LspClient>(argv, tmp() + "/lsp-stderr.txt",
                                    std::vector<std::string>{"XDG_CACHE_HOME=" + tmp() + "/cache"});
    EXPECT_TRUE(c->started());
    return c;
}

json scripted(std::vector<std::string> replies, int delay_ms = 0) {
    return {{"backend", "scripted"},
            {"script", replies},
            {"scriptDelayMs", delay_ms},
            {"index", {{"enabled", false}}}};
}

json open_params(const std::string& uri, const std::string& text) {
    return {
        {"textDocument", {{"uri", uri}, {"languageId", "cpp"}, {"version", 1}, {"text", text}}}};
}

json completion_params(const std::string& uri, int line, int character) {
    return {{"textDocument", {{"uri", uri}}},
            {"position", {{"line", line}, {"character", character}}},
            {"context", {{"triggerKind", 2}}}};
}

int error_code(const std::optional<json>& r) {
    if (!r || !r->contains("error")) return 0;
    return (*r)["error"]["code"].get<int>();
}

// Waits until the scripted backend has `calls` generations begun and `running` of them in
// progress (latent/status): the event itself, instead of a sleep that guesses it.
void wait_backend(LspClient& c, int calls, int running) {
    for (int i = 0; i < 2000; ++i) {
        auto st = c.wait_response(c.request("latent/status", json::object()));
        ASSERT_TRUE(st);
        const json& cache = (*st)["result"]["cache"];
        if (cache.value("calls", -1) >= calls && cache.value("running", -1) == running) return;
        std::this_thread::sleep_for(milliseconds(5));  // a poll interval, not an order
    }
    FAIL() << "the backend never had " << calls << " calls with " << running << " running";
}

void shutdown_and_exit(LspClient& c, int expected_code = 0) {
    const int id = c.request("shutdown", nullptr);
    auto r = c.wait_response(id);
    ASSERT_TRUE(r);
    EXPECT_TRUE((*r)["result"].is_null());
    c.notify("exit", nullptr);
    EXPECT_EQ(c.wait_exit(), expected_code);
}

// Neovim's client writes "/" as "\/" in JSON strings (legal JSON); other clients use \u
// escapes, another key order, whitespace. Document sync must read them all as JSON.
TEST(LspServerTest, DocumentSyncReadsEveryLegalJsonEncoding) {
    auto c = start();
    c->initialize(scripted({"return a + b;"}));
    auto send = [&](const std::string& body) { c->send_raw(lsp::frame_message(body)); };
    send(R"({"params":{"textDocument":{"text":"int add(int a, int b) {\n    \n}\n",)"
         R"("version":1,"languageId":"cpp","uri":"file:\/\/\/tmp\/latent-test\/nv.cpp"}},)"
         R"("method":"textDocument\/didOpen","jsonrpc":"2.0"})");
    send(R"({"jsonrpc":"2.0","method":"textDocument\u002fdidOpen","params":{"textDocument":)"
         R"({"uri":"file:///tmp/latent-test/u.cpp","languageId":"cpp","version":1,"text":"x"}}})");
    send(
        "{ \"jsonrpc\" : \"2.0\" ,\n \"method\" :\t\"textDocument/didOpen\" , \"params\" : "
        "{ \"textDocument\" : { \"uri\" : \"file:///tmp/latent-test/w.cpp\" , \"languageId\" "
        ": \"cpp\", \"version\" : 1, \"text\" : \"y\" } } }\r\n");
    // An edit and a close, escaped too.
    send(R"({"jsonrpc":"2.0","method":"textDocument\/didChange","params":{"textDocument":)"
         R"({"uri":"file:\/\/\/tmp\/latent-test\/nv.cpp","version":2},"contentChanges":)"
         R"([{"range":{"start":{"line":1,"character":4},"end":{"line":1,"character":4}},)"
         R"("text":"\/\/ sum\n    "}]}})");
    send(R"({"jsonrpc":"2.0","method":"textDocument\/didClose","params":{"textDocument":)"
         R"({"uri":"file:\/\/\/tmp\/latent-test\/w.cpp"}}})");
    auto st = c->wait_response(c->request("latent/status", json::object()));
    ASSERT_TRUE(st);
    EXPECT_EQ((*st)["result"]["documents"], 2) << st->dump();
    // The edit applied: the line after the inserted comment is where the body goes.
    auto r =
        c->wait_response(c->request("textDocument/inlineCompletion",
                                    completion_params("file:///tmp/latent-test/nv.cpp", 2, 4)));
    ASSERT_TRUE(r);
    ASSERT_EQ((*r)["result"]["items"].size(), 1u) << r->dump();
    EXPECT_EQ((*r)["result"]["items"][0]["insertText"], "return a + b;");
    shutdown_and_exit(*c);
}

// The scripted backend is for tests: settings alone cannot choose it.
TEST(LspServerTest, SettingsCannotChooseTheTestBackend) {
    std::vector<std::string> argv = {LATENT_BINARY, "lsp"};
    LspClient c(argv, tmp() + "/lsp-stderr.txt",
                std::vector<std::string>{"XDG_CACHE_HOME=" + tmp() + "/cache"});
    ASSERT_TRUE(c.started());
    c.initialize(scripted({"x"}));
    json st;
    for (int i = 0; i < 2000; ++i) {  // until the load ended
        auto r = c.wait_response(c.request("latent/status", json::object()));
        ASSERT_TRUE(r);
        st = (*r)["result"];
        if (st["backend"] != "loading") break;
        std::this_thread::sleep_for(milliseconds(5));
    }
    EXPECT_EQ(st["backend"], "none") << st.dump();
    EXPECT_NE(st.value("backendError", "").find("unknown backend 'scripted'"), std::string::npos)
        << st.dump();
    shutdown_and_exit(c);
}

TEST(LspServerTest, LifecycleAndCapabilities) {
    auto c = start();
    const json r = c->initialize(scripted({}));
    const json& caps = r["result"]["capabilities"];
    EXPECT_EQ(caps["positionEncoding"], "utf-16");
    EXPECT_EQ(caps["textDocumentSync"]["change"], 2);
    EXPECT_EQ(caps["inlineCompletionProvider"], true);
    EXPECT_TRUE(caps.contains("codeActionProvider"));
    EXPECT_TRUE(caps["workspace"]["workspaceFolders"]["supported"].get<bool>());
    EXPECT_EQ(caps["executeCommandProvider"]["commands"].size(), 2u);
    shutdown_and_exit(*c, 0);
}

// The first run: with no model chosen, an editor without a guide of its own gets the error
// as a message that names the setting; the VS Code extension declares
// capabilities.experimental.latent.setupGuide and shows its own prompt, so the server only
// logs it (an error toast outlived the model's load in the real editor). Every stderr line
// carries its level (editors show stderr as errors unless told).
TEST(LspServerTest, NoModelIsAMessageUnlessTheClientGuidesTheFirstRun) {
    const json no_model = {{"backend", "local"}, {"model", ""}, {"index", {{"enabled", false}}}};
    auto read = [](const std::string& path) {
        std::ifstream in(path);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    {
        auto c = start();
        c->initialize(no_model);
        auto shown = c->wait_for(
            [](const json& m) { return m.value("method", "") == "window/showMessage"; });
        ASSERT_TRUE(shown);
        EXPECT_EQ((*shown)["params"]["type"], 1);
        EXPECT_NE((*shown)["params"]["message"].get<std::string>().find("latent.modelPath"),
                  std::string::npos);
        shutdown_and_exit(*c);
    }
    const std::string log = tmp() + "/lsp-setup-guide-stderr.txt";
    std::filesystem::remove(log);
    LspClient c({LATENT_BINARY, "lsp"}, log, {"XDG_CACHE_HOME=" + tmp() + "/cache"});
    ASSERT_TRUE(c.started());
    c.initialize(no_model, "", {{"experimental", {{"latent", {{"setupGuide", true}}}}}});
    // The load's log line (written just before the message would be sent), then a request.
    for (int i = 0; i < 4000 && read(log).find("[warning] backend: no model") == std::string::npos;
         ++i)
        std::this_thread::sleep_for(milliseconds(5));  // a poll interval, not an order
    const std::string text = read(log);
    ASSERT_NE(text.find("[warning] backend: no model: set latent.modelPath"), std::string::npos)
        << text;
    ASSERT_TRUE(c.wait_response(c.request("latent/status", json::object())));
    for (const json& m : c.seen) EXPECT_NE(m.value("method", ""), "window/showMessage") << m.dump();
    EXPECT_NE(text.find("] [info] latent lsp "), std::string::npos) << text;
    EXPECT_EQ(text.find("] [error]"), std::string::npos) << text;
    shutdown_and_exit(c);
}

TEST(LspServerTest, NegotiatesUtf8AndExitWithoutShutdownIsOne) {
    auto c = start();
    const json r = c->initialize(scripted({}), "",
                                 {{"general", {{"positionEncodings", {"utf-8", "utf-16"}}}}});
    EXPECT_EQ(r["result"]["capabilities"]["positionEncoding"], "utf-8");
    c->notify("exit", nullptr);
    EXPECT_EQ(c->wait_exit(), 1);
}

TEST(LspServerTest, RequestBeforeInitializeUnknownMethodAndMalformedJson) {
    auto c = start();
    EXPECT_EQ(error_code(c->wait_response(c->request("textDocument/inlineCompletion",
                                                     completion_params("file:///a", 0, 0)))),
              -32002);
    c->initialize(scripted({}));
    EXPECT_EQ(error_code(c->wait_response(c->request("no/such/method", json::object()))), -32601);
    c->send_raw(lsp::frame_message("{\"jsonrpc\": \"2.0\", \"id\": 5, "));  // cut short
    auto parse_error = c->wait_for(
        [](const json& m) { return m.contains("error") && m["error"]["code"] == -32700; });
    EXPECT_TRUE(parse_error);
    // Bad params are -32602, and the server is still fine afterwards.
    EXPECT_EQ(error_code(c->wait_response(
                  c->request("textDocument/inlineCompletion", {{"position", "nowhere"}}))),
              -32602);
    c->send_raw("Content-Length: 5\r\nContent-Length: x\r\n\r\n");  // a bad header block
    auto st = c->wait_response(c->request("latent/status", json::object()));
    ASSERT_TRUE(st);
    EXPECT_TRUE((*st)["result"]["backend"].is_string()) << st->dump();
    shutdown_and_exit(*c);
}

TEST(LspServerTest, HeaderWithoutBodyThenEofExitsCleanly) {
    auto c = start();
    c->initialize(scripted({}));
    c->send_raw("Content-Length: 100\r\n\r\n{\"jsonrpc\"");
    c->close_input();
    EXPECT_EQ(c->wait_exit(std::chrono::seconds(10)), 1);
}

TEST(LspServerTest, InlineCompletionAfterIncrementalEditsIsPostProcessed) {
    auto c = start();
    // The model "writes" the body, the closing brace and then a next function: the
    // post-processor keeps the body only.
    c->initialize(scripted({"return a + b;\n}\n\nint g() { return 0; }"}));
    const std::string uri = "file:///tmp/latent-test/add.cpp";
    c->notify("textDocument/didOpen", open_params(uri, "int add(int a, int b) {\n}\n"));
    // Incremental edits: an emoji comment on line 0 (2 UTF-16 units), then a new line 1.
    c->notify("textDocument/didChange", {{"textDocument", {{"uri", uri}, {"version", 2}}},
                                         {"contentChanges",
                                          {{{"range",
                                             {{"start", {{"line", 0}, {"character", 23}}},
                                              {"end", {{"line", 0}, {"character", 23}}}}},
                                            {"text", " // \xF0\x9F\x98\x80\n    "}}}}});
    const int id = c->request("textDocument/inlineCompletion", completion_params(uri, 1, 4));
    auto r = c->wait_response(id);
    ASSERT_TRUE(r);
    ASSERT_TRUE((*r).contains("result")) << r->dump();
    const json& items = (*r)["result"]["items"];
    ASSERT_EQ(items.size(), 1u) << r->dump();
    EXPECT_EQ(items[0]["insertText"], "return a + b;");
    EXPECT_EQ(items[0]["range"]["start"], (json{{"line", 1}, {"character", 4}}));
    EXPECT_EQ(items[0]["range"]["end"], (json{{"line", 1}, {"character", 4}}));
    // Typing the suggestion's first characters returns the rest from the cache.
    c->notify("textDocument/didChange", {{"textDocument", {{"uri", uri}, {"version", 3}}},
                                         {"contentChanges",
                                          {{{"range",
                                             {{"start", {{"line", 1}, {"character", 4}}},
                                              {"end", {{"line", 1}, {"character", 4}}}}},
                                            {"text", "ret"}}}}});
    auto r2 =
        c->wait_response(c->request("textDocument/inlineCompletion", completion_params(uri, 1, 7)));
    ASSERT_TRUE(r2);
    EXPECT_EQ((*r2)["result"]["items"][0]["insertText"], "urn a + b;");
    EXPECT_EQ((*r2)["result"]["latent"]["fromCache"], true);
    shutdown_and_exit(*c);
}

TEST(LspServerTest, MidLineCompletionIsOneLineAndBlankItemsAreDropped) {
    auto c = start();
    c->initialize(scripted({"x, y)\nmore();", "   \n  "}));
    const std::string uri = "file:///tmp/latent-test/m.py";
    c->notify("textDocument/didOpen", open_params(uri, "print()\n\n"));
    auto r =
        c->wait_response(c->request("textDocument/inlineCompletion", completion_params(uri, 0, 6)));
    ASSERT_TRUE(r);
    EXPECT_EQ((*r)["result"]["items"][0]["insertText"], "x, y") << r->dump();
    auto r2 =
        c->wait_response(c->request("textDocument/inlineCompletion", completion_params(uri, 1, 0)));
    ASSERT_TRUE(r2);
    EXPECT_TRUE((*r2)["result"]["items"].empty()) << r2->dump();
    shutdown_and_exit(*c);
}

// The backend never answers within the test (60 s): every answer below comes from a
// cancellation or a supersede, or the wait times out.
TEST(LspServerTest, CancelAndSupersede) {
    auto c = start();
    c->initialize(scripted({"slow"}, 60000));
    const std::string uri = "file:///tmp/latent-test/c.cpp";
    c->notify("textDocument/didOpen", open_params(uri, "int x = \n"));
    const int a = c->request("textDocument/inlineCompletion", completion_params(uri, 0, 8));
    c->cancel(a);
    EXPECT_EQ(error_code(c->wait_response(a)), -32800);
    wait_backend(*c, 0, 0);
    // A newer request for the same document supersedes the older one.
    const int b1 = c->request("textDocument/inlineCompletion", completion_params(uri, 0, 8));
    wait_backend(*c, 1, 1);  // b1 is in the backend: b2 is the newer
    const int b2 = c->request("textDocument/inlineCompletion", completion_params(uri, 0, 8));
    EXPECT_EQ(error_code(c->wait_response(b1)), -32802);
    c->cancel(b2);
    EXPECT_EQ(error_code(c->wait_response(b2)), -32800);
    shutdown_and_exit(*c);
}

TEST(LspServerTest, TheNewestCompletionInAnyDocumentOrAFocusElsewhereSupersedes) {
    auto c = start();
    c->initialize(scripted({"slow"}, 60000));
    const std::string a = "file:///tmp/latent-test/a.cpp", b = "file:///tmp/latent-test/b.cpp";
    c->notify("textDocument/didOpen", open_params(a, "int x = \n"));
    c->notify("textDocument/didOpen", open_params(b, "int y = \n"));
    // The editor shows one suggestion: a request in b makes a's in-flight one pointless.
    const int ra = c->request("textDocument/inlineCompletion", completion_params(a, 0, 8));
    wait_backend(*c, 1, 1);
    const int rb = c->request("textDocument/inlineCompletion", completion_params(b, 0, 8));
    const auto dropped = c->wait_response(ra);
    EXPECT_EQ(error_code(dropped), -32802);
    // It says how large its prompt was (the scripted backend counts bytes).
    ASSERT_TRUE(dropped);
    EXPECT_GT((*dropped)["error"]["data"].value("promptTokens", 0), 8) << dropped->dump();
    // Focus on the same document (a cursor jump there) keeps it; focus elsewhere ends it.
    wait_backend(*c, 2, 1);  // rb runs
    c->notify("latent/didFocus",
              {{"textDocument", {{"uri", b}}}, {"position", {{"line", 0}, {"character", 8}}}});
    // Notifications apply in order: once a later status is answered, the focus on b was
    // handled, and rb must still be running.
    wait_backend(*c, 2, 1);
    c->notify("latent/didFocus",
              {{"textDocument", {{"uri", a}}}, {"position", {{"line", 0}, {"character", 0}}}});
    EXPECT_EQ(error_code(c->wait_response(rb)), -32802);
    // A request after them reaches the backend (and is cancelled: it never answers).
    const int rc = c->request("textDocument/inlineCompletion", completion_params(a, 0, 8));
    wait_backend(*c, 3, 1);
    c->cancel(rc);
    EXPECT_EQ(error_code(c->wait_response(rc)), -32800);
    shutdown_and_exit(*c);
}

TEST(LspServerTest, AfterAFocusDocumentsOpenedUnseenAreNotWarmedAtTheirTop) {
    auto c = start();
    c->initialize(scripted({"x"}));
    auto warms = [&] {
        auto st = c->wait_response(c->request("latent/status", json::object()));
        return st ? (*st)["result"]["cache"].value("warms", json::array()) : json();
    };
    for (int i = 0; i < 200; ++i) {  // the backend is up before anything is opened
        auto st = c->wait_response(c->request("latent/status", json::object()));
        if (st && (*st)["result"].value("backend", "") == "scripted") break;
        std::this_thread::sleep_for(milliseconds(10));
    }
    const std::string a = "file:///tmp/latent-test/fa.cpp", b = "file:///tmp/latent-test/fb.cpp";
    // No focus yet (an editor without latent/didFocus): an opened document is warmed at
    // its top.
    c->notify("textDocument/didOpen", open_params(a, "int a;\nint b;\nint c;\nint d;\n"));
    const json w1 = warms();
    ASSERT_EQ(w1.size(), 1u) << w1.dump();
    EXPECT_EQ(w1[0].get<std::string>().rfind(a + ":", 0), 0u);
    EXPECT_EQ(w1[0].get<std::string>().find(" first"), std::string::npos);  // beside others
    // Focus at line 3 warms there (one line break more in the prefix than at the top).
    c->notify("latent/didFocus",
              {{"textDocument", {{"uri", a}}}, {"position", {{"line", 3}, {"character", 0}}}});
    const json w2 = warms();
    ASSERT_EQ(w2.size(), 2u) << w2.dump();
    const auto lines = [&](const json& w) {
        const std::string s = w.get<std::string>();
        return std::stoi(s.substr(s.rfind(':') + 1));
    };
    EXPECT_EQ(lines(w2[1]), lines(w2[0]) + 3) << w2.dump();
    // The focused place goes before other documents' warm-ups.
    EXPECT_NE(w2[1].get<std::string>().find(" first"), std::string::npos) << w2.dump();
    // Now a document opened without focus is not warmed; focusing it is.
    c->notify("textDocument/didOpen", open_params(b, "int e;\n"));
    EXPECT_EQ(warms().size(), 2u);
    c->notify("latent/didFocus",
              {{"textDocument", {{"uri", b}}}, {"position", {{"line", 0}, {"character", 0}}}});
    const json w3 = warms();
    ASSERT_EQ(w3.size(), 3u) << w3.dump();
    EXPECT_EQ(w3[2].get<std::string>().rfind(b + ":", 0), 0u);
    shutdown_and_exit(*c);
}

TEST(LspServerTest, CancelStormLeavesTheServerResponsive) {
    auto c = start();
    c->initialize(scripted({"a"}, 5));
    const std::string uri = "file:///tmp/latent-test/s.cpp";
    c->notify("textDocument/didOpen", open_params(uri, "x\n"));
    std::vector<int> ids;
    for (int i = 0; i < 200; ++i) {
        ids.push_back(c->request("textDocument/inlineCompletion", completion_params(uri, 0, 1)));
        c->cancel(ids.back());
        c->cancel(100000 + i);  // unknown ids are ignored
    }
    for (int id : ids) {
        auto r = c->wait_response(id);
        ASSERT_TRUE(r) << id;
    }
    auto st = c->wait_response(c->request("latent/status", json::object()));
    ASSERT_TRUE(st);
    shutdown_and_exit(*c);
}

TEST(LspServerTest, GarbageParamsNeverCrashTheServer) {
    auto c = start();
    c->initialize(scripted({"ok"}));
    const std::vector<std::string> methods = {"textDocument/didOpen",
                                              "textDocument/didChange",
                                              "textDocument/didClose",
                                              "textDocument/inlineCompletion",
                                              "textDocument/codeAction",
                                              "workspace/executeCommand",
                                              "workspace/didChangeConfiguration",
                                              "workspace/didChangeWatchedFiles",
                                              "workspace/didChangeWorkspaceFolders",
                                              "latent/didFocus",
                                              "latent/chat",
                                              "latent/explain",
                                              "latent/edit",
                                              "latent/status",
                                              "latent/mentions",
                                              "latent/prompts",
                                              "initialize"};
    const std::vector<json> values = {
        nullptr,
        1,
        -1,
        "x",
        json::array(),
        json::object(),
        json::array({1, "a", nullptr}),
        {{"textDocument", {{"uri", 5}}}},
        {{"textDocument", {{"uri", "file:///g.cpp"}, {"version", "v"}, {"text", 3}}}},
        {{"textDocument",
          {{"uri", "file:///g.cpp"}, {"languageId", "c"}, {"version", 1}, {"text", "a\n"}}}},
        {{"textDocument", {{"uri", "file:///g.cpp"}, {"version", 2}}},
         {"contentChanges",
          {{{"range",
             {{"start", {{"line", 99999999}, {"character", -1}}},
              {"end", {{"line", 0}, {"character", 4294967295u}}}}},
            {"text", "z"}}}}},
        {{"textDocument", {{"uri", "file:///g.cpp"}}},
         {"position", {{"line", 4000000000u}, {"character", 4000000000u}}},
         {"context", {{"triggerKind", 7}}}},
        {{"settings", {{"latent", {{"completion", {{"maxTokens", "many"}}}, {"cacheMb", -5}}}}}},
        {{"changes", {{{"uri", "file:///nope"}, {"type", 9}}}}},
        {{"event", {{"added", 3}}}},
        {{"messages", {{{"role", 1}}}}},
        {{"messages", {{{"role", "user"}, {"content", "x"}}}},
         {"mode", "agent"},
         {"mentions", {{{"kind", "file"}, {"uri", "file:///etc/passwd"}}, {{"kind", 7}}}}},
        {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"prompt", "nope"}},
        {{"kind", "file"}, {"query", std::string(300, 'q')}, {"limit", -1}},
        {{"command", "latent.edit"}, {"arguments", {"file:///g.cpp", {{"start", 1}}}}}};
    uint32_t x = 12345;
    auto rnd = [&x] { return (x = x * 1664525u + 1013904223u) >> 8; };
    std::vector<int> ids;
    for (int i = 0; i < 300; ++i) {
        const auto& m = methods[rnd() % methods.size()];
        const auto& v = values[rnd() % values.size()];
        if (rnd() % 2)
            ids.push_back(c->request(m, v));
        else
            c->notify(m, v);
    }
    for (int id : ids) ASSERT_TRUE(c->wait_response(id)) << id;
    auto st = c->wait_response(c->request("latent/status", json::object()));
    ASSERT_TRUE(st);
    EXPECT_TRUE((*st)["result"].is_object()) << st->dump();
    shutdown_and_exit(*c);
}

TEST(LspServerTest, StdinClosedMidRequestExits) {
    auto c = start();
    c->initialize(scripted({"never"}, 60000));
    const std::string uri = "file:///tmp/latent-test/e.cpp";
    c->notify("textDocument/didOpen", open_params(uri, "x\n"));
    c->request("textDocument/inlineCompletion", completion_params(uri, 0, 1));
    c->request("latent/chat", {{"messages", {{{"role", "user"}, {"content", "hi"}}}}});
    wait_backend(*c, 2, 2);
    c->close_input();
    EXPECT_EQ(c->wait_exit(std::chrono::seconds(10)), 1);
}

TEST(LspServerTest, ChatStreamsPartialResults) {
    auto c = start();
    c->initialize(scripted({"Hello there, this is a streamed answer."}));
    const int id = c->request("latent/chat", {{"messages", {{{"role", "user"}, {"content", "hi"}}}},
                                              {"partialResultToken", "chat-1"}});
    auto r = c->wait_response(id);
    ASSERT_TRUE(r);
    EXPECT_EQ((*r)["result"]["text"], "Hello there, this is a streamed answer.");
    std::string streamed;
    for (const auto& m : c->seen)
        if (m.value("method", "") == "$/progress" && m["params"]["token"] == "chat-1")
            streamed += m["params"]["value"]["text"].get<std::string>();
    EXPECT_EQ(streamed, "Hello there, this is a streamed answer.");
    shutdown_and_exit(*c);
}

TEST(LspServerTest, ChatIsCancellable) {
    auto c = start();
    c->initialize(scripted({"a long answer that never comes"}, 60000));
    const int id = c->request("latent/chat", {{"messages", {{{"role", "user"}, {"content", "hi"}}}},
                                              {"partialResultToken", "chat-2"}});
    wait_backend(*c, 1, 1);
    c->cancel(id);
    EXPECT_EQ(error_code(c->wait_response(id, std::chrono::seconds(10))), -32800);
    shutdown_and_exit(*c);
}

TEST(LspServerTest, ExplainEditAndCodeActions) {
    auto c = start();
    c->initialize(scripted({"Here you go:\n```cpp\nint twice(int x) { return 2 * x; }\n```\n"}));
    const std::string uri = "file:///tmp/latent-test/t.cpp";
    c->notify("textDocument/didOpen", open_params(uri, "int twice(int x) { return x + x; }\n"));
    const json range = {{"start", {{"line", 0}, {"character", 0}}},
                        {"end", {{"line", 0}, {"character", 34}}}};
    auto actions = c->wait_response(
        c->request("textDocument/codeAction", {{"textDocument", {{"uri", uri}}},
                                               {"range", range},
                                               {"context", {{"diagnostics", json::array()}}}}));
    ASSERT_TRUE(actions);
    ASSERT_EQ((*actions)["result"].size(), 2u);
    EXPECT_EQ((*actions)["result"][0]["command"]["command"], "latent.explain");
    auto e = c->wait_response(c->request(
        "latent/edit",
        {{"textDocument", {{"uri", uri}}}, {"range", range}, {"instruction", "use multiply"}}));
    ASSERT_TRUE(e);
    EXPECT_EQ((*e)["result"]["text"], "int twice(int x) { return 2 * x; }");
    const json& edits = (*e)["result"]["edit"]["changes"][uri];
    ASSERT_EQ(edits.size(), 1u);
    EXPECT_EQ(edits[0]["range"], range);
    auto x = c->wait_response(
        c->request("latent/explain", {{"textDocument", {{"uri", uri}}}, {"range", range}}));
    ASSERT_TRUE(x);
    EXPECT_TRUE((*x)["result"]["text"].is_string());
    shutdown_and_exit(*c);
}

// Agent mode over the protocol: steps and sources stream as partial results, the answer
// carries the proposal (a WorkspaceEdit and each file's text), nothing is written; the
// mention completion and the prompt library answer from the indexed folder.
TEST(LspServerTest, AgentModeMentionsAndPromptsOverTheProtocol) {
    const std::string root = tmp() + "/agent-ws";
    std::filesystem::create_directories(root + "/.latent/prompts");
    std::ofstream(root + "/util.py") << "def helper(x):\n    return x * 2\n";
    std::ofstream(root + "/main.py") << "from util import helper\n\nprint(helper(3))\n";
    std::ofstream(root + "/.latent/prompts/shout.md")
        << "---\nname: shout\ndescription: Say it loudly\ncontext: [selection]\n---\n"
           "SHOUT {{selection}} {{input}}\n";
    using Server = latent::testing::ScriptedOpenAiServer;
    Server server([](const json& body, size_t n) -> Server::Answer {
        if (!body.contains("tools")) return {200, "", "plain", {}};
        if (n == 0) return {200, "", "", {{"find_definition", {{"name", "helper"}}}}};
        if (n == 1)
            return {200,
                    "",
                    "",
                    {{"edit_file",
                      {{"path", "util.py"}, {"old_text", "x * 2"}, {"new_text", "x * 3"}}}}};
        return {200, "", "Tripled it.", {}};
    });
    auto c = start();
    json options = {{"backend", "remote"},
                    {"remote", {{"url", server.url()}, {"model", "m"}}},
                    {"index", {{"enabled", true}, {"db", tmp() + "/agent-ws-index.sqlite"}}}};
    c->initialize(options, "file://" + root, {{"window", {{"workDoneProgress", true}}}});
    ASSERT_TRUE(c->wait_for([](const json& m) {
        return m.value("method", "") == "$/progress" && m["params"]["value"]["kind"] == "end";
    }));
    const int id = c->request("latent/chat", {{"messages", {{{"role", "user"}, {"content", "x3"}}}},
                                              {"mode", "agent"},
                                              {"conversationId", "c-1"},
                                              {"partialResultToken", "agent-1"}});
    auto r = c->wait_response(id, std::chrono::seconds(30));
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->contains("result")) << r->dump();
    const json& res = (*r)["result"];
    EXPECT_EQ(res["text"], "Tripled it.");
    EXPECT_EQ(res["stopReason"], "answer");
    ASSERT_EQ(res["steps"].size(), 2u);
    EXPECT_EQ(res["steps"][1]["tool"], "edit_file");
    EXPECT_EQ(res["steps"][1]["status"], "done");
    ASSERT_EQ(res["proposal"]["files"].size(), 1u);
    const json& file = res["proposal"]["files"][0];
    EXPECT_EQ(file["path"], "util.py");
    EXPECT_EQ(file["newText"], "def helper(x):\n    return x * 3\n");
    EXPECT_EQ(file["oldText"], "def helper(x):\n    return x * 2\n");
    const json& change = res["proposal"]["edit"]["documentChanges"][0];
    EXPECT_EQ(change["edits"][0]["range"]["end"], json({{"line", 2}, {"character", 0}}));
    EXPECT_FALSE(res["sources"].empty());
    int steps = 0;
    for (const auto& m : c->seen)
        if (m.value("method", "") == "$/progress" && m["params"]["token"] == "agent-1" &&
            m["params"]["value"].contains("step"))
            ++steps;
    EXPECT_EQ(steps, 4);  // each step running, then done
    std::ifstream util(root + "/util.py");
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(util), {}),
              "def helper(x):\n    return x * 2\n");

    auto files =
        c->wait_response(c->request("latent/mentions", {{"kind", "file"}, {"query", "utl"}}));
    ASSERT_TRUE(files);
    ASSERT_FALSE((*files)["result"]["items"].empty()) << files->dump();
    EXPECT_EQ((*files)["result"]["items"][0]["label"], "util.py");
    auto syms =
        c->wait_response(c->request("latent/mentions", {{"kind", "symbol"}, {"query", "hel"}}));
    ASSERT_TRUE(syms);
    EXPECT_EQ((*syms)["result"]["items"][0]["label"], "helper") << syms->dump();
    auto prompts = c->wait_response(c->request("latent/prompts", json::object()));
    ASSERT_TRUE(prompts);
    std::vector<std::string> names;
    for (const auto& p : (*prompts)["result"]["prompts"]) names.push_back(p["name"]);
    for (const char* n : {"explain", "refactor", "tests", "docs", "fix", "review", "shout"})
        EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;

    // A library prompt in chat mode renders around the selection.
    const std::string uri = "file://" + root + "/main.py";
    c->notify("textDocument/didOpen", open_params(uri, "print(helper(3))\n"));
    json range = {{"start", {{"line", 0}, {"character", 0}}},
                  {"end", {{"line", 0}, {"character", 5}}}};
    json params = {{"messages", {{{"role", "user"}, {"content", "please"}}}}, {"prompt", "shout"}};
    params["context"] = {{"textDocument", {{"uri", uri}}}, {"range", range}};
    const int pid = c->request("latent/chat", params);
    auto pr = c->wait_response(pid, std::chrono::seconds(30));
    ASSERT_TRUE(pr);
    EXPECT_EQ((*pr)["result"]["text"], "plain") << pr->dump();
    const auto sent = server.requests().back()["messages"].back()["content"].get<std::string>();
    EXPECT_NE(sent.find("SHOUT print please"), std::string::npos) << sent;
    shutdown_and_exit(*c);
}

TEST(LspServerTest, NextEditsFromTheIndexThenTheModelOverTheProtocol) {
    const std::string root = tmp() + "/next-edit-ws";
    std::filesystem::create_directories(root);
    const std::string util = "def helper(x):\n    return x * 2\n";
    std::ofstream(root + "/util.py") << util;
    std::ofstream(root + "/main.py") << "from util import helper\n\nprint(helper(3))\n";
    using Server = latent::testing::ScriptedOpenAiServer;
    Server server([](const json&, size_t) -> Server::Answer {
        return {200, "", "```\ndef assist(x):\n    return x * 3\n```", {}};
    });
    auto c = start();
    json options = {{"backend", "remote"},
                    {"remote", {{"url", server.url()}, {"model", "m"}}},
                    {"index", {{"enabled", true}, {"db", tmp() + "/next-edit-index.sqlite"}}}};
    c->initialize(options, "file://" + root, {{"window", {{"workDoneProgress", true}}}});
    ASSERT_TRUE(c->wait_for([](const json& m) {
        return m.value("method", "") == "$/progress" && m["params"]["value"]["kind"] == "end";
    }));
    const std::string uri = "file://" + root + "/util.py";
    c->notify("textDocument/didOpen",
              {{"textDocument",
                {{"uri", uri}, {"languageId", "python"}, {"version", 1}, {"text", util}}}});
    // The user renames the function where it is defined.
    c->notify("textDocument/didChange", {{"textDocument", {{"uri", uri}, {"version", 2}}},
                                         {"contentChanges",
                                          {{{"range",
                                             {{"start", {{"line", 0}, {"character", 4}}},
                                              {"end", {{"line", 0}, {"character", 10}}}}},
                                            {"text", "assist"}}}}});
    auto ask = [&](int version) {
        auto r = c->wait_response(
            c->request("latent/nextEdit", {{"textDocument", {{"uri", uri}, {"version", version}}},
                                           {"position", {{"line", 0}, {"character", 10}}}}),
            std::chrono::seconds(30));
        EXPECT_TRUE(r && r->contains("result")) << (r ? r->dump() : "no answer");
        return r ? (*r)["result"] : json();
    };
    json res = ask(2);
    EXPECT_EQ(res["version"], 2);
    ASSERT_EQ(res["edits"].size(), 2u) << res.dump();
    for (const auto& e : res["edits"]) {
        EXPECT_EQ(e["uri"], "file://" + root + "/main.py");
        EXPECT_EQ(e["newText"], "assist");
        EXPECT_EQ(e["reason"], "index");
        EXPECT_EQ(e["kind"], "rename");
        EXPECT_EQ(e["label"], "Rename helper → assist");
    }
    EXPECT_EQ(res["edits"][0]["range"], json({{"start", {{"line", 0}, {"character", 17}}},
                                              {"end", {{"line", 0}, {"character", 23}}}}));
    EXPECT_EQ(res["edits"][1]["range"], json({{"start", {{"line", 2}, {"character", 6}}},
                                              {"end", {{"line", 2}, {"character", 12}}}}));
    EXPECT_TRUE(server.requests().empty());  // the index's answer needs no model
    // A question about an older version of the document answers nothing.
    res = ask(1);
    EXPECT_EQ(res["version"], 2);
    EXPECT_TRUE(res["edits"].empty());

    // Dismissed: the rename is not offered again, and the model is asked instead.
    const json first = ask(2);
    ASSERT_FALSE(first["edits"].empty());
    c->notify("latent/nextEditFeedback",
              {{"id", first["edits"][0]["id"]}, {"action", "dismissed"}});
    res = ask(2);
    ASSERT_EQ(res["edits"].size(), 1u) << res.dump();
    EXPECT_EQ(res["edits"][0]["reason"], "model");
    EXPECT_EQ(res["edits"][0]["kind"], "rewrite");
    EXPECT_EQ(res["edits"][0]["uri"], uri);
    EXPECT_EQ(res["edits"][0]["newText"], "3");
    EXPECT_EQ(res["edits"][0]["range"], json({{"start", {{"line", 1}, {"character", 15}}},
                                              {"end", {{"line", 1}, {"character", 16}}}}));
    ASSERT_EQ(server.requests().size(), 1u);
    std::string prompt;
    const json body = server.requests()[0];
    for (const auto& m : body["messages"]) prompt += m["content"].get<std::string>();
    EXPECT_NE(prompt.find("<|user_cursor|>"), std::string::npos) << prompt;
    EXPECT_NE(prompt.find("-def helper(x):"), std::string::npos) << prompt;
    EXPECT_NE(prompt.find("+def assist(x):"), std::string::npos) << prompt;

    // The model off: nothing once the index has nothing.
    c->notify("latent/nextEditFeedback", {{"id", res["edits"][0]["id"]}, {"action", "shown"}});
    c->notify("workspace/didChangeConfiguration",
              {{"settings", {{"latent", {{"nextEdit", {{"model", false}}}}}}}});
    res = ask(2);
    EXPECT_TRUE(res["edits"].empty()) << res.dump();
    EXPECT_EQ(server.requests().size(), 1u);
    auto st = c->wait_response(c->request("latent/status", json::object()));
    ASSERT_TRUE(st);
    EXPECT_EQ((*st)["result"]["nextEdit"],
              json({{"shown", 1}, {"accepted", 0}, {"dismissed", 1}, {"index", 2}, {"model", 1}}));
    shutdown_and_exit(*c);
}

TEST(LspServerTest, IndexesTheWorkspaceWithProgressAndRegistersTheWatcher) {
    const std::string root = tmp() + "/ws";
    std::filesystem::create_directories(root);
    std::ofstream(root + "/util.py") << "def helper(x):\n    return x * 2\n";
    std::ofstream(root + "/main.py") << "from util import helper\n\nprint(helper(3))\n";
    auto c = start();
    json options = scripted({"helper(4)"});
    options["index"] = {{"enabled", true}, {"db", tmp() + "/ws-index.sqlite"}};
    c->initialize(options, "file://" + root,
                  {{"window", {{"workDoneProgress", true}}},
                   {"workspace", {{"didChangeWatchedFiles", {{"dynamicRegistration", true}}}}}});
    auto reg = c->wait_for(
        [](const json& m) { return m.value("method", "") == "client/registerCapability"; });
    ASSERT_TRUE(reg);
    EXPECT_EQ(reg->at("params")["registrations"][0]["method"], "workspace/didChangeWatchedFiles");
    auto end = c->wait_for([](const json& m) {
        return m.value("method", "") == "$/progress" && m["params"]["value"]["kind"] == "end";
    });
    ASSERT_TRUE(end);
    auto begin = c->wait_for([](const json& m) {
        return m.value("method", "") == "$/progress" && m["params"]["value"]["kind"] == "begin";
    });
    EXPECT_TRUE(begin);
    auto st = c->wait_response(c->request("latent/status", json::object()));
    ASSERT_TRUE(st);
    EXPECT_EQ((*st)["result"]["index"][0]["state"], "ready") << st->dump();
    EXPECT_EQ((*st)["result"]["index"][0]["files"], 2);
    shutdown_and_exit(*c);
}

TEST(LspServerTest, TinyModelCompletesWithPrefixReuse) {
    engine::MakeModelOptions o;
    o.preset = "tiny";
    const std::string model = latent::test::make_test_model(o);
    ASSERT_FALSE(model.empty());
    auto c = start();
    c->initialize({{"backend", "local"},
                   {"engine", "reference"},
                   {"model", model},
                   {"completion", {{"maxTokens", 8}}},
                   {"index", {{"enabled", false}}}});
    const std::string uri = "file:///tmp/latent-test/tiny.py";
    c->notify("textDocument/didOpen",
              open_params(uri, "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    \n"));
    // The model loads in the background; a completion asked meanwhile waits for it
    // (deferred, holding no worker) and is answered by it.
    auto r =
        c->wait_response(c->request("textDocument/inlineCompletion", completion_params(uri, 4, 4)),
                         std::chrono::seconds(120));
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->contains("result")) << r->dump();
    const json& res = (*r)["result"];
    EXPECT_GT(res["latent"]["computedTokens"].get<int>(), 0) << res.dump();
    // The first token came before the answer was done (and after the request began).
    EXPECT_GE(res["latent"]["firstTokenMs"].get<double>(), 0.0) << res.dump();
    EXPECT_LE(res["latent"]["firstTokenMs"].get<double>(), res["latent"]["ms"].get<double>())
        << res.dump();
    for (const auto& item : res["items"]) {
        EXPECT_FALSE(item["insertText"].get<std::string>().empty());
        EXPECT_EQ(item["range"]["start"], (json{{"line", 4}, {"character", 4}}));
    }
    // One more character typed: the prompt's long prefix comes from the cache.
    c->notify("textDocument/didChange", {{"textDocument", {{"uri", uri}, {"version", 2}}},
                                         {"contentChanges",
                                          {{{"range",
                                             {{"start", {{"line", 4}, {"character", 4}}},
                                              {"end", {{"line", 4}, {"character", 4}}}}},
                                            {"text", "#"}}}}});
    auto r2 =
        c->wait_response(c->request("textDocument/inlineCompletion", completion_params(uri, 4, 5)));
    ASSERT_TRUE(r2);
    const json& l2 = (*r2)["result"]["latent"];
    if (!l2["fromCache"].get<bool>()) {
        EXPECT_GT(l2["cachedTokens"].get<int>(), 10) << r2->dump();
        EXPECT_LT(l2["computedTokens"].get<int>(), 10) << r2->dump();
    }
    auto st = c->wait_response(c->request("latent/status", json::object()));
    ASSERT_TRUE(st);
    EXPECT_NE((*st)["result"]["backend"].get<std::string>().find("local"), std::string::npos);
    // A next edit from the local engine's chat: whatever the random weights write, the
    // answer is parsed and filtered into edits of this document (or none), never an error.
    auto ne = c->wait_response(
        c->request("latent/nextEdit", {{"textDocument", {{"uri", uri}, {"version", 2}}},
                                       {"position", {{"line", 4}, {"character", 5}}}}),
        std::chrono::seconds(120));
    ASSERT_TRUE(ne);
    ASSERT_TRUE(ne->contains("result")) << ne->dump();
    EXPECT_EQ((*ne)["result"]["version"], 2);
    for (const auto& e : (*ne)["result"]["edits"]) {
        EXPECT_EQ(e["uri"], uri);
        EXPECT_EQ(e["reason"], "model");
        EXPECT_LE(e["range"]["end"]["line"].get<int>(), 5);
    }
    st = c->wait_response(c->request("latent/status", json::object()));
    ASSERT_TRUE(st);
    EXPECT_EQ((*st)["result"]["nextEdit"]["model"].get<int>(),
              (*ne)["result"]["edits"].empty() ? 0 : 1);
    shutdown_and_exit(*c);
}

}  // namespace
}  // namespace latent::agent
