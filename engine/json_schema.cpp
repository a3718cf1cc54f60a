// JSON schema -> JsonGrammar (see json_schema.h).
#include "engine/json_schema.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

namespace latent::engine {

using json = nlohmann::ordered_json;
using Kind = JsonGrammar::Kind;
using Node = JsonGrammar::Node;

namespace {

// "Infinitely long": a node whose every value recurses forever keeps this, and sums are
// saturated at it so that they cannot overflow.
constexpr uint32_t kInf = 1u << 30;

uint32_t sat_add(uint32_t a, uint32_t b) { return std::min<uint64_t>(kInf, uint64_t(a) + b); }

// Keywords that only annotate: they never change which documents are valid.
const std::set<std::string>& annotation_keywords() {
    static const std::set<std::string> k = {"title",   "description", "default", "examples",
                                            "$schema", "$id",         "$comment"};
    return k;
}

const std::set<std::string>& supported_keywords() {
    static const std::set<std::string> k = {
        "type",       "properties", "required", "additionalProperties",
        "items",      "minItems",   "maxItems", "enum",
        "const",      "anyOf",      "$ref",     "$defs",
        "definitions"};
    return k;
}

std::string pointer_escape(const std::string& key) {
    std::string out;
    for (char c : key) {
        if (c == '~')
            out += "~0";
        else if (c == '/')
            out += "~1";
        else
            out += c;
    }
    return out;
}

std::string where(const std::string& loc) { return loc.empty() ? "/" : loc; }

bool matches_type(const json& v, const std::string& type) {
    if (type == "object") return v.is_object();
    if (type == "array") return v.is_array();
    if (type == "string") return v.is_string();
    if (type == "number") return v.is_number();
    if (type == "integer")
        return v.is_number_integer() || (v.is_number_float() && std::isfinite(v.get<double>()) &&
                                         std::floor(v.get<double>()) == v.get<double>());
    if (type == "boolean") return v.is_boolean();
    if (type == "null") return v.is_null();
    return false;
}

}  // namespace

// Thrown inside the compiler only; compile() turns it into an Error.
struct SchemaError {
    std::string message;
};

class JsonSchemaCompiler {
public:
    explicit JsonSchemaCompiler(const json& root) : root_(root) {}

    std::shared_ptr<JsonGrammar> run() {
        g_ = std::make_shared<JsonGrammar>();
        g_->root_ = compile(root_, "", 0);
        flatten_all();
        derive();
        const Node& r = g_->nodes_[g_->root_];
        if (r.fin_len >= kInf)
            fail(
                "the schema admits no finite JSON document (required properties, minItems or "
                "$ref recurse forever) at /");
        if (r.fin_len > JsonGrammar::kMaxFinishBytes)
            fail("the shortest document the schema admits is " + std::to_string(r.fin_len) +
                 " bytes, more than the supported " + std::to_string(JsonGrammar::kMaxFinishBytes));
        if (r.fin_depth + 1 > JsonGrammar::kMaxNesting + 1)
            fail("the schema's shortest document nests " + std::to_string(r.fin_depth) +
                 " values deep, more than the supported " +
                 std::to_string(JsonGrammar::kMaxNesting));
        return std::move(g_);
    }

private:
    [[noreturn]] static void fail(std::string message) { throw SchemaError{std::move(message)}; }

    uint32_t add(Node n) {
        if (g_->nodes_.size() >= JsonGrammar::kMaxNodes)
            fail("the schema needs more than " + std::to_string(JsonGrammar::kMaxNodes) +
                 " grammar nodes");
        g_->nodes_.push_back(std::move(n));
        return static_cast<uint32_t>(g_->nodes_.size() - 1);
    }

    uint32_t simple(Kind kind, const std::string& loc) {
        Node n;
        n.kind = kind;
        n.location = loc;
        return add(std::move(n));
    }

    uint32_t literal(std::vector<std::string> texts, const std::string& loc) {
        std::sort(texts.begin(), texts.end());
        texts.erase(std::unique(texts.begin(), texts.end()), texts.end());
        Node n;
        n.kind = Kind::kLiteral;
        n.literals = std::move(texts);
        n.location = loc;
        return add(std::move(n));
    }

