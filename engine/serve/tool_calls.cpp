// Tool calls in DeepSeek's format (see tool_calls.h).
#include "engine/serve/tool_calls.h"

#include <atomic>
#include <chrono>
#include <random>

#include "engine/serve/http_response.h"

namespace latent::serve {

using namespace engine;

std::string tool_prompt(const std::vector<ToolFunction>& tools) {
    if (tools.empty()) return {};
    std::string out =
        "## Tools\nYou can call these functions. To call one, answer with "
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n"
        "ARGUMENTS\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>, where ARGUMENTS is a JSON "
        "object that matches the function's parameters.\n";
    for (const auto& t : tools) {
        out += "\n### " + t.name + "\n";
        if (!t.description.empty()) out += "Description: " + t.description + "\n";
        out += "Parameters: " + dump(t.parameters) + "\n";
    }
    return out;
}

namespace {

// The longest suffix of `text` that is a proper prefix of `marker` (a marker that may be
// completed by the next piece).
size_t partial_marker(std::string_view text, std::string_view marker) {
    for (size_t n = std::min(text.size(), marker.size() - 1); n > 0; --n)
        if (text.substr(text.size() - n) == marker.substr(0, n)) return n;
    return 0;
}

}  // namespace

ToolCallStream::Update ToolCallStream::push(std::string_view piece) {
    buffer_ += piece;
    return scan(false);
}

ToolCallStream::Update ToolCallStream::finish() { return scan(true); }

ToolCallStream::Update ToolCallStream::scan(bool final) {
    Update u;
    if (!in_calls_) {
        const size_t at = buffer_.find(kToolCallsBegin);
        if (at == std::string::npos) {
            const size_t keep = final ? 0 : partial_marker(buffer_, kToolCallsBegin);
            u.content = buffer_.substr(0, buffer_.size() - keep);
            buffer_.erase(0, buffer_.size() - keep);
            return u;
        }
        u.content = buffer_.substr(0, at);
        buffer_.erase(0, at + std::string_view(kToolCallsBegin).size());
        in_calls_ = true;
    }
    // Complete calls: begin ... sep NAME \n```json\n ARGS \n``` end.
    for (;;) {
        const size_t begin = buffer_.find(kToolCallBegin);
        if (begin == std::string::npos) break;
        const size_t end = buffer_.find(kToolCallEnd, begin);
        if (end == std::string::npos) break;
        std::string call = buffer_.substr(begin + std::string_view(kToolCallBegin).size(),
                                          end - begin - std::string_view(kToolCallBegin).size());
        buffer_.erase(0, end + std::string_view(kToolCallEnd).size());
        const size_t sep = call.find(kToolSep);
        if (sep == std::string::npos) continue;
        std::string rest = call.substr(sep + std::string_view(kToolSep).size());
        const size_t nl = rest.find('\n');
        ToolCallText t;
        t.name = rest.substr(0, nl);
        std::string args = nl == std::string::npos ? "" : rest.substr(nl + 1);
        // Strip the ```json fence.
        if (args.starts_with("```json")) args.erase(0, 7);
        if (!args.empty() && args.front() == '\n') args.erase(0, 1);
        if (args.ends_with("```")) args.resize(args.size() - 3);
        if (!args.empty() && args.back() == '\n') args.pop_back();
        t.arguments = args;
        t.id = new_call_id();
        ++calls_;
        u.calls.push_back(std::move(t));
    }
    if (final) buffer_.clear();
    return u;
}

std::string new_call_id() {
    static std::atomic<uint64_t> counter{0};
    thread_local std::mt19937_64 rng(
        std::random_device{}() ^
        static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
        (counter.fetch_add(1) << 32));
    static const char* kAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::string id = "call_";
    for (int i = 0; i < 24; ++i) id += kAlphabet[rng() % 62];
    return id;
}

}  // namespace latent::serve
