// Tests for engine/json_schema.h: what compiles, and errors that name the keyword and
// where it is for everything else.
#include "engine/json_schema.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace latent::engine {
namespace {

using ojson = nlohmann::ordered_json;

Expected<std::shared_ptr<const JsonGrammar>> compile(const std::string& text) {
    return JsonGrammar::compile(ojson::parse(text));
}

std::string error_of(const std::string& text) {
    auto g = compile(text);
    EXPECT_FALSE(g.ok()) << text;
    return g.ok() ? "" : g.error().message;
}

std::string shortest(const std::string& text) {
    auto g = compile(text);
    EXPECT_TRUE(g.ok()) << (g.ok() ? "" : g.error().message);
    if (!g.ok()) return "";
    std::string out;
    (*g)->append_fin((*g)->root(), out);
    return out;
}

TEST(JsonSchema, CompilesTheSupportedKeywords) {
    const char* ok[] = {
        "{}",
        "true",
        R"({"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},
            "required":["a"],"additionalProperties":false,"title":"T","description":"d"})",
        R"({"type":"array","items":{"type":"number"},"minItems":1,"maxItems":3})",
        R"({"type":["string","null"]})",
        R"({"enum":["red","green",1,null,{"a":[1,2]}]})",
        R"({"const":"x","$comment":"c","examples":["x"],"default":"x"})",
        R"({"anyOf":[{"type":"boolean"},{"$ref":"#/$defs/n"}],"$defs":{"n":{"type":"null"}}})",
        R"({"$schema":"https://json-schema.org/draft/2020-12/schema","$id":"x",
            "type":"object","properties":{"next":{"$ref":"#"}}})",
        R"({"definitions":{"t":{"type":"object","properties":{"kids":{"type":"array",
            "items":{"$ref":"#/definitions/t"}}},"required":["kids"]}},"$ref":"#/definitions/t"})",
        R"({"type":"object","additionalProperties":{"type":"integer"}})",
        R"({"properties":{"a":{}}})",
    };
    for (const char* s : ok) {
        auto g = compile(s);
        EXPECT_TRUE(g.ok()) << s << ": " << (g.ok() ? "" : g.error().message);
    }
}

