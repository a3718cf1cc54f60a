// The Agent in-process, without JSON or pipes: containment of client paths through the
// features (file events, closed documents), the retrieval cache following index changes,
// superseding decided by events, backend failures that end only their request.
#include "agent/agent.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <future>
#include <optional>
#include <thread>

#include "tests/index/temp_workspace.h"

namespace latent::agent {
namespace {

using index::testing::cat;
using index::testing::TempDir;
namespace fs = std::filesystem;

// A backend whose generations block until cancelled, announcing each start: tests wait on
// the event instead of sleeping. Records the FIM prompts it saw.
class GatedGenerator : public Generator {
public:
    std::string describe() const override { return "gated"; }
    engine::Expected<GenerateResult> fim(const FimPrompt& p, const GenerateOptions& o) override {
        {
            std::lock_guard<std::mutex> lock(mu_);
            prompts_.push_back(p);
        }
        return run(o);
    }
    engine::Expected<GenerateResult> chat(const std::vector<ChatMessage>&,
                                          const GenerateOptions& o) override {
        return run(o);
    }
    // Blocks until `n` generations have started.
    void wait_started(size_t n) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return started_ >= n; });
    }
    void open_gate() {
        std::lock_guard<std::mutex> lock(mu_);
        open_ = true;
        cv_.notify_all();
    }
    std::vector<FimPrompt> prompts() const {
        std::lock_guard<std::mutex> lock(mu_);
        return prompts_;
    }
    // prompt_cost() as an engine of these speeds with nothing cached (4 bytes a token);
    // until called: unknown.
    void set_speed(double prefill_ms_per_token, double decode_ms_per_token) {
        std::lock_guard<std::mutex> lock(mu_);
        speed_ = {prefill_ms_per_token, decode_ms_per_token};
    }
    std::optional<PromptCost> prompt_cost(const FimPrompt& p) const override {
        std::lock_guard<std::mutex> lock(mu_);
        if (!speed_) return std::nullopt;
        PromptCost c;
        c.prompt_tokens = c.computed_tokens = static_cast<int32_t>(
            (p.context.size() + p.prefix.size() + p.suffix.size() + p.middle.size() + 3) / 4);
        c.prefill_ms_per_token = speed_->first;
        c.decode_ms_per_token = speed_->second;
        return c;
    }
    void warm(const std::string& owner, const FimPrompt& stable, WarmOrder order) override {
        std::lock_guard<std::mutex> lock(mu_);
        warms_.push_back({owner, stable, order});
    }
    struct Warm {
        std::string owner;
        FimPrompt stable;
        WarmOrder order;
    };
    std::vector<Warm> warms() const {
        std::lock_guard<std::mutex> lock(mu_);
        return warms_;
    }

private:
    engine::Expected<GenerateResult> run(const GenerateOptions& o) {
        std::unique_lock<std::mutex> lock(mu_);
        ++started_;
        cv_.notify_all();
        GenerateResult r;
        // Cancellation is a polled predicate: check it between short waits.
        while (!open_) {
            if (o.cancelled && o.cancelled()) {
                r.cancelled = true;
                return r;
            }
            cv_.wait_for(lock, std::chrono::milliseconds(2));
        }
        r.text = "done";
        return r;
    }
    mutable std::mutex mu_;
    std::condition_variable cv_;
    size_t started_ = 0;
    bool open_ = false;
    std::vector<FimPrompt> prompts_;
    std::optional<std::pair<double, double>> speed_;
    std::vector<Warm> warms_;
};

struct Fixture {
    TempDir ws, outside, db;
    std::shared_ptr<GatedGenerator> backend = std::make_shared<GatedGenerator>();
    std::unique_ptr<Agent> agent;

