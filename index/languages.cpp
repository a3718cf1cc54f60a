// The language table. Grammars are C functions from the npm packages' parser.c; the tags
// queries are generated into tags_queries.cpp by index/CMakeLists.txt.
#include "index/languages.h"

extern "C" {
const TSLanguage* tree_sitter_c();
const TSLanguage* tree_sitter_cpp();
const TSLanguage* tree_sitter_python();
const TSLanguage* tree_sitter_javascript();
const TSLanguage* tree_sitter_typescript();
const TSLanguage* tree_sitter_tsx();
const TSLanguage* tree_sitter_go();
const TSLanguage* tree_sitter_rust();
const TSLanguage* tree_sitter_java();
}

namespace latent::index {

extern const char* const kTagsQuery_c;
extern const char* const kTagsQuery_cpp;
extern const char* const kTagsQuery_python;
extern const char* const kTagsQuery_javascript;
extern const char* const kTagsQuery_typescript;
extern const char* const kTagsQuery_tsx;
extern const char* const kTagsQuery_go;
extern const char* const kTagsQuery_rust;
extern const char* const kTagsQuery_java;

const std::vector<Language>& languages() {
    // ".h" goes to C++: a C header parses as C++ nearly always, the reverse is not true.
    static const std::vector<Language> table = {
        {"c", {".c"}, tree_sitter_c, kTagsQuery_c, {"preproc_include"}},
        {"cpp",
         {".cc", ".cpp", ".cxx", ".c++", ".h", ".hh", ".hpp", ".hxx", ".ipp", ".inl", ".cu",
          ".cuh"},
         tree_sitter_cpp,
         kTagsQuery_cpp,
         {"preproc_include", "using_declaration"}},
        {"python",
         {".py", ".pyi"},
         tree_sitter_python,
         kTagsQuery_python,
         {"import_statement", "import_from_statement"}},
        {"javascript",
         {".js", ".jsx", ".mjs", ".cjs"},
         tree_sitter_javascript,
         kTagsQuery_javascript,
         {"import_statement"}},
        {"typescript",
         {".ts", ".mts", ".cts"},
         tree_sitter_typescript,
         kTagsQuery_typescript,
         {"import_statement"}},
        {"tsx", {".tsx"}, tree_sitter_tsx, kTagsQuery_tsx, {"import_statement"}},
        {"go", {".go"}, tree_sitter_go, kTagsQuery_go, {"import_spec"}},
        {"rust", {".rs"}, tree_sitter_rust, kTagsQuery_rust, {"use_declaration"}},
        {"java", {".java"}, tree_sitter_java, kTagsQuery_java, {"import_declaration"}},
    };
    return table;
}

const Language* language_for_path(std::string_view path) {
    const auto slash = path.find_last_of('/');
    const auto base = slash == std::string_view::npos ? path : path.substr(slash + 1);
    const auto dot = base.find_last_of('.');
    if (dot == std::string_view::npos || dot == 0) return nullptr;
    const auto ext = base.substr(dot);
    for (const auto& lang : languages())
        for (auto e : lang.extensions)
            if (e == ext) return &lang;
    return nullptr;
}

const Language* language_named(std::string_view name) {
    for (const auto& lang : languages())
        if (lang.name == name) return &lang;
    return nullptr;
}

}  // namespace latent::index