    // Any JSON value: one shared node (and its object and array) per grammar.
    uint32_t any_value() {
        if (any_) return *any_;
        const uint32_t id = simple(Kind::kAnyOf, "");
        any_ = id;
        Node obj;
        obj.kind = Kind::kFreeObject;
        obj.items = id;
        Node arr;
        arr.kind = Kind::kArray;
        arr.items = id;
        const uint32_t o = add(std::move(obj));
        const uint32_t a = add(std::move(arr));
        const uint32_t s = simple(Kind::kString, "");
        const uint32_t num = simple(Kind::kNumber, "");
        const uint32_t lit = literal({"true", "false", "null"}, "");
        g_->nodes_[id].alts = {o, a, s, num, lit};
        return id;
    }

    uint32_t compile(const json& s, const std::string& loc, int depth) {
        if (depth > JsonGrammar::kMaxSchemaDepth)
            fail("the schema nests deeper than " + std::to_string(JsonGrammar::kMaxSchemaDepth) +
                 " levels at " + where(loc));
        if (s.is_boolean()) {
            if (s.get<bool>()) return any_value();
            fail("schema 'false' admits no value at " + where(loc));
        }
        if (!s.is_object()) fail("a schema must be an object or a boolean at " + where(loc));
        for (const auto& [key, value] : s.items()) {
            if (!supported_keywords().count(key) && !annotation_keywords().count(key))
                fail("unsupported JSON schema keyword '" + key + "' at " + where(loc));
        }
        // Keywords that constrain, besides the definitions that only hold subschemas.
        std::vector<std::string> constraining;
        for (const auto& [key, value] : s.items()) {
            if (!annotation_keywords().count(key) && key != "$defs" && key != "definitions")
                constraining.push_back(key);
        }
        auto alone = [&](const char* keyword) {
            for (const std::string& k : constraining) {
                if (k != keyword)
                    fail("keyword '" + k + "' beside '" + keyword + "' is not supported at " +
                         where(loc));
            }
        };
        if (s.contains("$ref")) {
            alone("$ref");
            return ref(s["$ref"], loc, depth);
        }
        if (s.contains("anyOf")) {
            alone("anyOf");
            const json& list = s["anyOf"];
            if (!list.is_array() || list.empty())
                fail("'anyOf' must be a non-empty array at " + where(loc));
            if (list.size() > JsonGrammar::kMaxAlternatives)
                fail("'anyOf' has " + std::to_string(list.size()) + " branches, more than the " +
                     "supported " + std::to_string(JsonGrammar::kMaxAlternatives) + " at " +
                     where(loc));
            Node n;
            n.kind = Kind::kAnyOf;
            n.location = loc;
            const uint32_t id = add(std::move(n));
            std::vector<uint32_t> alts;
            for (size_t i = 0; i < list.size(); ++i)
                alts.push_back(compile(list[i], loc + "/anyOf/" + std::to_string(i), depth + 1));
            g_->nodes_[id].alts = std::move(alts);
            return id;
        }

        // The types asked for; none means any type (restricted below by what the other
        // keywords are about).
        std::vector<std::string> types;
        if (s.contains("type")) {
            const json& t = s["type"];
            auto check = [&](const json& name) {
                static const std::set<std::string> known = {
                    "object", "array", "string", "number", "integer", "boolean", "null"};
                if (!name.is_string() || !known.count(name.get<std::string>()))
                    fail(
                        "'type' must name JSON types (object, array, string, number, integer, "
                        "boolean, null) at " +
                        where(loc));
                types.push_back(name.get<std::string>());
            };
            if (t.is_array()) {
                if (t.empty()) fail("'type' is an empty array at " + where(loc));
                for (const json& name : t) check(name);
            } else {
                check(t);
            }
        }

        if (s.contains("enum") || s.contains("const")) {
            if (s.contains("enum") && s.contains("const"))
                fail("'enum' beside 'const' is not supported at " + where(loc));
            json values = s.contains("const") ? json::array({s["const"]}) : s["enum"];
            if (!values.is_array() || values.empty())
                fail("'enum' must be a non-empty array at " + where(loc));
            if (values.size() > JsonGrammar::kMaxEnumValues)
                fail("'enum' has " + std::to_string(values.size()) +
                     " values, more than the supported " +
                     std::to_string(JsonGrammar::kMaxEnumValues) + " at " + where(loc));
            std::vector<std::string> texts;
            size_t bytes = 0;
            for (const json& v : values) {
                bool ok = types.empty();
                for (const std::string& t : types) ok = ok || matches_type(v, t);
                if (!ok) continue;  // not of the asked type: not a valid document
                try {
                    texts.push_back(v.dump());
                } catch (const json::exception&) {
                    fail("an 'enum'/'const' value is not valid UTF-8 at " + where(loc));
                }
                bytes += texts.back().size();
            }
            if (bytes > JsonGrammar::kMaxLiteralBytes)
                fail("the 'enum'/'const' values are more than " +
                     std::to_string(JsonGrammar::kMaxLiteralBytes) + " bytes at " + where(loc));
            if (texts.empty())
                fail("no 'enum'/'const' value has the schema's 'type' at " + where(loc));
            // The other keywords could only narrow these further; literals are matched
            // exactly, so check the keywords (done above) and ignore what they say.
            return literal(std::move(texts), loc);
        }

        if (types.empty()) {
            const bool object_words = s.contains("properties") || s.contains("required") ||
                                      s.contains("additionalProperties");
            const bool array_words =
                s.contains("items") || s.contains("minItems") || s.contains("maxItems");
            // Without "type", these keywords constrain only values of their type and any
            // other value is valid: producing only that type is a valid restriction.
            if (object_words) types.push_back("object");
            if (array_words) types.push_back("array");
            if (types.empty()) return any_value();
        }
        std::vector<uint32_t> alts;
        std::set<std::string> seen;
        for (const std::string& t : types) {
            if (!seen.insert(t).second) continue;
            if (t == "object")
                alts.push_back(object(s, loc, depth));
            else if (t == "array")
                alts.push_back(array(s, loc, depth));
            else if (t == "string")
                alts.push_back(simple(Kind::kString, loc));
            else if (t == "number")
                alts.push_back(simple(Kind::kNumber, loc));
            else if (t == "integer")
                alts.push_back(simple(Kind::kInteger, loc));
            else if (t == "boolean")
                alts.push_back(literal({"false", "true"}, loc));
            else
                alts.push_back(literal({"null"}, loc));
        }
        if (alts.size() == 1) return alts[0];
        Node n;
        n.kind = Kind::kAnyOf;
        n.alts = std::move(alts);
        n.location = loc;
        return add(std::move(n));
    }

