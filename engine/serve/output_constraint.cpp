// OutputConstraints: JSON output and tool calls as token masks (see output_constraint.h).
#include "engine/serve/output_constraint.h"

#include <cmath>
#include <optional>

#include "engine/json_constraint.h"
#include "engine/prompt_format.h"

namespace latent::serve {

using namespace engine;

struct OutputConstraints::Tables {
    std::shared_ptr<const TokenBytes> bytes;
    std::shared_ptr<const JsonTokenTables> json;
    // DeepSeek-V3's tool tokens; nullopt when the vocabulary lacks them.
    std::optional<int32_t> calls_begin, calls_end, call_begin, call_end, sep;
    std::vector<int32_t> other_tool_tokens;  // outputs markers: never generated
};

namespace {

constexpr float kBanned = -INFINITY;

void ban(float* logits, int32_t n_vocab, int32_t id) {
    if (id >= 0 && id < n_vocab) logits[id] = kBanned;
}

// Free text that may not contain tool-call tokens (tool_choice none, or none offered).
class NoToolCalls final : public TokenConstraint {
public:
    explicit NoToolCalls(std::vector<int32_t> banned) : banned_(std::move(banned)) {}
    void mask(float* logits, int32_t n_vocab, int32_t) override {
        for (int32_t id : banned_) ban(logits, n_vocab, id);
    }
    void accept(int32_t) override {}

private:
    std::vector<int32_t> banned_;
};

// A tool function's arguments grammar: the parameters schema for strict functions, any
// object otherwise (so a call always parses, strict or not).
struct ToolGrammar {
    std::string name;
    std::shared_ptr<const JsonGrammar> args;
};

// Answers in DeepSeek-V3's tool-call format, every call well-formed (see prompt_format.h):
//   [free text] <calls-begin> ( <call-begin> "function" <sep> NAME "\n```json\n" ARGS
//   "\n```" <call-end> ) joined by "\n" <calls-end> EOS
// auto: free text until the model opens calls-begin (or ends); required / a named function:
// the answer starts with the calls. Near max_tokens no call is begun that could not end.
class ToolCallConstraint final : public TokenConstraint {
public:
    ToolCallConstraint(const OutputConstraints::Tables& t, std::vector<ToolGrammar> tools,
                       bool forced, bool parallel, std::vector<int32_t> end_tokens)
        : t_(t),
          tools_(std::move(tools)),
          parallel_(parallel),
          end_tokens_(std::move(end_tokens)),
          allowed_(t.bytes->n_vocab()) {
        state_ = forced ? State::kCallsBegin : State::kFree;
        min_call_ = 0;
        for (const auto& g : tools_) {
            const uint32_t cost = kFixedCost + static_cast<uint32_t>(g.name.size()) +
                                  g.args->node(g.args->root()).fin_len;
            min_call_ = min_call_ == 0 ? cost : std::min(min_call_, cost);
        }
    }

    // The most tokens the fixed parts of one call and the end can take: calls-begin,
    // call-begin, "function" (<= 8), sep, "\n```json\n" (<= 9), "\n```" (<= 4), call-end,
    // calls-end, EOS.
    static constexpr uint32_t kFixedCost = 1 + 1 + 8 + 1 + 9 + 4 + 1 + 1 + 1;
    // After the arguments: "\n```" (<= 4), call-end, calls-end, EOS.
    static constexpr int32_t kTailCost = 4 + 1 + 1 + 1;

    uint32_t min_call_tokens() const { return min_call_; }

    void mask(float* logits, int32_t n_vocab, int32_t remaining) override {
        switch (state_) {
            case State::kFree:
                for (int32_t id : t_.other_tool_tokens) ban(logits, n_vocab, id);
                for (auto id : {t_.calls_end, t_.call_begin, t_.call_end, t_.sep})
                    if (id) ban(logits, n_vocab, *id);
                // No call is begun that could not end within the tokens left.
                if (static_cast<uint32_t>(remaining) < min_call_)
                    ban(logits, n_vocab, *t_.calls_begin);
                return;
            case State::kCallsBegin:
                return only(logits, n_vocab, *t_.calls_begin);
            case State::kCallBegin:
                return only(logits, n_vocab, *t_.call_begin);
            case State::kSep:
                return only(logits, n_vocab, *t_.sep);
            case State::kCallEnd:
                return only(logits, n_vocab, *t_.call_end);
            case State::kDone:
                return only_end(logits, n_vocab);
            case State::kAfterCall: {
                allowed_.clear();
                allowed_.set(*t_.calls_end);
                // Another call only when one more surely fits.
                if (parallel_ && static_cast<uint32_t>(remaining) > min_call_ + 1)
                    masker().prefix_tokens("\n", allowed_);
                return apply(logits, n_vocab);
            }
            case State::kLiteral:
            case State::kName: {
                allowed_.clear();
                const bool tight = remaining <= static_cast<int32_t>(literal_budget()) + kTailCost;
                for (const auto& text : pending_texts()) {
                    if (tight) {
                        const int32_t id = masker().longest_prefix_token(text);
                        if (id >= 0) allowed_.set(id);
                    } else {
                        masker().prefix_tokens(text, allowed_);
                    }
                }
                return apply(logits, n_vocab);
            }
            case State::kArgs:
                return args_->mask(logits, n_vocab, std::max(1, remaining - kTailCost));
        }
    }

