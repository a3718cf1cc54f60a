// Extraction: one tree-sitter parse of one file's text into what the index stores —
// definitions, references, chunks and imports. Pure computation: no files, no SQLite
// (store.h keeps the results, indexer.h decides what to parse).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "index/languages.h"

namespace latent::index {

// 0-based line; column in bytes (UTF-8), as tree-sitter reports them.
struct Point {
    uint32_t line = 0;
    uint32_t column = 0;
    friend bool operator==(const Point&, const Point&) = default;
};

struct Range {
    Point start, end;
    uint32_t start_byte = 0, end_byte = 0;  // [start_byte, end_byte) in the file
    friend bool operator==(const Range&, const Range&) = default;
};

struct Definition {
    std::string name;
    std::string kind;       // from the tags query capture: function, method, class, ...
    std::string container;  // enclosing class/namespace/impl/function name, or ""
    Range range;            // the whole definition (function with its body, class, ...)
    Range name_range;       // just the name
    std::string signature;  // the source line holding the name, trimmed (≤ kMaxLineBytes)
    std::string doc;        // the comment just above (or Python docstring), markers stripped
};

// An identifier used (not defined) at a position.
struct Reference {
    std::string name;
    Point position;
    uint32_t byte = 0;
};

// A piece of the file for retrieval: a whole small definition, part of a long one
// (split at its children's boundaries), or the code between definitions.
struct Chunk {
    Range range;
    std::string kind;  // "definition", "part" (of a long definition), "gap", "text" (no tree)
    std::string name;  // the definition's name for "definition" and "part", else ""
};

struct Import {
    std::string text;  // the statement, whitespace collapsed (≤ kMaxLineBytes)
    uint32_t line = 0;
};

struct Extraction {
    std::vector<Definition> definitions;  // in source order of their name
    std::vector<Reference> references;    // in source order
    std::vector<Chunk> chunks;            // in source order, non-overlapping
    std::vector<Import> imports;
    bool timed_out = false;   // the parse hit the time limit: only line chunks were made
    bool has_errors = false;  // the tree has ERROR nodes (still extracted as far as it goes)
};

struct ExtractOptions {
    // A parse that takes longer than this is abandoned (pathological or generated
    // input must not stall the indexer); the file then gets line chunks only. Default 2 s.
    uint64_t timeout_micros = 2'000'000;
    // Chunks aim at this many bytes (~ 400 tokens): a node bigger than this is split at
    // its children's boundaries; small neighbours are merged up to it. Default 1600.
    uint32_t chunk_bytes = 1600;
    // References beyond this many in one file are dropped (a generated file could
    // otherwise add millions of rows). Default 50 000.
    uint32_t max_references = 50'000;
    // Run the tags query over the whole tree instead of at the nodes its patterns can
    // start at (the plain form the targeted one is checked against). Default off.
    bool whole_tree_query = false;
};

constexpr size_t kMaxLineBytes = 240;  // signature and import text are capped at this

// Holds a parser and a query cursor. Not thread-safe: use one per thread. The compiled
// tags queries are shared between all Extractors (built once, immutable).
class Extractor {
public:
    explicit Extractor(ExtractOptions options = {});
    ~Extractor();
    Extractor(const Extractor&) = delete;
    Extractor& operator=(const Extractor&) = delete;

    // Parses `text` (any bytes; invalid UTF-8 is tolerated) as `language`. Never throws
    // for bad input; on a timeout returns line chunks only with timed_out set.
    Extraction extract(const Language& language, std::string_view text);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Checks that every row of languages() has a grammar the core accepts and a tags query
// that compiles; returns "" or the first problem. (Tests call it; the build checks ABI.)
std::string check_languages();

// Whether the language's tags query runs only at the nodes its patterns can start at
// (every enabled pattern's root node types are known); otherwise it runs over the whole
// tree, which costs about as much as the parse.
bool targeted_query(const Language& language);

}  // namespace latent::index