    uint32_t object(const json& s, const std::string& loc, int depth) {
        const json* props = s.contains("properties") ? &s["properties"] : nullptr;
        if (props && !props->is_object()) fail("'properties' must be an object at " + where(loc));
        if (props && props->size() > JsonGrammar::kMaxProperties)
            fail("'properties' has " + std::to_string(props->size()) +
                 " entries, more than the supported " +
                 std::to_string(JsonGrammar::kMaxProperties) + " at " + where(loc));
        std::set<std::string> required;
        if (s.contains("required")) {
            const json& r = s["required"];
            if (!r.is_array()) fail("'required' must be an array of strings at " + where(loc));
            for (const json& name : r) {
                if (!name.is_string())
                    fail("'required' must be an array of strings at " + where(loc));
                if (!props || !props->contains(name.get<std::string>()))
                    fail("required property '" + name.get<std::string>() +
                         "' is not declared in 'properties' at " + where(loc) +
                         " (only declared properties are generated)");
                required.insert(name.get<std::string>());
            }
        }
        std::optional<uint32_t> extra;  // additionalProperties as a schema
        if (s.contains("additionalProperties")) {
            const json& ap = s["additionalProperties"];
            if (ap.is_object()) {
                extra = compile(ap, loc + "/additionalProperties", depth + 1);
            } else if (!ap.is_boolean()) {
                fail("'additionalProperties' must be a boolean or a schema at " + where(loc));
            }
        }
        const bool closed = s.contains("additionalProperties") &&
                            s["additionalProperties"].is_boolean() &&
                            !s["additionalProperties"].get<bool>();
        if ((!props || props->empty()) && !closed) {
            // No declared property: any keys, each value as additionalProperties says.
            Node n;
            n.kind = Kind::kFreeObject;
            n.items = extra ? *extra : any_value();
            n.location = loc;
            return add(std::move(n));
        }
        Node n;
        n.kind = Kind::kObject;
        n.location = loc;
        const uint32_t id = add(std::move(n));
        std::vector<JsonGrammar::Property> list;
        if (props) {
            // In the order the ordered_json keeps: as declared by the client.
            for (const auto& [key, value] : props->items()) {
                JsonGrammar::Property p;
                p.key_json = json(key).dump();
                if (p.key_json.size() > JsonGrammar::kMaxKeyBytes)
                    fail("property name '" + key.substr(0, 32) + "...' is longer than " +
                         std::to_string(JsonGrammar::kMaxKeyBytes) + " bytes at " + where(loc));
                p.required = required.count(key) > 0;
                p.node = compile(value, loc + "/properties/" + pointer_escape(key), depth + 1);
                list.push_back(std::move(p));
            }
        }
        g_->nodes_[id].props = std::move(list);
        return id;
    }