    void accept(int32_t token) override {
        const std::string& bytes = t_.bytes->bytes(token);
        switch (state_) {
            case State::kFree:
                if (t_.calls_begin && token == *t_.calls_begin) state_ = State::kCallBegin;
                return;
            case State::kCallsBegin:
                state_ = State::kCallBegin;
                return;
            case State::kCallBegin:
                literal_ = "function";
                after_literal_ = State::kSep;
                state_ = State::kLiteral;
                return;
            case State::kSep:
                typed_.clear();
                state_ = State::kName;
                return;
            case State::kLiteral:
                literal_.erase(0, bytes.size());
                if (literal_.empty()) state_ = after_literal_;
                return;
            case State::kName: {
                typed_ += bytes;
                for (const auto& g : tools_)
                    if (typed_ == g.name + "\n```json\n") {
                        args_ = std::make_unique<JsonConstraint>(
                            t_.json, g.args, std::vector<int32_t>{*t_.call_end});
                        state_ = State::kArgs;
                    }
                return;
            }
            case State::kArgs:
                if (token == *t_.call_end) {
                    state_ = State::kAfterCall;
                    return;
                }
                args_->accept(token);
                if (args_->matcher().is_closed()) {
                    literal_ = "\n```";
                    after_literal_ = State::kCallEnd;
                    state_ = State::kLiteral;
                }
                return;
            case State::kCallEnd:
                state_ = State::kAfterCall;
                return;
            case State::kAfterCall:
                state_ = token == *t_.calls_end ? State::kDone : State::kCallBegin;
                return;
            case State::kDone:
                return;
        }
    }

private:
    enum class State {
        kFree,
        kCallsBegin,
        kCallBegin,
        kLiteral,
        kSep,
        kName,
        kArgs,
        kCallEnd,
        kAfterCall,
        kDone
    };

    JsonMasker& masker() {
        if (!masker_) masker_ = std::make_unique<JsonMasker>(t_.json, JsonGrammar::any_object());
        return *masker_;
    }

    // The texts that may come next in a literal or name state.
    std::vector<std::string> pending_texts() const {
        if (state_ == State::kLiteral) return {literal_};
        std::vector<std::string> out;
        for (const auto& g : tools_) {
            const std::string full = g.name + "\n```json\n";
            if (full.starts_with(typed_) && full.size() > typed_.size())
                out.push_back(full.substr(typed_.size()));
        }
        return out;
    }

    // Bytes still to write before the arguments end, at most.
    uint32_t literal_budget() const {
        uint32_t most = 0;
        for (const auto& text : pending_texts()) most = std::max<uint32_t>(most, text.size());
        if (state_ == State::kLiteral && after_literal_ == State::kCallEnd) return most;
        uint32_t args = 0;
        for (const auto& g : tools_) args = std::max(args, g.args->node(g.args->root()).fin_len);
        return most + args + (state_ == State::kLiteral ? 1 + 9 + 64 : 0);
    }

    void only(float* logits, int32_t n_vocab, int32_t id) {
        allowed_.clear();
        allowed_.set(id);
        apply(logits, n_vocab);
    }

    void only_end(float* logits, int32_t n_vocab) {
        allowed_.clear();
        for (int32_t id : end_tokens_) allowed_.set(id);
        apply(logits, n_vocab);
    }

    void apply(float* logits, int32_t n_vocab) {
        if (!allowed_.any()) {  // never leave nothing: end the answer instead
            for (int32_t id : end_tokens_) allowed_.set(id);
        }
        const auto& words = allowed_.words();
        for (int32_t id = 0; id < n_vocab; ++id)
            if (!((words[size_t(id) >> 6] >> (id & 63)) & 1)) logits[id] = kBanned;
    }

