// AgentLoop (see agent_loop.h).
#include "agent/agent_loop.h"

namespace latent::agent {

using json = nlohmann::json;

namespace {

std::string cut(const std::string& s, size_t cap) {
    if (s.size() <= cap) return s;
    size_t n = cap;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    return s.substr(0, n) + "\n…";
}

}  // namespace

std::string agent_system_prompt(const std::vector<std::string>& folder_names) {
    std::string folders;
    for (const auto& f : folder_names) folders += (folders.empty() ? "" : ", ") + f;
    return "You are Latent, a coding assistant working in the user's workspace" +
           (folders.empty() ? std::string() : " (folders: " + folders + ")") +
           ". Use the tools to find and read the code you need before you answer; do not "
           "guess what a file holds. Paths are relative to a workspace folder. To change "
           "code, propose edits with edit_file (quote old_text exactly as read_file showed "
           "it, without the line numbers) or create_file: the user reviews every proposed "
           "change, nothing is written until they accept. When you are done, answer briefly: "
           "what you found and what you changed.";
}

AgentLoop::AgentLoop(Generator& generator, WorkspaceTools& tools, AgentLoopOptions options)
    : generator_(generator), tools_(tools), options_(std::move(options)) {}

engine::Expected<AgentLoopResult> AgentLoop::run(std::vector<ChatMessage> messages,
                                                 const std::function<bool()>& cancelled,
                                                 const OnStep& on_step, const OnText& on_text) {
    AgentLoopResult out;
    GenerateOptions o;
    o.max_tokens = options_.max_tokens;
    o.temperature = options_.temperature;
    o.owner = options_.owner;
    o.cancelled = cancelled;
    o.on_text = on_text;
    o.tools = WorkspaceTools::definitions();
    o.tool_choice = "auto";
    if (!generator_.supports_tools()) {
        o.tools = nullptr;
        o.tool_choice = nullptr;
        out.stop_reason = "noTools";
    }
    int steps = 0;
    bool limit_reached = false;
    for (int turn = 0;; ++turn) {
        if (cancelled && cancelled()) {
            out.cancelled = true;
            break;
        }
        if (limit_reached && !o.tools.is_null()) o.tool_choice = "none";
        auto g = generator_.chat(messages, o);
        if (!g) {
            if (turn == 0 && !o.tools.is_null()) {
                // A server that does not take tools answers its own error: ask it plainly.
                GenerateOptions plain = o;
                plain.tools = nullptr;
                plain.tool_choice = nullptr;
                auto p = generator_.chat(messages, plain);
                if (!p) return g.error();
                out.stop_reason = "noTools";
                g = std::move(p);
            } else {
                out.text += "\n\n(The backend failed: " + g.error().message + ")";
                break;
            }
        }
        out.cached_tokens += g->cached_tokens;
        out.computed_tokens += g->computed_tokens;
        out.generated_tokens += g->generated_tokens;
        out.last_prompt_tokens = g->cached_tokens + g->computed_tokens;
        if (g->cancelled || (cancelled && cancelled())) {
            out.cancelled = true;
            break;
        }
        ChatMessage reply{"assistant", g->text};
        if (g->tool_calls.empty() || limit_reached) {
            out.text = g->text;
            messages.push_back(std::move(reply));
            break;
        }
        for (const auto& c : g->tool_calls) reply.tool_calls.push_back({c.id, c.name, c.arguments});
        messages.push_back(std::move(reply));
        for (const auto& c : g->tool_calls) {
            if (cancelled && cancelled()) {
                out.cancelled = true;
                break;
            }
            std::string result;
            if (steps >= options_.max_steps) {
                limit_reached = true;
                result = "Not run: the step limit (" + std::to_string(options_.max_steps) +
                         " tool calls) was reached. Answer now with what you have.";
            } else {
                AgentStep step;
                step.id = ++steps;
                step.tool = c.name;
                json args = json::parse(c.arguments.empty() ? std::string("{}") : c.arguments,
                                        nullptr, false);
                if (!args.is_discarded() && args.is_object()) step.arguments = std::move(args);
                step.title = "Calling " + c.name;
                if (on_step) on_step(step);
                ToolOutcome r = tools_.call(c.name, c.arguments);
                step.status = status_name(r.status);
                step.title = r.title;
                step.detail = cut(r.result, options_.detail_bytes);
                step.sources = std::move(r.sources);
                if (on_step) on_step(step);
                out.steps.push_back(std::move(step));
                result = std::move(r.result);
                if (steps >= options_.max_steps) limit_reached = true;
            }
            ChatMessage tool{"tool", std::move(result)};
            tool.tool_call_id = c.id;
            messages.push_back(std::move(tool));
        }
        if (out.cancelled) break;
    }
    if (limit_reached && out.stop_reason == "answer") out.stop_reason = "stepLimit";
    out.proposal = tools_.proposal().files();
    out.transcript = std::move(messages);
    return out;
}

}  // namespace latent::agent
