// Words of source code: keywords, families and the comment/string lexer (code_words.h).
#include "agent/code_words.h"

#include <unordered_set>

#include "index/languages.h"

namespace latent::agent {

bool keyword(std::string_view w) {
    static const std::unordered_set<std::string_view> k = {
        "return",    "delete",   "default", "function",   "class",     "const",   "while",
        "break",     "continue", "switch",  "throw",      "catch",     "finally", "import",
        "export",    "extends",  "typeof",  "instanceof", "void",      "yield",   "await",
        "async",     "static",   "struct",  "union",      "enum",      "typedef", "sizeof",
        "goto",      "else",     "case",    "this",       "super",     "true",    "false",
        "null",      "None",     "True",    "False",      "self",      "lambda",  "global",
        "from",      "with",     "pass",    "raise",      "elif",      "assert",  "nonlocal",
        "interface", "type",     "public",  "private",    "protected", "package", "implements",
        "undefined", "then",     "next",    "get",        "set"};
    return k.count(w) > 0;
}

std::string family_of(const std::string& path) {
    const index::Language* l = index::language_for_path(path);
    if (!l) return "";
    const std::string_view n = l->name;
    if (n == "c" || n == "cpp") return "c/c++";
    if (n == "javascript" || n == "typescript" || n == "tsx") return "ts/js";
    return std::string(n);
}

std::vector<uint8_t> non_code_mask(const std::string& text, const std::string& family) {
    std::vector<uint8_t> mask(text.size(), 0);
    const bool python = family == "python";
    const size_t n = text.size();
    auto mark = [&](size_t a, size_t b) {
        for (size_t k = a; k < b && k < n; ++k) mask[k] = 1;
    };
    size_t i = 0;
    while (i < n) {
        const char c = text[i];
        if (python && c == '#') {
            size_t e = text.find('\n', i);
            if (e == std::string::npos) e = n;
            mark(i, e);
            i = e;
        } else if (!python && c == '/' && i + 1 < n && text[i + 1] == '/') {
            size_t e = text.find('\n', i);
            if (e == std::string::npos) e = n;
            mark(i, e);
            i = e;
        } else if (!python && c == '/' && i + 1 < n && text[i + 1] == '*') {
            size_t e = text.find("*/", i + 2);
            e = e == std::string::npos ? n : e + 2;
            mark(i, e);
            i = e;
        } else if (python && (c == '"' || c == '\'') && i + 2 < n && text[i + 1] == c &&
                   text[i + 2] == c) {
            const std::string close(3, c);
            size_t k = i + 3;
            while (k < n && text.compare(k, 3, close) != 0) k += text[k] == '\\' ? 2 : 1;
            const size_t e = std::min(n, k + 3);
            mark(i, e);
            i = e;
        } else if (c == '`' && (family == "go" || family == "ts/js")) {
            size_t k = i + 1;
            while (k < n && text[k] != '`') k += (family == "ts/js" && text[k] == '\\') ? 2 : 1;
            const size_t e = std::min(n, k + 1);
            mark(i, e);
            i = e;
        } else if (c == '"' || c == '\'') {
            if (c == '\'' && family == "rust" && i + 2 < n && ident_char(text[i + 1]) &&
                text[i + 2] != '\'') {
                ++i;  // a lifetime, not a char literal
                continue;
            }
            if (c == '\'' && family == "c/c++" && i > 0 &&
                std::isxdigit((unsigned char)text[i - 1])) {
                ++i;  // a digit separator (1'000)
                continue;
            }
            size_t k = i + 1;
            while (k < n && text[k] != c && text[k] != '\n') k += text[k] == '\\' ? 2 : 1;
            const size_t e = std::min(n, k + 1);
            mark(i, e);
            i = e;
        } else if (ident_char(static_cast<unsigned char>(c))) {
            while (i < n && ident_char(static_cast<unsigned char>(text[i]))) ++i;  // a word
        } else {
            ++i;
        }
    }
    return mask;
}

}  // namespace latent::agent