    void start() {
        AgentOptions o;
        o.backend = backend;
        o.settings.index_db = db / "i.sqlite";
        o.settings.max_time_ms = 0;
        agent = std::make_unique<Agent>(o);
        agent->workspaces().set_folders({path_to_uri(ws.path())});
        agent->start();
        wait_ready();
        wait_index();
    }
    void wait_ready() {
        std::promise<void> ready;
        agent->generators().when_ready([&](const GeneratorHost::Lease&) { ready.set_value(); });
        ready.get_future().wait();
    }
    void wait_index() {
        auto ix = agent->workspaces().index_for(real_path(ws.path()) + "/x");
        ASSERT_TRUE(ix);
        ix->block_until_idle_for_test();
    }
    std::string open(const std::string& rel, const std::string& text) {
        const std::string uri = path_to_uri(ws / rel);
        agent->open_document({uri, "python", 1, text});
        return uri;
    }
};

TEST(Agent, FileEventsAndClosedDocumentsNeverReadOutsideTheFolders) {
    Fixture f;
    f.ws.write("a.py", "def inside_fn():\n    return 1\n");
    f.outside.write("secret.py", "def secret_fn():\n    return 'the secret'\n");
    fs::create_directory_symlink(f.outside.path(), f.ws / "link");
    f.start();
    const std::string name = fs::path(f.outside.path()).filename().string();
    const std::string& w = f.ws.path();
    const std::vector<std::string> hostile = {
        cat({"file://", w, "/../", name, "/secret.py"}),
        cat({"file://", w, "/%2e%2e/", name, "/secret.py"}),
        cat({"file://", w, "%2F..%2F", name, "/secret.py"}),
        cat({"file://", w, "/link/secret.py%00.py"}),
        path_to_uri(f.ws / "link/secret.py"),
        path_to_uri(f.outside / "secret.py"),
    };
    for (const auto& uri : hostile) {
        f.agent->file_changed(uri, Agent::FileChange::kCreated);
        f.agent->file_changed(uri, Agent::FileChange::kChanged);
        f.agent->open_document({uri, "python", 1, "x = 1\n"});  // the user's own, unread
        f.agent->close_document(uri);
        f.agent->document_closed(uri);  // would re-read the disk's version
    }
    f.wait_index();
    auto ix = f.agent->workspaces().index_for(real_path(f.ws / "a.py"));
    ASSERT_TRUE(ix);
    EXPECT_FALSE(ix->definitions("inside_fn", 5).empty());
    EXPECT_TRUE(ix->definitions("secret_fn", 5).empty());
    // And so no prompt holds it.
    const std::string uri = f.open("b.py", "x = secret_fn()\n");
    f.backend->open_gate();
    auto r = f.agent->complete({uri, {1, 0}, false, std::nullopt}, nullptr);
    ASSERT_TRUE(r) << r.error.message;
    ASSERT_FALSE(f.backend->prompts().empty());
    EXPECT_EQ(f.backend->prompts().back().context.find("the secret"), std::string::npos);
}

// An edit to a definition in another file shows in the next completion's context, though
// the cursor did not move (the context cache follows the index).
TEST(Agent, AnEditElsewhereRefreshesTheRetrievedContext) {
    Fixture f;
    f.ws.write("lib.py", "def helper(a):\n    return a + 1\n");
    f.ws.write("main.py", "import lib\n\nx = lib.helper(2)\n");
    f.start();
    f.backend->open_gate();
    const std::string main_uri = f.open("main.py", "import lib\n\nx = lib.helper(2)\n");
    ASSERT_TRUE(f.agent->complete({main_uri, {3, 0}, false, std::nullopt}, nullptr));
    const std::string before = f.backend->prompts().back().context;
    ASSERT_NE(before.find("def helper(a)"), std::string::npos) << before;
    // The user edits lib.py in the editor: its new signature reaches the index...
    const std::string lib_uri = f.open("lib.py", "def helper(a):\n    return a + 1\n");
    lsp::TextDocumentContentChangeEvent change;
    change.range = lsp::Range{{0, 12}, {0, 12}};
    change.text = ", scale";
    ASSERT_TRUE(f.agent->change_document(lib_uri, 2, {change}));
    f.agent->document_changed(lib_uri);
    f.wait_index();
    // ...and the next completion in main.py, a line up (the same text would come from the
    // suggestion cache; the context cache keeps 40 lines), sees it.
    ASSERT_TRUE(f.agent->complete({main_uri, {1, 0}, false, std::nullopt}, nullptr));
    ASSERT_EQ(f.backend->prompts().size(), 2u);
    const std::string after = f.backend->prompts().back().context;
    EXPECT_NE(after.find("def helper(a, scale)"), std::string::npos) << after;
}

