// ApiRequest: JSON body -> typed, validated request (see api_request.h).
#include "engine/serve/api_request.h"

#include <cmath>

namespace latent::serve {

using engine::Expected;
using engine::make_error;
using json = nlohmann::ordered_json;

bool json_nesting_within(std::string_view text, int max_depth) {
    int depth = 0;
    bool in_string = false, escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) return false;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return true;
}

Expected<json> parse_json_body(std::string_view body) {
    if (!json_nesting_within(body, kMaxJsonDepth))
        return make_error("the body nests arrays or objects deeper than " +
                          std::to_string(kMaxJsonDepth) + " levels");
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded()) return make_error("the body is not valid JSON");
    if (!j.is_object()) return make_error("the body must be a JSON object");
    return j;
}

namespace {

// A client's error: the field and what was wrong with it.
struct Invalid {
    std::string message;
};

const json* field(const json& o, const char* key) {
    auto it = o.find(key);
    if (it == o.end() || it->is_null()) return nullptr;
    return &*it;
}

std::string str(const json& o, const char* key, const std::string& fallback = "") {
    const json* v = field(o, key);
    if (!v) return fallback;
    if (!v->is_string()) throw Invalid{std::string("'") + key + "' must be a string"};
    return v->get<std::string>();
}

bool boolean(const json& o, const char* key, bool fallback) {
    const json* v = field(o, key);
    if (!v) return fallback;
    if (!v->is_boolean()) throw Invalid{std::string("'") + key + "' must be true or false"};
    return v->get<bool>();
}

double number(const json& o, const char* key, double fallback, double lo, double hi) {
    const json* v = field(o, key);
    if (!v) return fallback;
    if (!v->is_number()) throw Invalid{std::string("'") + key + "' must be a number"};
    const double x = v->get<double>();
    if (!std::isfinite(x) || x < lo || x > hi)
        throw Invalid{std::string("'") + key + "' must be in [" + std::to_string(lo) + ", " +
                      std::to_string(hi) + "]"};
    return x;
}

int64_t integer(const json& o, const char* key, int64_t fallback, int64_t lo, int64_t hi) {
    const json* v = field(o, key);
    if (!v) return fallback;
    if (!v->is_number_integer()) throw Invalid{std::string("'") + key + "' must be an integer"};
    // Unsigned values past int64 compare as out of range, not wrapped.
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi))
        throw Invalid{std::string("'") + key + "' must be at most " + std::to_string(hi)};
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi)
        throw Invalid{std::string("'") + key + "' must be in [" + std::to_string(lo) + ", " +
                      std::to_string(hi) + "]"};
    return x;
}

// Text of an OpenAI message content: a string or an array of {type: "text", text} parts.
std::string content_text(const json* c) {
    if (!c) return {};
    if (c->is_string()) return c->get<std::string>();
    if (!c->is_array()) throw Invalid{"message content must be a string or an array of parts"};
    std::string out;
    for (const auto& part : *c) {
        if (!part.is_object()) throw Invalid{"a content part must be an object"};
        const std::string type = str(part, "type");
        if (type != "text")
            throw Invalid{"content parts of type '" + type.substr(0, 40) +
                          "' are not supported (only 'text')"};
        out += str(part, "text");
    }
    return out;
}

