// A small JSON schema validator for tests, written apart from engine/json_schema.* and
// engine/json_matcher.* (it shares no code with them) so that it can judge their output.
// It knows the keywords the engine supports: type, properties, required,
// additionalProperties, items, minItems, maxItems, enum, const, anyOf, local $ref.
// Not a general validator: other keywords are ignored.
//
// Thread safety: pure functions.
#pragma once

#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

namespace latent::test {

// Empty when `value` satisfies `schema` (whose local $refs resolve against `root`), else
// the first reason it does not, with the path in the value.
inline std::string schema_violation(const nlohmann::json& value, const nlohmann::json& schema,
                                    const nlohmann::json& root, const std::string& path = "") {
    using nlohmann::json;
    if (schema.is_boolean()) return schema.get<bool>() ? "" : path + ": schema false";
    if (schema.contains("$ref")) {
        const std::string ref = schema["$ref"].get<std::string>();
        return schema_violation(value, root.at(json::json_pointer(ref.substr(1))), root, path);
    }
    if (schema.contains("anyOf")) {
        for (const json& alt : schema["anyOf"])
            if (schema_violation(value, alt, root, path).empty()) return "";
        return path + ": matches no anyOf branch";
    }
    auto is_type = [&](const std::string& t) {
        if (t == "object") return value.is_object();
        if (t == "array") return value.is_array();
        if (t == "string") return value.is_string();
        if (t == "number") return value.is_number();
        if (t == "integer")
            return value.is_number_integer() ||
                   (value.is_number_float() &&
                    std::floor(value.get<double>()) == value.get<double>());
        if (t == "boolean") return value.is_boolean();
        if (t == "null") return value.is_null();
        return false;
    };
    if (schema.contains("type")) {
        bool ok = false;
        if (schema["type"].is_array()) {
            for (const json& t : schema["type"]) ok = ok || is_type(t.get<std::string>());
        } else {
            ok = is_type(schema["type"].get<std::string>());
        }
        if (!ok) return path + ": not of type " + schema["type"].dump() + ": " + value.dump();
    }
    auto equal = [](const json& a, const json& b) {
        if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
        return a == b;
    };
    if (schema.contains("const") && !equal(value, schema["const"]))
        return path + ": not the const " + schema["const"].dump();
    if (schema.contains("enum")) {
        bool found = false;
        for (const json& v : schema["enum"]) found = found || equal(value, v);
        if (!found) return path + ": not in the enum: " + value.dump();
    }
    if (value.is_object()) {
        const json props = schema.value("properties", json::object());
        for (const json& r : schema.value("required", json::array())) {
            if (!value.contains(r.get<std::string>()))
                return path + ": required property " + r.dump() + " missing";
        }
        for (const auto& [k, v] : value.items()) {
            if (props.contains(k)) {
                if (auto e = schema_violation(v, props[k], root, path + "/" + k); !e.empty())
                    return e;
            } else if (schema.contains("additionalProperties")) {
                if (auto e =
                        schema_violation(v, schema["additionalProperties"], root, path + "/" + k);
                    !e.empty())
                    return e;
            }
        }
    }
    if (value.is_array()) {
        if (schema.contains("minItems") && value.size() < schema["minItems"].get<size_t>())
            return path + ": fewer than minItems";
        if (schema.contains("maxItems") && value.size() > schema["maxItems"].get<size_t>())
            return path + ": more than maxItems";
        if (schema.contains("items")) {
            for (size_t i = 0; i < value.size(); ++i) {
                if (auto e = schema_violation(value[i], schema["items"], root,
                                              path + "/" + std::to_string(i));
                    !e.empty())
                    return e;
            }
        }
    }
    return "";
}

}  // namespace latent::test