    uint32_t array(const json& s, const std::string& loc, int depth) {
        Node n;
        n.kind = Kind::kArray;
        n.location = loc;
        auto count = [&](const char* key) -> std::optional<uint64_t> {
            if (!s.contains(key)) return std::nullopt;
            const json& v = s[key];
            if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
                fail(std::string("'") + key + "' must be a non-negative integer at " + where(loc));
            return v.get<uint64_t>();
        };
        const auto min = count("minItems");
        const auto max = count("maxItems");
        if (min && *min > JsonGrammar::kMaxMinItems)
            fail("'minItems' " + std::to_string(*min) + " is more than the supported " +
                 std::to_string(JsonGrammar::kMaxMinItems) + " at " + where(loc));
        if (min && max && *max < *min) fail("'maxItems' is less than 'minItems' at " + where(loc));
        n.min_items = min ? static_cast<uint32_t>(*min) : 0;
        n.max_items =
            max ? static_cast<uint32_t>(std::min<uint64_t>(*max, UINT32_MAX)) : UINT32_MAX;
        const uint32_t id = add(std::move(n));
        uint32_t items = 0;
        if (s.contains("items") && s["items"].is_boolean() && !s["items"].get<bool>()) {
            if (g_->nodes_[id].min_items > 0)
                fail("'items' false with 'minItems' above 0 admits no array at " + where(loc));
            g_->nodes_[id].max_items = 0;
            items = any_value();
        } else if (s.contains("items")) {
            if (s["items"].is_array())
                fail("'items' as an array (tuple validation) is not supported at " + where(loc));
            items = compile(s["items"], loc + "/items", depth + 1);
        } else {
            items = any_value();
        }
        g_->nodes_[id].items = items;
        return id;
    }

    uint32_t ref(const json& r, const std::string& loc, int depth) {
        if (!r.is_string()) fail("'$ref' must be a string at " + where(loc));
        const std::string target = r.get<std::string>();
        if (target.empty() || target[0] != '#')
            fail("'$ref' " + target + " is not a local reference (\"#/...\") at " + where(loc));
        if (auto it = refs_.find(target); it != refs_.end()) return it->second;
        json::json_pointer ptr;
        try {
            ptr = json::json_pointer(target.substr(1));
        } catch (const json::exception&) {
            fail("'$ref' " + target + " is not a valid JSON pointer at " + where(loc));
        }
        if (!root_.contains(ptr)) fail("'$ref' " + target + " points at nothing at " + where(loc));
        // A one-branch anyOf stands for the target until it is compiled, so that a
        // recursive reference finds it; flatten_all() resolves it.
        Node n;
        n.kind = Kind::kAnyOf;
        n.location = target.substr(1);
        const uint32_t id = add(std::move(n));
        refs_[target] = id;
        const uint32_t body = compile(root_[ptr], target.substr(1), depth + 1);
        g_->nodes_[id].alts = {body};
        return id;
    }

