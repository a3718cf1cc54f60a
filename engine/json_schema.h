// JsonGrammar: a JSON schema compiled into an immutable graph of nodes that JsonMatcher
// (json_matcher.h) walks byte by byte, and the "any JSON object" grammar of
// response_format json_object. It validates nothing and matches no bytes itself.
//
// The grammar describes a subset of the schema's valid documents, chosen so that a model
// can always finish one: objects carry only their declared properties, in declared order
// (optional ones may be left out; valid whatever additionalProperties says), enum and
// const values are written in their compact form, numbers have capped digits. Keywords
// that would need more (pattern, minLength, minimum, oneOf, ...) are errors naming the
// keyword and its place, never silently ignored: a client must not believe its
// constraint holds when it does not.
//
// Thread safety: immutable once compiled; share it (std::shared_ptr<const JsonGrammar>)
// between any number of threads and matchers.
#pragma once

#include <bitset>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "engine/expected.h"

namespace latent::engine {

class JsonGrammar {
public:
    // Caps on what a client's schema may ask for, each answered with an error naming it.
    // They bound compile time and memory, and keep every value finishable well within a
    // request's token budget.
    static constexpr int kMaxSchemaDepth = 64;          // nesting of schema objects
    static constexpr size_t kMaxNodes = 4096;           // compiled nodes
    static constexpr size_t kMaxProperties = 64;        // per object (a 64-bit set in the matcher)
    static constexpr size_t kMaxEnumValues = 256;       // enum values
    static constexpr size_t kMaxLiteralBytes = 32768;   // all enum/const texts together
    static constexpr size_t kMaxKeyBytes = 1024;        // one property name, as JSON
    static constexpr size_t kMaxAlternatives = 16;      // anyOf branches, after flattening
    static constexpr uint32_t kMaxMinItems = 256;       // minItems
    static constexpr uint32_t kMaxFinishBytes = 16384;  // the shortest valid document
    // Values open at once (containers and the scalar inside them) while matching: the
    // nesting cap for free JSON, and the deepest a schema's shortest value may go.
    static constexpr int kMaxNesting = 32;

    enum class Kind : uint8_t {
        kAnyOf,       // one of `alts` (concrete nodes only: anyOf is flattened)
        kObject,      // declared properties, in order
        kFreeObject,  // any keys; each value matches `items` (any JSON value for json_object)
        kArray,       // `items`, between min_items and max_items of them
        kString,      // any string
        kNumber,      // RFC 8259 number
        kInteger,     // number without fraction or exponent
        kLiteral,     // one of `literals` (compact JSON texts): enum, const, booleans, null
    };

    struct Property {
        std::string key_json;  // the key as a JSON string, quotes included: "\"name\""
        uint32_t node = 0;
        bool required = false;
    };

    struct Node {
        Kind kind = Kind::kAnyOf;
        std::vector<uint32_t> alts;         // kAnyOf
        std::vector<Property> props;        // kObject
        uint32_t items = 0;                 // kArray, kFreeObject: the element/value node
        uint32_t min_items = 0;             // kArray
        uint32_t max_items = UINT32_MAX;    // kArray
        std::vector<std::string> literals;  // kLiteral: sorted, distinct
        std::string location;               // JSON pointer in the schema, for messages

        // Derived at compile time. The shortest value ("fin"): its length in bytes, how
        // many values it opens at once, and for kAnyOf the alternative that gives it.
        uint32_t fin_len = 0;
        uint32_t fin_depth = 0;
        uint32_t fin_alt = 0;
        std::bitset<256> first;  // bytes a value of this node can start with
        // kObject: first_required[i] = the first required property >= i (props.size() if
        // none); tail_len[i] = bytes that close the object once properties before i are
        // written and at least one is: ",\"k\":fin" per required one from i, then "}".
        std::vector<uint32_t> first_required;
        std::vector<uint32_t> tail_len;
    };

    // Compiles a JSON schema (draft 2020-12 subset, also the older "definitions").
    // Supported: type (a name or an array of names), properties, required,
    // additionalProperties (a schema for objects without properties), items, minItems,
    // maxItems, enum, const, anyOf, $ref to a local "#/..." pointer (recursion allowed),
    // $defs / definitions, {} / true = any value; annotations (title, description,
    // default, examples, $schema, $id, $comment) are ignored. Errors: any other keyword
    // ("unsupported JSON schema keyword 'pattern' at /properties/name"), a malformed
    // value, a cap exceeded, a schema no finite document satisfies.
    // Properties are generated in the order the ordered_json holds them (as the client
    // declared them when parsed into an ordered_json).
    static Expected<std::shared_ptr<const JsonGrammar>> compile(
        const nlohmann::ordered_json& schema);
    // The same from a nlohmann::json, which keeps object keys sorted: properties come in
    // sorted order.
    static Expected<std::shared_ptr<const JsonGrammar>> compile(const nlohmann::json& schema);

    // json_object: any JSON object (OpenAI requires an object at the top level), values
    // anything, nesting capped at kMaxNesting. Built once, shared.
    static std::shared_ptr<const JsonGrammar> any_object();

    const Node& node(uint32_t id) const { return nodes_[id]; }
    uint32_t root() const { return root_; }
    size_t size() const { return nodes_.size(); }

    // Appends the shortest value of `id` (fin_len bytes).
    void append_fin(uint32_t id, std::string& out) const;

private:
    friend class JsonSchemaCompiler;  // json_schema.cpp
    std::vector<Node> nodes_;
    uint32_t root_ = 0;
};

}  // namespace latent::engine
