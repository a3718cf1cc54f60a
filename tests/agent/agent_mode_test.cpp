// Agent mode end to end in-process: the Agent with the remote backend against a scripted
// OpenAI-compatible server (the test's own) that drives a tool conversation
// deterministically — search, read, edit two files, answer — over a real indexed folder.
// Checked: the tool results sent back, the proposal, the steps as streamed, the step
// limit, cancellation mid-run, refusal of paths out of the workspace (answered to the
// model, the loop goes on), a backend without tools, and the conversation kept so that
// the next turn extends what was sent.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>

#include "agent/agent.h"
#include "tests/index/temp_workspace.h"
#include "tests/support/scripted_openai_server.h"

namespace latent::agent {
namespace {

using index::testing::TempDir;
using nlohmann::json;
using Server = latent::testing::ScriptedOpenAiServer;
namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The last message of a request (what the loop just sent back).
const json& last(const json& body) { return body["messages"].back(); }

struct AgentModeFixture : ::testing::Test {
    TempDir ws, outside, db;
    std::unique_ptr<Agent> agent;

    void SetUp() override {
        ws.write("src/config.py",
                 "def parse_config(path):\n    with open(path) as f:\n"
                 "        return dict(line.split('=') for line in f)\n");
        ws.write("src/main.py",
                 "from config import parse_config\n\n\ndef main():\n"
                 "    return parse_config('app.cfg')\n");
        outside.write("secret.txt", "the secret\n");
        fs::create_directory_symlink(outside.path(), ws / "link");
    }
    void start(const std::string& url, int max_steps = 16) {
        AgentOptions o;
        o.settings.backend = "remote";
        o.settings.remote_url = url;
        o.settings.remote_model = "scripted";
        o.settings.index_db = db / "i.sqlite";
        o.settings.agent_max_steps = max_steps;
        agent = std::make_unique<Agent>(o);
        agent->workspaces().set_folders({path_to_uri(ws.path())});
        agent->start();
        std::promise<void> ready;
        agent->generators().when_ready([&](const GeneratorHost::Lease&) { ready.set_value(); });
        ready.get_future().wait();
        auto ix = agent->workspaces().index_for(real_path(ws.path()) + "/x");
        ASSERT_TRUE(ix);
        ix->block_until_idle_for_test();
    }
    ChatRequest ask(const std::string& question) {
        ChatRequest r;
        r.messages = {{"user", question}};
        r.agent = true;
        return r;
    }
};

TEST_F(AgentModeFixture, SearchReadEditTwoFilesAndAnswer) {
    Server server([](const json&, size_t n) -> Server::Answer {
        switch (n) {
            case 0:
                return {200, "", "Let me look.", {{"search_code", {{"query", "parse config"}}}}};
            case 1:
                return {
                    200, "", "", {{"read_file", {{"path", "src/config.py"}, {"start_line", 1}}}}};
            case 2:
                return {200,
                        "",
                        "",
                        {{"edit_file",
                          {{"path", "src/config.py"},
                           {"old_text", "def parse_config(path):"},
                           {"new_text", "def load_config(path):"}}},
                         {"edit_file",
                          {{"path", "src/main.py"},
                           {"old_text", "from config import parse_config"},
                           {"new_text", "from config import load_config"}}}}};
            case 3:
                return {200,
                        "",
                        "",
                        {{"edit_file",
                          {{"path", "src/main.py"},
                           {"old_text", "    return parse_config('app.cfg')"},
                           {"new_text", "    return load_config('app.cfg')"}}}}};
            default:
                return {200, "", "Renamed parse_config to load_config in both files.", {}};
        }
    });
    start(server.url());
    const std::string config_before = slurp(ws / "src/config.py");
    std::vector<AgentStep> streamed;
    std::string text;
    ChatStreams streams;
    streams.step = [&](const AgentStep& s) { streamed.push_back(s); };
    streams.text = [&](std::string_view t) { text += t; };
    auto r = agent->chat(ask("Rename parse_config to load_config"), nullptr, streams);
    ASSERT_TRUE(r) << r.error.message;

    const auto reqs = server.requests();
    ASSERT_EQ(reqs.size(), 5u);
    // Every request offers the tools, and the conversation only grows at its end.
    for (size_t i = 0; i < reqs.size(); ++i) {
        EXPECT_EQ(reqs[i]["tools"].size(), WorkspaceTools::definitions().size());
        EXPECT_EQ(reqs[i]["tool_choice"], "auto");
        if (i > 0) {
            const auto& before = reqs[i - 1]["messages"];
            for (size_t k = 0; k < before.size(); ++k) EXPECT_EQ(reqs[i]["messages"][k], before[k]);
        }
    }
    EXPECT_EQ(reqs[0]["messages"][0]["role"], "system");
    // The search's result went back, answering its call by id.
    EXPECT_EQ(last(reqs[1])["role"], "tool");
    EXPECT_EQ(last(reqs[1])["tool_call_id"], "call_0_search_code");
    EXPECT_NE(last(reqs[1])["content"].get<std::string>().find("src/config.py"), std::string::npos);
    const json& asked = reqs[1]["messages"][reqs[1]["messages"].size() - 2];
    EXPECT_EQ(asked["role"], "assistant");
    EXPECT_EQ(asked["tool_calls"][0]["function"]["name"], "search_code");
    // The read's numbered lines.
    EXPECT_NE(last(reqs[2])["content"].get<std::string>().find("1: def parse_config(path):"),
              std::string::npos)
        << last(reqs[2]);
    // Two results for the turn with two calls, in order.
    const auto& m3 = reqs[3]["messages"];
    EXPECT_EQ(m3[m3.size() - 2]["tool_call_id"], "call_0_edit_file");
    EXPECT_EQ(m3[m3.size() - 1]["tool_call_id"], "call_1_edit_file");
    EXPECT_NE(m3[m3.size() - 1]["content"].get<std::string>().find("Proposed: src/main.py"),
              std::string::npos);

    // The answer, the steps (each streamed running, then done) and the proposal.
    EXPECT_EQ(r.value->text, "Renamed parse_config to load_config in both files.");
    EXPECT_NE(text.find("Let me look."), std::string::npos);
    EXPECT_EQ(r.value->stop_reason, "answer");
    ASSERT_EQ(r.value->steps.size(), 5u);
    ASSERT_EQ(streamed.size(), 10u);
    for (size_t i = 0; i < 5; ++i) {
        EXPECT_EQ(streamed[2 * i].status, "running");
        EXPECT_EQ(streamed[2 * i + 1].status, "done") << streamed[2 * i + 1].detail;
        EXPECT_EQ(streamed[2 * i + 1].id, static_cast<int>(i + 1));
    }
    EXPECT_EQ(r.value->steps[1].title, "Read src/config.py lines 1\u20133");
    EXPECT_EQ(r.value->steps[0].arguments["query"], "parse config");
    ASSERT_EQ(r.value->proposal.size(), 2u);
    EXPECT_EQ(r.value->proposal[0].path, "src/config.py");
    EXPECT_EQ(r.value->proposal[0].new_text.substr(0, 22), "def load_config(path):");
    EXPECT_EQ(
        r.value->proposal[1].new_text,
        "from config import load_config\n\n\ndef main():\n    return load_config('app.cfg')\n");
    EXPECT_FALSE(r.value->sources.empty());
    // The server wrote nothing.
    EXPECT_EQ(slurp(ws / "src/config.py"), config_before);
}

TEST_F(AgentModeFixture, PathsOutOfTheWorkspaceAreRefusedToTheModelAndTheLoopGoesOn) {
    Server server([](const json&, size_t n) -> Server::Answer {
        if (n == 0)
            return {200,
                    "",
                    "",
                    {{"read_file", {{"path", "../../etc/passwd"}}},
                     {"read_file", {{"path", "link/secret.txt"}}},
                     {"create_file", {{"path", "link/planted.txt"}, {"text", "x"}}}}};
        return {200, "", "I cannot read those.", {}};
    });
    start(server.url());
    auto r = agent->chat(ask("show me /etc/passwd"), nullptr, ChatStreams{});
    ASSERT_TRUE(r) << r.error.message;
    const auto reqs = server.requests();
    ASSERT_EQ(reqs.size(), 2u);
    const auto& m = reqs[1]["messages"];
    for (size_t k = m.size() - 3; k < m.size(); ++k) {
        EXPECT_EQ(m[k]["role"], "tool");
        const std::string content = m[k]["content"];
        EXPECT_NE(content.find("inside a workspace folder"), std::string::npos) << content;
        EXPECT_EQ(content.find("the secret"), std::string::npos);
        EXPECT_EQ(content.find("root:"), std::string::npos);
    }
    ASSERT_EQ(r.value->steps.size(), 3u);
    for (const auto& s : r.value->steps) EXPECT_EQ(s.status, "refused");
    EXPECT_TRUE(r.value->proposal.empty());
    EXPECT_EQ(r.value->text, "I cannot read those.");
    EXPECT_FALSE(fs::exists(outside / "planted.txt"));
}

TEST_F(AgentModeFixture, TheStepLimitEndsWithAnAnswerWithoutTools) {
    Server server([](const json& body, size_t) -> Server::Answer {
        if (body.value("tool_choice", json()) == "none") return {200, "", "Out of steps.", {}};
        return {
            200, "", "", {{"search_code", {{"query", "again"}}}, {"list_files", {{"glob", "**"}}}}};
    });
    start(server.url(), 3);
    auto r = agent->chat(ask("loop forever"), nullptr, ChatStreams{});
    ASSERT_TRUE(r) << r.error.message;
    EXPECT_EQ(r.value->steps.size(), 3u);
    EXPECT_EQ(r.value->stop_reason, "stepLimit");
    EXPECT_EQ(r.value->text, "Out of steps.");
    const auto reqs = server.requests();
    ASSERT_EQ(reqs.size(), 3u);  // 2 + 1 calls, then the 4th call is not run
    EXPECT_NE(last(reqs[2])["content"].get<std::string>().find("step limit (3"), std::string::npos);
    EXPECT_EQ(reqs[2]["tool_choice"], "none");
}

TEST_F(AgentModeFixture, CancellingMidRunStopsBeforeTheNextCall) {
    Server server([](const json&, size_t n) -> Server::Answer {
        return {200, "", "", {{"search_code", {{"query", "q" + std::to_string(n)}}}}};
    });
    start(server.url());
    std::atomic<bool> cancel{false};
    ChatStreams streams;
    // The user presses Stop while the second tool runs.
    streams.step = [&](const AgentStep& s) {
        if (s.id == 2 && s.status == "running") cancel = true;
    };
    auto r = agent->chat(
        ask("search"), [&] { return cancel.load(); }, streams);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error.kind, FeatureError::Kind::kCancelled);
    EXPECT_EQ(server.requests().size(), 2u);
}

TEST_F(AgentModeFixture, ABackendWithoutToolsGetsAPlainQuestion) {
    Server server([](const json& body, size_t) -> Server::Answer {
        if (body.contains("tools")) return {400, "tools are not supported by this model", "", {}};
        return {200, "", "A plain answer.", {}};
    });
    start(server.url());
    auto r = agent->chat(ask("what is parse_config?"), nullptr, ChatStreams{});
    ASSERT_TRUE(r) << r.error.message;
    EXPECT_EQ(r.value->text, "A plain answer.");
    EXPECT_EQ(r.value->stop_reason, "noTools");
    EXPECT_EQ(server.requests().size(), 2u);
}

TEST_F(AgentModeFixture, TheNextTurnExtendsWhatWasSent) {
    Server server([](const json& body, size_t) -> Server::Answer {
        if (!body.contains("tools")) return {200, "", "Explained.", {}};
        if (last(body)["role"] == "user")
            return {200, "", "", {{"find_definition", {{"name", "parse_config"}}}}};
        return {200, "", "It reads key=value lines.", {}};
    });
    start(server.url());
    ChatRequest first = ask("What does parse_config do?");
    first.conversation_id = "c1";
    auto r1 = agent->chat(first, nullptr, ChatStreams{});
    ASSERT_TRUE(r1);
    ChatRequest second = first;
    second.messages.push_back({"assistant", r1.value->text});
    second.messages.push_back({"user", "And main?"});
    auto r2 = agent->chat(second, nullptr, ChatStreams{});
    ASSERT_TRUE(r2);
    const auto reqs = server.requests();
    ASSERT_EQ(reqs.size(), 4u);
    // Turn 2 starts with everything turn 1 sent (tool call and result included), then
    // turn 1's answer, then the new question.
    const auto& before = reqs[1]["messages"];
    const auto& now = reqs[2]["messages"];
    ASSERT_EQ(now.size(), before.size() + 2);
    for (size_t k = 0; k < before.size(); ++k) EXPECT_EQ(now[k], before[k]) << k;
    EXPECT_EQ(now[before.size()]["content"], "It reads key=value lines.");
    EXPECT_EQ(now[before.size() + 1]["content"], "And main?");
    // A library prompt's turn is matched as the client shows it, "/name words".
    ChatRequest prompted;
    prompted.messages = {{"user", "main.py"}};
    prompted.prompt = "explain";
    prompted.conversation_id = "c2";
    auto p1 = agent->chat(prompted, nullptr, ChatStreams{});
    ASSERT_TRUE(p1) << p1.error.message;
    ChatRequest next;
    next.conversation_id = "c2";
    next.messages = {{"user", "/explain main.py"}, {"assistant", p1.value->text}, {"user", "more"}};
    const size_t sent = server.requests().size();
    ASSERT_TRUE(agent->chat(next, nullptr, ChatStreams{}));
    const auto after = server.requests();
    const json& p1_sent = after[sent - 1]["messages"];
    const json& p2_sent = after[sent]["messages"];
    ASSERT_EQ(p2_sent.size(), p1_sent.size() + 2);
    EXPECT_EQ(p2_sent[0], p1_sent[0]);  // the rendered prompt, not the words typed
    // A client history that does not match (edited) starts afresh.
    ChatRequest edited = second;
    edited.messages[0].content = "Something else?";
    const size_t before_edit = server.requests().size();
    ASSERT_TRUE(agent->chat(edited, nullptr, ChatStreams{}));
    // system, user, assistant, user
    EXPECT_EQ(server.requests()[before_edit]["messages"].size(), 4u);
}

}  // namespace
}  // namespace latent::agent