// The fields both endpoints share.
void common(const json& body, ApiRequest& r, bool chat) {
    const int64_t kMaxTokens = 1 << 24;
    for (const char* key : {"max_tokens", "max_completion_tokens"}) {
        if (field(body, key))
            r.max_tokens = static_cast<int32_t>(integer(body, key, 0, 1, kMaxTokens));
    }
    auto& sp = r.sampling;
    sp.temperature = static_cast<float>(number(body, "temperature", 1.0, 0, 2));
    sp.top_p = static_cast<float>(number(body, "top_p", 1.0, 0, 1));
    if (sp.top_p == 0) sp.top_p = 1e-6f;  // OpenAI accepts 0: "only the most likely"
    sp.top_k = static_cast<int32_t>(integer(body, "top_k", 0, 0, 1 << 20));  // not OpenAI's
    sp.min_p = static_cast<float>(number(body, "min_p", 0.0, 0, 1));
    sp.repeat_penalty = static_cast<float>(number(body, "repeat_penalty", 1.0, 0.01, 10));
    if (field(body, "seed")) {
        const json& s = body["seed"];
        if (!s.is_number_integer()) throw Invalid{"'seed' must be an integer"};
        sp.seed =
            s.is_number_unsigned() ? s.get<uint64_t>() : static_cast<uint64_t>(s.get<int64_t>());
    }
    if (auto st = sp.validate(); !st) throw Invalid{st.error().message};
    r.frequency_penalty = static_cast<float>(number(body, "frequency_penalty", 0, -2, 2));
    r.presence_penalty = static_cast<float>(number(body, "presence_penalty", 0, -2, 2));
    if (const json* s = field(body, "stop")) {
        if (s->is_string()) {
            r.stop.push_back(s->get<std::string>());
        } else if (s->is_array()) {
            if (s->size() > engine::StopMatcher::kMaxStopStrings)
                throw Invalid{"'stop' may hold at most " +
                              std::to_string(engine::StopMatcher::kMaxStopStrings) + " strings"};
            for (const auto& x : *s) {
                if (!x.is_string()) throw Invalid{"'stop' must be a string or an array of strings"};
                r.stop.push_back(x.get<std::string>());
            }
        } else {
            throw Invalid{"'stop' must be a string or an array of strings"};
        }
    }
    r.stream = boolean(body, "stream", false);
    if (const json* so = field(body, "stream_options")) {
        if (!so->is_object()) throw Invalid{"'stream_options' must be an object"};
        r.include_usage = boolean(*so, "include_usage", false);
    }
    r.n = static_cast<int32_t>(integer(body, "n", 1, 1, kMaxChoices));
    const std::string priority = str(body, "priority");
    if (!priority.empty() && priority != "warm" && priority != "normal")
        throw Invalid{"'priority' must be \"warm\" or \"normal\""};
    r.warm = priority == "warm";
    (void)chat;
}

std::vector<engine::ToolCallText> tool_calls_of(const json& calls) {
    if (!calls.is_array()) throw Invalid{"'tool_calls' must be an array"};
    std::vector<engine::ToolCallText> out;
    for (const auto& c : calls) {
        if (!c.is_object()) throw Invalid{"each tool call must be an object"};
        const json* f = field(c, "function");
        if (!f || !f->is_object()) throw Invalid{"a tool call needs a 'function' object"};
        engine::ToolCallText t;
        t.id = str(c, "id");
        t.name = str(*f, "name");
        if (t.name.empty()) throw Invalid{"a tool call's function needs a 'name'"};
        t.arguments = str(*f, "arguments", "{}");
        out.push_back(std::move(t));
    }
    return out;
}

ToolFunction tool_of(const json& t) {
    if (!t.is_object()) throw Invalid{"each tool must be an object"};
    if (str(t, "type", "function") != "function")
        throw Invalid{"tools of type '" + str(t, "type").substr(0, 40) +
                      "' are not supported (only 'function')"};
    const json* f = field(t, "function");
    if (!f || !f->is_object()) throw Invalid{"a tool needs a 'function' object"};
    ToolFunction fn;
    fn.name = str(*f, "name");
    if (fn.name.empty() || fn.name.size() > 64)
        throw Invalid{"a function's 'name' must have 1 to 64 characters"};
    for (char c : fn.name)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'))
            throw Invalid{"function name '" + fn.name +
                          "' may hold only letters, digits, '_' and '-'"};
    fn.description = str(*f, "description");
    if (const json* p = field(*f, "parameters")) {
        if (!p->is_object())
            throw Invalid{"function '" + fn.name + "': 'parameters' must be an object"};
        fn.parameters = *p;
    }
    fn.strict = boolean(*f, "strict", false);
    return fn;
}