    // Every anyOf lists concrete nodes only, so a matcher expands a choice in one step.
    void flatten_all() {
        auto& nodes = g_->nodes_;
        std::vector<std::vector<uint32_t>> flat(nodes.size());
        std::vector<int> state(nodes.size(), 0);  // 0 new, 1 in progress, 2 done
        std::function<void(uint32_t)> visit = [&](uint32_t id) {
            if (state[id] == 2) return;
            if (nodes[id].kind != Kind::kAnyOf) {
                flat[id] = {id};
                state[id] = 2;
                return;
            }
            state[id] = 1;
            std::vector<uint32_t> out;
            for (uint32_t a : nodes[id].alts) {
                if (state[a] == 1) continue;  // a cycle of anyOf/$ref adds nothing
                visit(a);
                for (uint32_t c : flat[a])
                    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
            }
            flat[id] = std::move(out);
            state[id] = 2;
        };
        for (uint32_t id = 0; id < nodes.size(); ++id) visit(id);
        for (uint32_t id = 0; id < nodes.size(); ++id) {
            if (nodes[id].kind != Kind::kAnyOf) continue;
            if (flat[id].empty())
                fail("'$ref' cycle with no schema in it at " + where(nodes[id].location));
            if (flat[id].size() > JsonGrammar::kMaxAlternatives)
                fail("'anyOf' has " + std::to_string(flat[id].size()) +
                     " branches once nested anyOf and $ref are expanded, more than the supported " +
                     std::to_string(JsonGrammar::kMaxAlternatives) + " at " +
                     where(nodes[id].location));
            nodes[id].alts = flat[id];
        }
    }

    // Shortest values by relaxation (values only shrink, so it settles), then the
    // per-object tables and first-byte sets.
    void derive() {
        auto& nodes = g_->nodes_;
        for (Node& n : nodes) {
            n.fin_len = kInf;
            n.fin_depth = kInf;
        }
        auto better = [](uint32_t len, uint32_t d, const Node& n) {
            return len < n.fin_len || (len == n.fin_len && d < n.fin_depth);
        };
        for (bool changed = true; changed;) {
            changed = false;
            for (Node& n : nodes) {
                uint32_t len = kInf, d = kInf, alt = 0;
                switch (n.kind) {
                    case Kind::kAnyOf:
                        for (uint32_t a : n.alts) {
                            const Node& c = nodes[a];
                            if (c.fin_len < len || (c.fin_len == len && c.fin_depth < d)) {
                                len = c.fin_len;
                                d = c.fin_depth;
                                alt = a;
                            }
                        }
                        break;
                    case Kind::kObject: {
                        len = 2;
                        d = 1;
                        bool any = false;
                        for (const auto& p : n.props) {
                            if (!p.required) continue;
                            const Node& c = nodes[p.node];
                            len = sat_add(len,
                                          sat_add(uint32_t(p.key_json.size()) + 1 + (any ? 1 : 0),
                                                  c.fin_len));
                            d = std::max(d, sat_add(c.fin_depth, 1));
                            any = true;
                        }
                        break;
                    }
                    case Kind::kFreeObject:
                        len = 2;
                        d = 1;
                        break;
                    case Kind::kArray: {
                        len = 2;
                        d = 1;
                        if (n.min_items > 0) {
                            const Node& c = nodes[n.items];
                            len = sat_add(len, n.min_items - 1);
                            for (uint32_t i = 0; i < n.min_items; ++i)
                                len = sat_add(len, c.fin_len);
                            d = sat_add(c.fin_depth, 1);
                        }
                        break;
                    }
                    case Kind::kString:
                        len = 2;
                        d = 1;
                        break;
                    case Kind::kNumber:
                    case Kind::kInteger:
                        len = 1;
                        d = 1;
                        break;
                    case Kind::kLiteral:
                        for (uint32_t i = 0; i < n.literals.size(); ++i) {
                            if (n.literals[i].size() < len) {
                                len = uint32_t(n.literals[i].size());
                                alt = i;
                            }
                        }
                        d = 1;
                        break;
                }
                if (len >= kInf) len = kInf;
                if (d >= kInf) d = kInf;
                if (better(len, d, n)) {
                    n.fin_len = len;
                    n.fin_depth = d;
                    n.fin_alt = alt;
                    changed = true;
                }
            }
        }
        for (Node& n : nodes) {
            switch (n.kind) {
                case Kind::kObject:
                case Kind::kFreeObject:
                    n.first.set('{');
                    break;
                case Kind::kArray:
                    n.first.set('[');
                    break;
                case Kind::kString:
                    n.first.set('"');
                    break;
                case Kind::kNumber:
                case Kind::kInteger:
                    n.first.set('-');
                    for (char c = '0'; c <= '9'; ++c) n.first.set(uint8_t(c));
                    break;
                case Kind::kLiteral:
                    for (const std::string& t : n.literals) n.first.set(uint8_t(t[0]));
                    break;
                case Kind::kAnyOf:
                    break;
            }
            if (n.kind == Kind::kObject) {
                const size_t k = n.props.size();
                n.first_required.assign(k + 1, uint32_t(k));
                n.tail_len.assign(k + 1, 1);
                for (size_t i = k; i-- > 0;) {
                    const auto& p = n.props[i];
                    n.first_required[i] = p.required ? uint32_t(i) : n.first_required[i + 1];
                    n.tail_len[i] = n.tail_len[i + 1];
                    if (p.required)
                        n.tail_len[i] = sat_add(
                            n.tail_len[i],
                            sat_add(uint32_t(p.key_json.size()) + 2, nodes[p.node].fin_len));
                }
            }
        }
        for (Node& n : nodes) {
            if (n.kind != Kind::kAnyOf) continue;
            for (uint32_t a : n.alts) n.first |= nodes[a].first;
        }
    }