// A prompt that would take longer than completion.latencyMs at the backend's measured
// speeds is made smaller, down the rungs of smaller_budgets() until one fits, and the
// full one warms at that place before anything else; a fast backend, one that cannot say,
// or a target of 0 get the full prompt.
TEST(Agent, APromptThatWouldBeLateIsMadeSmallerAndTheFullOneWarmsFirst) {
    Fixture f;
    std::string body = "import lib\n\n";
    for (int i = 0; i < 300; ++i)
        body += "value_" + std::to_string(i) + " = lib.helper(" + std::to_string(i) + ")\n";
    f.ws.write("lib.py", "def helper(a):\n    return a + 1\n");
    f.ws.write("main.py", body);
    f.start();
    f.backend->open_gate();
    const std::string uri = f.open("main.py", body);
    auto size = [](const FimPrompt& p) {
        return p.context.size() + p.prefix.size() + p.suffix.size() + p.middle.size();
    };
    auto complete_at = [&](uint32_t line) {
        EXPECT_TRUE(f.agent->complete({uri, {line, 0}, false, std::nullopt}, nullptr));
        return f.backend->prompts().back();
    };
    const FimPrompt unknown = complete_at(250);  // speed unknown: the full prompt
    EXPECT_NE(unknown.context.find("def helper(a)"), std::string::npos) << unknown.context;
    f.backend->set_speed(0.01, 0.1);
    const FimPrompt fast = complete_at(251);
    EXPECT_GT(size(fast), 4000u);
    EXPECT_NE(fast.context.find("def helper(a)"), std::string::npos);
    EXPECT_TRUE(f.backend->warms().empty());
    // 5 ms a token and 50 per generated token: 2 s leave room for 320 tokens.
    f.backend->set_speed(5, 50);
    const FimPrompt slow = complete_at(252);
    EXPECT_LE((size(slow) + 3) / 4 * 5 + 8 * 50, 2000u) << size(slow);
    EXPECT_GT(size(slow), 400u);  // the largest rung that fits, not the smallest
    EXPECT_NE(slow.middle, "");
    const auto warms = f.backend->warms();
    ASSERT_EQ(warms.size(), 1u);
    EXPECT_EQ(warms[0].owner, uri);
    EXPECT_EQ(warms[0].order, WarmOrder::kFirst);
    EXPECT_EQ(warms[0].stable.context, fast.context);  // the full prompt warms
    // So slow that nothing fits: the smallest rung (the cursor's lines, no context).
    f.backend->set_speed(1000, 50);
    const FimPrompt slowest = complete_at(253);
    EXPECT_EQ(slowest.context.find("def helper"), std::string::npos);
    EXPECT_LT(size(slowest), 200u);
    // A target of 0: always the full prompt.
    Settings s = f.agent->settings();
    s.latency_ms = 0;
    f.agent->set_settings(s);
    EXPECT_GT(size(complete_at(254)), 4000u);
}

