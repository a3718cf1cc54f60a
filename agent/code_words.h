// Words of source code for the benchmarks that take real code apart (bench next-edit,
// bench context): identifiers, keywords, language families, and which bytes lie in
// comments or strings — by a simple lexer, not a parser (the index's tree-sitter is what
// is being measured, so the benchmarks' truth must not come from it).
#pragma once

#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace latent::agent {

// A keyword of one of the languages measured: ctags reports some as names (a TypeScript
// property called "return", "delete"), and a token search for them finds every keyword.
bool keyword(std::string_view w);

// Language families: a name used in a C header and a C++ source is one name; Python,
// TS/JS, Go, Rust and Java each stand alone. "" for a file of no known language.
std::string family_of(const std::string& path);

inline bool ident_char(unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

// Bytes of `text` inside comments or string literals (1) or code (0), by a simple lexer:
// line and block comments, quoted strings with escapes (ending at an unescaped newline
// unless the language has multi-line strings), Python's triple quotes, Go's and JS's
// backquoted strings (a template's ${…} counts as string), Rust's lifetimes ('a) left as
// code. Regex literals and raw strings with delimiters are not recognised.
std::vector<uint8_t> non_code_mask(const std::string& text, const std::string& family);

// Calls f(offset, word) for every identifier-like word of `text` (numbers skipped).
template <class F>
void for_each_word(const std::string& text, F&& f) {
    const size_t n = text.size();
    size_t i = 0;
    while (i < n) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (!ident_char(c)) {
            ++i;
            continue;
        }
        const size_t s = i;
        while (i < n && ident_char(static_cast<unsigned char>(text[i]))) ++i;
        if (!std::isdigit(c)) f(s, std::string_view(text).substr(s, i - s));
    }
}

}  // namespace latent::agent