    const json& root_;
    std::shared_ptr<JsonGrammar> g_;
    std::optional<uint32_t> any_;
    std::map<std::string, uint32_t> refs_;
};

Expected<std::shared_ptr<const JsonGrammar>> JsonGrammar::compile(const nlohmann::json& schema) {
    return compile(json::parse(schema.dump()));
}

Expected<std::shared_ptr<const JsonGrammar>> JsonGrammar::compile(const json& schema) {
    try {
        return std::shared_ptr<const JsonGrammar>(JsonSchemaCompiler(schema).run());
    } catch (const SchemaError& e) {
        return make_error(e.message);
    } catch (const json::exception& e) {
        return make_error(std::string("JSON schema: ") + e.what());
    }
}

std::shared_ptr<const JsonGrammar> JsonGrammar::any_object() {
    static const std::shared_ptr<const JsonGrammar> g = [] {
        auto c = compile(json{{"type", "object"}});
        return c.ok() ? *c : nullptr;  // cannot fail: a fixed, supported schema
    }();
    return g;
}

void JsonGrammar::append_fin(uint32_t id, std::string& out) const {
    const Node& n = nodes_[id];
    switch (n.kind) {
        case Kind::kAnyOf:
            append_fin(n.fin_alt, out);
            return;
        case Kind::kObject: {
            out += '{';
            bool any = false;
            for (const auto& p : n.props) {
                if (!p.required) continue;
                if (any) out += ',';
                out += p.key_json;
                out += ':';
                append_fin(p.node, out);
                any = true;
            }
            out += '}';
            return;
        }
        case Kind::kFreeObject:
            out += "{}";
            return;
        case Kind::kArray:
            out += '[';
            for (uint32_t i = 0; i < n.min_items; ++i) {
                if (i) out += ',';
                append_fin(n.items, out);
            }
            out += ']';
            return;
        case Kind::kString:
            out += "\"\"";
            return;
        case Kind::kNumber:
        case Kind::kInteger:
            out += '0';
            return;
        case Kind::kLiteral:
            out += n.literals[n.fin_alt];
            return;
    }
}

}  // namespace latent::engine