// Typing in the file itself keeps its cached context: the prompt's head stays the same.
TEST(Agent, TypingInTheFileKeepsItsContext) {
    Fixture f;
    f.ws.write("lib.py", "def helper(a):\n    return a + 1\n");
    f.ws.write("main.py", "import lib\n\nx = lib.helper(2)\n");
    f.start();
    f.backend->open_gate();
    const std::string uri = f.open("main.py", "import lib\n\nx = lib.helper(2)\n");
    ASSERT_TRUE(f.agent->complete({uri, {3, 0}, false, std::nullopt}, nullptr));
    const std::string before = f.backend->prompts().back().context;
    auto ix = f.agent->workspaces().index_for(real_path(f.ws / "main.py"));
    const uint64_t gen = ix->generation();
    lsp::TextDocumentContentChangeEvent change;
    change.range = lsp::Range{{3, 0}, {3, 0}};
    change.text = "y = 1";
    ASSERT_TRUE(f.agent->change_document(uri, 2, {change}));
    f.agent->document_changed(uri);
    f.wait_index();
    EXPECT_GT(ix->generation(), gen);  // the index did change...
    ASSERT_TRUE(f.agent->complete({uri, {3, 5}, false, std::nullopt}, nullptr));
    EXPECT_EQ(f.backend->prompts().back().context, before);  // ...but not for this file
}

// The newest completion supersedes the one in the backend: ordered by the backend's own
// "started" event, not by a sleep.
TEST(Agent, TheNewerCompletionSupersedesTheOneInFlight) {
    Fixture f;
    f.start();
    const std::string a = f.open("a.py", "x = \n"), b = f.open("b.py", "y = \n");
    auto first = std::async(std::launch::async, [&] {
        return f.agent->complete({a, {0, 4}, false, {}}, nullptr);
    });
    f.backend->wait_started(1);
    std::atomic<bool> cancel_second{false};
    auto second = std::async(std::launch::async, [&] {
        return f.agent->complete({b, {0, 4}, false, {}}, [&] { return cancel_second.load(); });
    });
    auto r1 = first.get();  // returns only when superseded: the backend never answers
    ASSERT_FALSE(r1);
    EXPECT_EQ(r1.error.kind, FeatureError::Kind::kSuperseded);
    f.backend->wait_started(2);
    // Focus moving to another document supersedes too.
    f.agent->focus(a, lsp::Position{0, 0});
    auto r2 = second.get();
    ASSERT_FALSE(r2);
    EXPECT_EQ(r2.error.kind, FeatureError::Kind::kSuperseded);
}

// A backend that throws while it starts (bad_alloc included) fails its load, not us; the
// next settings load fine.
TEST(Agent, ABackendThatThrowsWhileLoadingFailsOnlyItsLoad) {
    AgentOptions o;
    o.settings.index = false;
    std::atomic<int> made{0};
    o.factory = [&](const Settings& s) -> engine::Expected<std::shared_ptr<Generator>> {
        ++made;
        if (s.model == "oom") throw std::bad_alloc();
        if (s.model == "boom") throw std::runtime_error("boom");
        return std::shared_ptr<Generator>(
            std::make_shared<ScriptedGenerator>(std::vector<std::string>{"ok"}));
    };
    o.settings.model = "oom";
    Agent agent(o);
    agent.start();
    auto wait = [&] {
        std::promise<void> ready;
        agent.generators().when_ready([&](const GeneratorHost::Lease&) { ready.set_value(); });
        ready.get_future().wait();
    };
    wait();
    EXPECT_NE(agent.generators().error().find("out of memory"), std::string::npos);
    auto chat = agent.chat({{{"user", "hi"}}, std::nullopt, std::nullopt}, nullptr, nullptr);
    ASSERT_FALSE(chat);
    EXPECT_EQ(chat.error.kind, FeatureError::Kind::kFailed);
    Settings s = agent.settings();
    s.model = "boom";
    agent.set_settings(s);
    wait();
    EXPECT_NE(agent.generators().error().find("boom"), std::string::npos);
    s.model = "fine";
    agent.set_settings(s);
    wait();
    EXPECT_EQ(agent.generators().error(), "");
    auto ok = agent.chat({{{"user", "hi"}}, std::nullopt, std::nullopt}, nullptr, nullptr);
    ASSERT_TRUE(ok) << ok.error.message;
    EXPECT_EQ(ok.value->text, "ok");
    EXPECT_EQ(made.load(), 3);
}

}  // namespace
}  // namespace latent::agent
