// AgentLoop: agent mode's loop — a model turn with the workspace tools offered, the tool
// calls it asks for run (WorkspaceTools), their results appended to the conversation,
// and again, until the model answers without calling a tool, the step limit is reached,
// or the caller cancels. Each step is reported as it starts and as it ends. Edits are
// only proposed; the result carries them for the user's review.
//
// The conversation grows only at its end (assistant turn, tool results, next turn), so
// with a caching backend each turn's prompt extends the previous one.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/generator.h"
#include "agent/workspace_tools.h"
#include "engine/expected.h"

namespace latent::agent {

// One tool call as the user sees it.
struct AgentStep {
    int id = 0;  // 1, 2, ... in the order the model asked
    std::string tool;
    nlohmann::json arguments = nlohmann::json::object();  // parsed; {} when not JSON
    std::string title;
    std::string status = "running";  // running | done | refused | failed
    std::string detail;              // the result sent to the model (capped for the view)
    std::vector<Source> sources;
};

struct AgentLoopOptions {
    int max_steps = 16;    // tool calls in one run ("agent.maxSteps")
    int max_tokens = 512;  // per model turn ("chat.maxTokens")
    float temperature = 0.0f;
    std::string owner = "chat";  // the backend's cache owner
    size_t detail_bytes = 4096;  // AgentStep::detail cap
};

struct AgentLoopResult {
    std::string text;  // the final answer
    std::vector<AgentStep> steps;
    std::vector<ProposedFile> proposal;
    // "answer" (the model answered), "stepLimit" (it was told to answer after max_steps
    // tool calls), "noTools" (the backend cannot call tools: a plain answer).
    std::string stop_reason = "answer";
    // The whole conversation as sent, the tool turns included, ending with the answer:
    // the next turn of this conversation extends it.
    std::vector<ChatMessage> transcript;
    int32_t cached_tokens = 0, computed_tokens = 0, generated_tokens = 0;  // all turns
    int32_t last_prompt_tokens = 0;  // the last turn's prompt (cached + computed)
    bool cancelled = false;
};

// Thread safety: none; a loop runs on its caller's thread. The callbacks run there too.
class AgentLoop {
public:
    using OnStep = std::function<void(const AgentStep&)>;
    using OnText = std::function<void(std::string_view)>;

    AgentLoop(Generator& generator, WorkspaceTools& tools, AgentLoopOptions options);

    // `messages` ends with the user's turn (a system message first when the caller has
    // one). An error is the backend's, on its first turn; later failures end the run with
    // what was proposed so far and say so in the text.
    engine::Expected<AgentLoopResult> run(std::vector<ChatMessage> messages,
                                          const std::function<bool()>& cancelled,
                                          const OnStep& on_step, const OnText& on_text);

private:
    Generator& generator_;
    WorkspaceTools& tools_;
    AgentLoopOptions options_;
};

// The system message agent mode starts a conversation with (stable across turns: the
// prefix cache keeps it): the tools' rules and the workspace folders' names.
std::string agent_system_prompt(const std::vector<std::string>& folder_names);

}  // namespace latent::agent
