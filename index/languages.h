// The languages the index understands: one row per language mapping file extensions to
// a tree-sitter grammar and its tags query (from the grammar's npm package). Not the
// extraction itself (extract.h); adding a language is one row here plus its package.
#pragma once

#include <string_view>
#include <vector>

struct TSLanguage;

namespace latent::index {

struct Language {
    std::string_view name;                     // "cpp", "python", ... (stored in the index)
    std::vector<std::string_view> extensions;  // with the dot: ".cc"
    const TSLanguage* (*grammar)();            // tree_sitter_<lang>()
    const char* tags_query;                    // queries/tags.scm, embedded at build time
    // Node types whose text is one import of the file (empty: the grammar has none).
    std::vector<std::string_view> import_types;
};

// All rows, in a fixed order. Thread-safe (immutable after first use).
const std::vector<Language>& languages();

// The language for a path by its extension (case-sensitive, as compilers treat them),
// or nullptr when the file is not source the index understands.
const Language* language_for_path(std::string_view path);

// The language by name, or nullptr.
const Language* language_named(std::string_view name);

}  // namespace latent::index