// tools, tool_choice, parallel_tool_calls and response_format of a chat body, into r
// (whose messages and prefix are set already).
void output_options(const json& body, ApiRequest& r) {
    if (const json* ts = field(body, "tools")) {
        if (!ts->is_array()) throw Invalid{"'tools' must be an array"};
        if (ts->size() > kMaxTools)
            throw Invalid{"at most " + std::to_string(kMaxTools) + " tools"};
        for (const auto& t : *ts) r.tools.push_back(tool_of(t));
        for (size_t i = 0; i < r.tools.size(); ++i)
            for (size_t j = 0; j < i; ++j)
                if (r.tools[i].name == r.tools[j].name)
                    throw Invalid{"two tools are named '" + r.tools[i].name + "'"};
    }
    r.tool_choice = r.tools.empty() ? ToolChoice::kNone : ToolChoice::kAuto;
    if (const json* tc = field(body, "tool_choice")) {
        if (tc->is_string()) {
            const std::string s = tc->get<std::string>();
            if (s == "none")
                r.tool_choice = ToolChoice::kNone;
            else if (s == "auto")
                r.tool_choice = r.tools.empty() ? ToolChoice::kNone : ToolChoice::kAuto;
            else if (s == "required")
                r.tool_choice = ToolChoice::kRequired;
            else
                throw Invalid{"'tool_choice' must be none, auto, required or a function"};
        } else if (tc->is_object()) {
            const json* f = field(*tc, "function");
            if (!f || !f->is_object()) throw Invalid{"'tool_choice' needs a 'function' object"};
            r.tool_choice = ToolChoice::kFunction;
            r.tool_choice_name = str(*f, "name");
            bool known = false;
            for (const auto& t : r.tools) known = known || t.name == r.tool_choice_name;
            if (!known)
                throw Invalid{"'tool_choice' names '" + r.tool_choice_name.substr(0, 64) +
                              "', which is not among 'tools'"};
        } else {
            throw Invalid{"'tool_choice' must be a string or an object"};
        }
        if (r.tool_choice == ToolChoice::kRequired && r.tools.empty())
            throw Invalid{"'tool_choice' is 'required' but there are no 'tools'"};
    }
    r.parallel_tool_calls = boolean(body, "parallel_tool_calls", true);
    if (const json* rf = field(body, "response_format")) {
        if (!rf->is_object()) throw Invalid{"'response_format' must be an object"};
        const std::string type = str(*rf, "type");
        if (type == "text") {
            r.response_format.kind = ResponseFormat::Kind::kText;
        } else if (type == "json_object") {
            r.response_format.kind = ResponseFormat::Kind::kJsonObject;
        } else if (type == "json_schema") {
            const json* js = field(*rf, "json_schema");
            if (!js || !js->is_object())
                throw Invalid{"'response_format.json_schema' must be an object"};
            r.response_format.kind = ResponseFormat::Kind::kJsonSchema;
            r.response_format.name = str(*js, "name");
            r.response_format.strict = boolean(*js, "strict", false);
            const json* schema = field(*js, "schema");
            if (!schema || !schema->is_object())
                throw Invalid{"'response_format.json_schema.schema' must be an object"};
            r.response_format.schema = *schema;
        } else {
            throw Invalid{"'response_format.type' must be text, json_object or json_schema"};
        }
    }
    if (r.response_format.kind != ResponseFormat::Kind::kText && r.prefix)
        throw Invalid{"'response_format' cannot be combined with an assistant prefix"};
    if (r.response_format.kind != ResponseFormat::Kind::kText &&
        (r.tool_choice == ToolChoice::kRequired || r.tool_choice == ToolChoice::kFunction))
        throw Invalid{"'response_format' cannot be combined with a required tool call"};
}

}  // namespace