    const OutputConstraints::Tables& t_;
    std::vector<ToolGrammar> tools_;
    bool parallel_;
    std::vector<int32_t> end_tokens_;
    TokenSet allowed_;
    State state_;
    State after_literal_ = State::kSep;
    std::string literal_;  // what a literal state still has to write
    std::string typed_;    // a name state's bytes so far
    std::unique_ptr<JsonConstraint> args_;
    std::unique_ptr<JsonMasker> masker_;
    uint32_t min_call_ = 0;
};

}  // namespace

OutputConstraints::OutputConstraints(const Tokenizer& tokenizer, std::vector<int32_t> end_tokens)
    : tok_(tokenizer), end_tokens_(std::move(end_tokens)) {}

OutputConstraints::~OutputConstraints() = default;

const OutputConstraints::Tables& OutputConstraints::tables() {
    std::call_once(once_, [this] {
        auto t = std::make_unique<Tables>();
        t->bytes = TokenBytes::create(tok_);
        t->json = JsonTokenTables::create(t->bytes);
        t->calls_begin = tok_.find_token(kToolCallsBegin);
        t->calls_end = tok_.find_token(kToolCallsEnd);
        t->call_begin = tok_.find_token(kToolCallBegin);
        t->call_end = tok_.find_token(kToolCallEnd);
        t->sep = tok_.find_token(kToolSep);
        for (const char* s : {kToolOutputsBegin, kToolOutputsEnd, kToolOutputBegin, kToolOutputEnd})
            if (auto id = tok_.find_token(s)) t->other_tool_tokens.push_back(*id);
        tables_ = std::move(t);
    });
    return *tables_;
}

Expected<std::shared_ptr<TokenConstraint>> OutputConstraints::for_request(const ApiRequest& r) {
    using Ptr = std::shared_ptr<TokenConstraint>;
    const bool json_output = r.response_format.kind != ResponseFormat::Kind::kText;
    const bool wants_tools = !r.tools.empty() && r.tool_choice != ToolChoice::kNone && !json_output;
    if (!json_output && !wants_tools) {
        // Tool tokens only where a call may be made.
        if (!r.chat || !tok_.find_token(kToolCallsBegin)) return Ptr();
        std::vector<int32_t> banned;
        for (const char* s :
             {kToolCallsBegin, kToolCallsEnd, kToolCallBegin, kToolCallEnd, kToolSep,
              kToolOutputsBegin, kToolOutputsEnd, kToolOutputBegin, kToolOutputEnd})
            if (auto id = tok_.find_token(s)) banned.push_back(*id);
        return Ptr(std::make_shared<NoToolCalls>(std::move(banned)));
    }
    const int32_t max_tokens = r.max_tokens.value_or(INT32_MAX);
    if (json_output) {
        std::shared_ptr<const JsonGrammar> grammar;
        if (r.response_format.kind == ResponseFormat::Kind::kJsonObject) {
            grammar = JsonGrammar::any_object();
        } else {
            auto g = JsonGrammar::compile(r.response_format.schema);
            if (!g) return make_error("response_format.json_schema.schema: " + g.error().message);
            grammar = *g;
        }
        const uint32_t fin = grammar->node(grammar->root()).fin_len;
        if (static_cast<int64_t>(max_tokens) < static_cast<int64_t>(fin) + 1)
            return make_error("max_tokens (" + std::to_string(max_tokens) +
                              ") is too small for the shortest JSON value the schema allows (" +
                              std::to_string(fin) + " bytes)");
        return Ptr(std::make_shared<JsonConstraint>(tables().json, grammar, end_tokens_));
    }
    const Tables& t = tables();
    if (!t.calls_begin || !t.calls_end || !t.call_begin || !t.call_end || !t.sep) {
        // Coder-V2 and other vocabularies without tool tokens: the tools are described in
        // text and calls written as text are parsed, but nothing can be forced.
        if (r.tool_choice == ToolChoice::kRequired || r.tool_choice == ToolChoice::kFunction)
            return make_error(
                "this model's vocabulary has no tool-call tokens, so a call cannot be "
                "required; use tool_choice \"auto\"");
        return Ptr();
    }
    std::vector<ToolGrammar> tools;
    for (const auto& f : r.tools) {
        if (r.tool_choice == ToolChoice::kFunction && f.name != r.tool_choice_name) continue;
        ToolGrammar g;
        g.name = f.name;
        if (f.strict) {
            auto compiled = JsonGrammar::compile(f.parameters);
            if (!compiled)
                return make_error("tools: function '" + f.name +
                                  "' parameters: " + compiled.error().message);
            g.args = *compiled;
        } else {
            g.args = JsonGrammar::any_object();
        }
        tools.push_back(std::move(g));
    }
    const bool forced =
        r.tool_choice == ToolChoice::kRequired || r.tool_choice == ToolChoice::kFunction;
    auto c = std::make_shared<ToolCallConstraint>(t, std::move(tools), forced,
                                                  r.parallel_tool_calls, end_tokens_);
    if (forced && static_cast<int64_t>(max_tokens) < c->min_call_tokens())
        return make_error("max_tokens (" + std::to_string(max_tokens) +
                          ") is too small for the shortest call of the required tool (" +
                          std::to_string(c->min_call_tokens()) + " tokens)");
    return Ptr(c);
}

}  // namespace latent::serve