TEST(JsonSchema, UnsupportedKeywordsAreErrorsNamingKeywordAndLocation) {
    EXPECT_EQ(
        error_of(R"({"type":"object","properties":{"name":{"type":"string","pattern":"a+"}}})"),
        "unsupported JSON schema keyword 'pattern' at /properties/name");
    EXPECT_EQ(error_of(R"({"type":"string","format":"date"})"),
              "unsupported JSON schema keyword 'format' at /");
    EXPECT_EQ(error_of(R"({"type":"array","items":{"type":"integer","minimum":3}})"),
              "unsupported JSON schema keyword 'minimum' at /items");
    EXPECT_EQ(error_of(R"({"anyOf":[{"type":"null"},{"oneOf":[]}]})"),
              "unsupported JSON schema keyword 'oneOf' at /anyOf/1");
    EXPECT_EQ(error_of(R"({"$defs":{"a":{"allOf":[]}},"$ref":"#/$defs/a"})"),
              "unsupported JSON schema keyword 'allOf' at /$defs/a");
    EXPECT_EQ(error_of(R"({"properties":{"a/b":{"not":{}}}})"),
              "unsupported JSON schema keyword 'not' at /properties/a~1b");
    for (const char* k : {"minLength", "maxLength", "if", "then", "else", "patternProperties",
                          "uniqueItems", "contains", "prefixItems", "multipleOf", "maximum",
                          "exclusiveMinimum", "dependentRequired", "propertyNames"}) {
        std::string schema = "{\"", quoted = "'";
        schema += k;
        schema += "\":1}";
        quoted += k;
        quoted += '\'';
        const std::string msg = error_of(schema);
        EXPECT_NE(msg.find(quoted), std::string::npos) << msg;
    }
}

TEST(JsonSchema, MalformedSchemasAreErrors) {
    EXPECT_NE(error_of(R"({"type":"text"})").find("'type'"), std::string::npos);
    EXPECT_NE(error_of(R"({"type":"object","properties":{"a":{}},"required":["b"]})")
                  .find("required property 'b'"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"$ref":"#/$defs/missing"})").find("points at nothing"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"$ref":"http://x/y"})").find("not a local"), std::string::npos);
    EXPECT_NE(error_of(R"({"type":"array","minItems":3,"maxItems":2})").find("maxItems"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"enum":[]})").find("enum"), std::string::npos);
    EXPECT_NE(error_of(R"({"anyOf":[]})").find("anyOf"), std::string::npos);
    EXPECT_NE(error_of("false").find("false"), std::string::npos);
    EXPECT_NE(error_of("3").find("must be an object"), std::string::npos);
    EXPECT_NE(error_of(R"({"$ref":"#/$defs/a","type":"string","$defs":{"a":{}}})").find("beside"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"type":"integer","enum":["a","b"]})").find("no 'enum'"),
              std::string::npos);
}

TEST(JsonSchema, CapsAreErrors) {
    std::string deep = "{}";
    for (int i = 0; i < 70; ++i) deep = R"({"type":"array","items":)" + deep + "}";
    EXPECT_NE(error_of(deep).find("deeper than 64"), std::string::npos);

    ojson props = ojson::object();
    for (int i = 0; i < 65; ++i) {
        std::string name = std::to_string(i);
        name.insert(name.begin(), 'p');
        props[name] = {{"type", "null"}};
    }
    auto g = JsonGrammar::compile(ojson{{"type", "object"}, {"properties", props}});
    ASSERT_FALSE(g.ok());
    EXPECT_NE(g.error().message.find("more than the supported 64"), std::string::npos);

    ojson values = ojson::array();
    for (int i = 0; i < 300; ++i) values.push_back(i);
    g = JsonGrammar::compile(ojson{{"enum", values}});
    ASSERT_FALSE(g.ok());
    EXPECT_NE(g.error().message.find("256"), std::string::npos);

    EXPECT_NE(error_of(R"({"type":"array","minItems":100000})").find("minItems"),
              std::string::npos);
    // The shortest value is too long: 256 items of 256 items of a required string.
    EXPECT_NE(error_of(R"({"type":"array","minItems":256,"items":{"type":"array","minItems":256,
                          "items":{"type":"string"}}})")
                  .find("shortest document"),
              std::string::npos);
}

TEST(JsonSchema, SchemasWithNoFiniteDocumentAreErrors) {
    EXPECT_NE(error_of(R"({"type":"object","properties":{"a":{"$ref":"#"}},"required":["a"]})")
                  .find("no finite"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"$defs":{"a":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"})").find("cycle"),
              std::string::npos);
    // Nesting deeper than the matcher allows, required all the way down.
    std::string deep = R"({"type":"null"})";
    for (int i = 0; i < 40; ++i) deep = R"({"type":"array","minItems":1,"items":)" + deep + "}";
    EXPECT_NE(error_of(deep).find("nests"), std::string::npos);
}

TEST(JsonSchema, ShortestValues) {
    EXPECT_EQ(shortest("{}"), "0");
    EXPECT_EQ(shortest(R"({"type":"object"})"), "{}");
    EXPECT_EQ(shortest(R"({"type":"object","properties":{"b":{"type":"string"},
                          "a":{"type":"integer"},"c":{"type":"boolean"}},"required":["c","b"]})"),
              R"({"b":"","c":true})");
    EXPECT_EQ(shortest(R"({"type":"array","minItems":2,"items":{"enum":["xx","y"]}})"),
              R"(["y","y"])");
    EXPECT_EQ(shortest(R"({"anyOf":[{"type":"string"},{"type":"null"},{"type":"integer"}]})"), "0");
    // Recursion through $ref ends at the branch that does not recurse.
    EXPECT_EQ(shortest(R"({"$defs":{"t":{"type":"object","properties":{"v":{"type":"integer"},
                          "kids":{"type":"array","items":{"$ref":"#/$defs/t"}}},
                          "required":["v","kids"]}},"$ref":"#/$defs/t"})"),
              R"({"v":0,"kids":[]})");
}

TEST(JsonSchema, AnyObjectIsShared) {
    auto a = JsonGrammar::any_object();
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a, JsonGrammar::any_object());
    EXPECT_EQ(a->node(a->root()).kind, JsonGrammar::Kind::kFreeObject);
}

}  // namespace
}  // namespace latent::engine