Expected<ApiRequest> parse_completion_request(const json& body) try {
    ApiRequest r;
    r.chat = false;
    const json* p = field(body, "prompt");
    if (!p) throw Invalid{"'prompt' is required"};
    if (p->is_string()) {
        r.prompt = p->get<std::string>();
    } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
        r.prompt = (*p)[0].get<std::string>();
    } else if (p->is_array() && !p->empty() && (*p)[0].is_number_integer()) {
        for (const auto& v : *p) {
            if (!v.is_number_integer()) throw Invalid{"'prompt' token ids must be integers"};
            const int64_t id = v.get<int64_t>();
            if (id < 0 || id > INT32_MAX) throw Invalid{"'prompt' token id out of range"};
            r.prompt_ids.push_back(static_cast<int32_t>(id));
        }
    } else {
        throw Invalid{"'prompt' must be a string, one string in an array, or token ids"};
    }
    if (field(body, "suffix")) r.suffix = str(body, "suffix");
    r.echo = boolean(body, "echo", false);
    if (field(body, "logprobs"))
        r.logprobs = static_cast<int32_t>(integer(body, "logprobs", 0, 0, kMaxLogprobs));
    common(body, r, false);
    if (r.echo && r.suffix) throw Invalid{"'echo' cannot be combined with 'suffix'"};
    return r;
} catch (const Invalid& e) {
    return make_error(e.message);
}

Expected<ApiRequest> parse_chat_request(const json& body) try {
    ApiRequest r;
    r.chat = true;
    const json* ms = field(body, "messages");
    if (!ms || !ms->is_array() || ms->empty())
        throw Invalid{"'messages' must be a non-empty array"};
    if (ms->size() > kMaxMessages)
        throw Invalid{"at most " + std::to_string(kMaxMessages) + " messages"};
    for (size_t i = 0; i < ms->size(); ++i) {
        const json& m = (*ms)[i];
        if (!m.is_object()) throw Invalid{"each message must be an object"};
        engine::ChatMessage out;
        out.role = str(m, "role");
        if (out.role == "developer") out.role = "system";  // OpenAI's newer name
        if (out.role != "system" && out.role != "user" && out.role != "assistant" &&
            out.role != "tool")
            throw Invalid{"unknown role '" + out.role.substr(0, 40) + "'"};
        out.content = content_text(field(m, "content"));
        if (out.role == "assistant") {
            if (const json* calls = field(m, "tool_calls")) out.tool_calls = tool_calls_of(*calls);
            if (boolean(m, "prefix", false)) {
                if (i + 1 != ms->size())
                    throw Invalid{"only the last message may be an assistant prefix"};
                if (!out.tool_calls.empty())
                    throw Invalid{"an assistant prefix cannot hold tool calls"};
                r.prefix = true;
            }
        } else if (field(m, "prefix") && boolean(m, "prefix", false)) {
            throw Invalid{"'prefix' is for the last assistant message only"};
        }
        if (out.role == "tool") out.tool_call_id = str(m, "tool_call_id");
        r.messages.push_back(std::move(out));
    }
    output_options(body, r);
    r.chat_logprobs = boolean(body, "logprobs", false);
    r.top_logprobs = static_cast<int32_t>(integer(body, "top_logprobs", 0, 0, kMaxLogprobs));
    if (r.top_logprobs > 0 && !r.chat_logprobs)
        throw Invalid{"'top_logprobs' needs 'logprobs': true"};
    common(body, r, true);
    return r;
} catch (const Invalid& e) {
    return make_error(e.message);
}

engine::Status parse_chat_output_options(const json& body, ApiRequest& r) try {
    output_options(body, r);
    return engine::Status();
} catch (const Invalid& e) {
    return make_error(e.message);
}

}  // namespace latent::serve
