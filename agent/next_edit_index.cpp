// Index-driven next edits (see next_edit_index.h).
#include "agent/next_edit_index.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include "agent/text_lines.h"
#include "index/extract.h"
#include "index/languages.h"

namespace latent::agent {

namespace {

bool ident_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$' || c >= 0x80;
}
bool ident_start(unsigned char c) { return ident_char(c) && !(c >= '0' && c <= '9'); }
bool space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

struct Token {
    std::string_view text;
    size_t offset = 0;  // in the text tokenized
    bool ident = false;
};

// Identifiers and single other characters; whitespace dropped.
std::vector<Token> tokenize(std::string_view s) {
    std::vector<Token> out;
    size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (space(static_cast<char>(c))) {
            ++i;
        } else if (ident_char(c)) {
            size_t j = i;
            while (j < s.size() && ident_char(static_cast<unsigned char>(s[j]))) ++j;
            out.push_back({s.substr(i, j - i), i, ident_start(c)});
            i = j;
        } else {
            out.push_back({s.substr(i, 1), i, false});
            ++i;
        }
    }
    return out;
}

// Byte offsets of whole-word occurrences of `name` in text[from, to).
std::vector<size_t> occurrences(std::string_view text, std::string_view name, size_t from = 0,
                                size_t to = std::string_view::npos) {
    std::vector<size_t> out;
    to = std::min(to, text.size());
    if (name.empty()) return out;
    for (size_t at = text.find(name, from); at != std::string_view::npos && at + name.size() <= to;
         at = text.find(name, at + 1)) {
        if (at > 0 && ident_char(static_cast<unsigned char>(text[at - 1]))) continue;
        const size_t e = at + name.size();
        if (e < text.size() && ident_char(static_cast<unsigned char>(text[e]))) continue;
        out.push_back(at);
    }
    return out;
}

// Where the hunk's `after` lines are in the current text: at their line when they are
// still there, else the nearest place holding them; npos when gone.
size_t locate(const EditHunk& h, std::string_view text) {
    const size_t at = line_start(text, h.new_first);
    if (text.substr(at, h.after.size()) == h.after) return at;
    if (h.after.empty()) return std::string_view::npos;
    size_t best = std::string_view::npos, best_d = 0;
    for (size_t p = text.find(h.after); p != std::string_view::npos;
         p = text.find(h.after, p + 1)) {
        if (p > 0 && text[p - 1] != '\n') continue;
        const size_t d = p > at ? p - at : at - p;
        if (best == std::string_view::npos || d < best_d) best = p, best_d = d;
    }
    return best;
}

bool function_like(std::string_view kind) { return kind == "function" || kind == "method"; }

// The byte just before `at` that is not a space, or 0.
char prev_nonspace(std::string_view text, size_t at) {
    while (at > 0 && (text[at - 1] == ' ' || text[at - 1] == '\t')) --at;
    return at > 0 ? text[at - 1] : '\0';
}
// Whether the identifier at `at` is reached through an object: a.x, a->x, self.x, this.x.
bool member_access(std::string_view text, size_t at) {
    const char p = prev_nonspace(text, at);
    return p == '.' || (p == '>' && at >= 2 && text[at - 2] == '-');
}
bool self_access(std::string_view text, size_t at) {
    if (!member_access(text, at)) return false;
    size_t i = at;
    while (i > 0 && text[i - 1] != '.' && text[i - 1] != '>') --i;
    if (i > 0 && text[i - 1] == '>') --i;  // "->"
    if (i > 0 && text[i - 1] == '-') --i;
    if (i > 0 && text[i - 1] == '.') --i;
    size_t b = i;
    while (b > 0 && ident_char(static_cast<unsigned char>(text[b - 1]))) --b;
    const std::string_view obj = text.substr(b, i - b);
    return obj == "self" || obj == "this";
}

// Whether the identifier [at, at + len) looks declared there rather than used: after a
// type or a keyword (int x, let x, for x, as x, *x, &x) or before '=' (not '=='), ':' or
// ';' (x = 1, x: int, int x;).
bool declaration_like(std::string_view text, size_t at, size_t len) {
    const char p = prev_nonspace(text, at);
    if (p == '*' || p == '&') return true;
    if (p != '\0' && ident_char(static_cast<unsigned char>(p))) return true;
    size_t q = at + len;
    while (q < text.size() && (text[q] == ' ' || text[q] == '\t')) ++q;
    if (q >= text.size()) return false;
    if (text[q] == '=') return q + 1 >= text.size() || text[q + 1] != '=';
    if (text[q] == '?' && q + 1 < text.size() && text[q + 1] == ':') return true;  // TS x?: T
    return text[q] == ':' || text[q] == ';';
}

// The identifier before `at` (after spaces), or "".
std::string_view prev_word(std::string_view text, size_t at) {
    while (at > 0 && (text[at - 1] == ' ' || text[at - 1] == '\t')) --at;
    size_t b = at;
    while (b > 0 && ident_char(static_cast<unsigned char>(text[b - 1]))) --b;
    return text.substr(b, at - b);
}

// Declared beyond doubt: after a keyword that introduces a new name (a type alias, an
// interface, an enum, a typedef...): no use of the old name before it can make it a use.
bool declared_by_keyword(std::string_view text, size_t at) {
    const std::string_view w = prev_word(text, at);
    return w == "type" || w == "using" || w == "interface" || w == "enum" || w == "class" ||
           w == "struct" || w == "union" || w == "typedef" || w == "namespace" || w == "trait";
}

// Languages whose members are only reached through an object (no implicit this).
bool qualified_members(std::string_view language) {
    return language == "python" || language == "c";
}

// An enumerator: after '{' or ',' directly inside the braces of an enum ("enum x {",
// "enum class x : int {", "typedef enum {").
bool enumerator(std::string_view text, size_t at) {
    size_t b = at;
    while (b > 0 && space(text[b - 1])) --b;
    const char p = b > 0 ? text[b - 1] : '\0';
    if (p != '{' && p != ',') return false;
    // The brace that opens the list `at` is in (nested braces and parentheses skipped).
    int depth = 0;
    size_t i = at, budget = 1 << 16;
    while (i > 0 && budget-- > 0) {
        const char c = text[--i];
        if (c == '}' || c == ')') ++depth;
        if (c == '(' && depth-- == 0) return false;
        if (c == '{' && depth-- == 0) break;
    }
    if (i == 0 && text[0] != '{') return false;
    size_t h = i;
    while (h > 0 && text[h - 1] != ';' && text[h - 1] != '}' && text[h - 1] != '{' && i - h < 512)
        --h;
    for (const Token& t : tokenize(text.substr(h, i - h)))
        if (t.ident && t.text == "enum") return true;
    return false;
}

// For each of `positions` (sorted, in [from, ...)), whether it is in code rather than in
// a comment or a string, by a small lexer from `from` (assumed to be in code): // and
// /* */ comments (# in Python), '...', "..." and `...` strings, Python's triple quotes.
std::vector<bool> in_code(std::string_view text, size_t from, const std::vector<size_t>& positions,
                          std::string_view language) {
    std::vector<bool> out(positions.size(), true);
    const bool python = language == "python";
    size_t k = 0, i = from;
    auto mark_until = [&](size_t end) {  // positions in [i, end) are not code
        while (k < positions.size() && positions[k] < end) out[k++] = false;
    };
    while (i < text.size() && k < positions.size()) {
        while (k < positions.size() && positions[k] < i) ++k;  // in code
        if (k >= positions.size()) break;
        const char c = text[i];
        size_t end = std::string_view::npos;
        if (!python && c == '/' && i + 1 < text.size() && text[i + 1] == '/') {
            end = text.find('\n', i);
        } else if (python && c == '#') {
            end = text.find('\n', i);
        } else if (!python && c == '/' && i + 1 < text.size() && text[i + 1] == '*') {
            end = text.find("*/", i + 2);
            if (end != std::string_view::npos) end += 2;
        } else if (python && (text.substr(i, 3) == "\"\"\"" || text.substr(i, 3) == "'''")) {
            end = text.find(text.substr(i, 3), i + 3);
            if (end != std::string_view::npos) end += 3;
        } else if (c == '"' || c == '\'' || (c == '`' && !python)) {
            size_t j = i + 1;
            for (; j < text.size() && text[j] != c; ++j) {
                if (text[j] == '\\')
                    ++j;
                else if (text[j] == '\n' && c != '`')
                    break;  // unterminated: ends at the line
            }
            end = std::min(j + 1, text.size());
        } else {
            ++i;
            continue;
        }
        if (end == std::string_view::npos) end = text.size();
        mark_until(end);
        i = end;
    }
    return out;
}

// ---- argument and parameter lists ----

// The index of the ')' matching the '(' at `open`, skipping nested brackets and string
// and character literals; npos when unmatched (within `cap` bytes).
size_t matching_paren(std::string_view s, size_t open, size_t cap = 16384) {
    int depth = 0;
    const size_t end = std::min(s.size(), open + cap);
    for (size_t i = open; i < end; ++i) {
        const char c = s[i];
        if (c == '"' || c == '\'' || c == '`') {
            for (++i; i < end && s[i] != c; ++i)
                if (s[i] == '\\') ++i;
            continue;
        }
        if (c == '(' || c == '[' || c == '{') ++depth;
        if (c == ')' || c == ']' || c == '}') {
            if (--depth == 0) return c == ')' ? i : std::string_view::npos;
        }
    }
    return std::string_view::npos;
}

// Top-level comma-separated items of s(open, close): each [start, end) trimmed of spaces.
std::vector<std::pair<size_t, size_t>> split_items(std::string_view s, size_t open, size_t close) {
    std::vector<std::pair<size_t, size_t>> out;
    int depth = 0;
    size_t item = open + 1;
    auto push = [&](size_t a, size_t e) {
        while (a < e && space(s[a])) ++a;
        while (e > a && space(s[e - 1])) --e;
        out.push_back({a, e});
    };
    for (size_t i = open + 1; i < close; ++i) {
        const char c = s[i];
        if (c == '"' || c == '\'' || c == '`') {
            for (++i; i < close && s[i] != c; ++i)
                if (s[i] == '\\') ++i;
            continue;
        }
        if (c == '(' || c == '[' || c == '{' || c == '<') ++depth;
        if (c == ')' || c == ']' || c == '}' || (c == '>' && depth > 0 && s[i - 1] != '-')) --depth;
        if (c == ',' && depth == 0) {
            push(item, i);
            item = i + 1;
        }
    }
    push(item, close);
    // "()" has no items; "(a, b,)" has two (a trailing comma).
    if (!out.empty() && out.back().first == out.back().second) out.pop_back();
    return out;
}

struct Param {
    std::string name;
    bool has_default = false;
    bool variadic = false;
};

// A parameter's name: the first identifier in languages that write the name first
// (Python, JS/TS, Go, Rust), else the last one before a default or array bounds.
Param parse_param(std::string_view p, std::string_view language) {
    Param out;
    const size_t eq = p.find('=');
    out.has_default = eq != std::string_view::npos;
    std::string_view decl = p.substr(0, eq);
    out.variadic = decl.find("...") != std::string_view::npos ||
                   (language == "python" && decl.find('*') != std::string_view::npos);
    const bool name_first = language == "python" || language == "javascript" ||
                            language == "typescript" || language == "tsx" || language == "go" ||
                            language == "rust";
    if (!name_first) {
        const size_t br = decl.find('[');
        if (br != std::string_view::npos) decl = decl.substr(0, br);
    }
    for (const Token& t : tokenize(decl)) {
        if (!t.ident) continue;
        if (name_first && (t.text == "mut" || t.text == "public" || t.text == "private" ||
                           t.text == "protected" || t.text == "readonly"))
            continue;
        out.name = std::string(t.text);
        if (name_first) break;
    }
    return out;
}

std::vector<Param> parse_params(std::string_view s, size_t open, size_t close,
                                std::string_view language) {
    std::vector<Param> out;
    for (auto [a, e] : split_items(s, open, close)) {
        Param p = parse_param(s.substr(a, e - a), language);
        if (p.name.empty() && s.substr(a, e - a) == "void") continue;  // C's f(void)
        out.push_back(std::move(p));
    }
    // Methods in Python are called without their self.
    if (language == "python" && !out.empty() && (out[0].name == "self" || out[0].name == "cls"))
        out.erase(out.begin());
    return out;
}

// How calls change when the parameters went from `before` to `after`: for each new
// argument position, the old position it comes from, or -1 for a new argument (spelt as
// the parameter's name). None when the change needs nothing at call sites (a type
// changed, a parameter renamed, a defaulted one added) or cannot be followed.
std::optional<std::vector<int>> argument_map(const std::vector<Param>& before,
                                             const std::vector<Param>& after) {
    for (const auto& p : before)
        if (p.variadic || p.name.empty()) return std::nullopt;
    for (const auto& p : after)
        if (p.variadic || p.name.empty()) return std::nullopt;
    std::map<std::string, int> old_at;
    for (size_t i = 0; i < before.size(); ++i) {
        if (!old_at.emplace(before[i].name, static_cast<int>(i)).second) return std::nullopt;
    }
    std::vector<int> map;
    std::set<int> used;
    for (const auto& p : after) {
        auto it = old_at.find(p.name);
        if (it == old_at.end()) {
            if (p.has_default) return std::nullopt;  // a defaulted new parameter: calls stay
            map.push_back(-1);
        } else {
            map.push_back(it->second);
            used.insert(it->second);
        }
    }
    // A parameter renamed in place (one old name gone, one new at its position) is not a
    // change for callers.
    const size_t added = static_cast<size_t>(std::count(map.begin(), map.end(), -1));
    const size_t removed = before.size() - used.size();
    if (added > 0 && removed > 0) return std::nullopt;
    bool same = map.size() == before.size();
    for (size_t i = 0; same && i < map.size(); ++i) same = map[i] == static_cast<int>(i);
    if (same) return std::nullopt;
    return map;
}

// ---- the search ----

struct Detected {
    std::string kind;  // rename | signature
    std::string old_name, new_name;
    std::string path;  // where the change was made
    // rename: the scope in that file's current text ([0, size) for global); global also
    // searches other files.
    size_t scope_begin = 0, scope_end = 0;
    bool global = false;
    // rename of a member (a method, a field) in a language where members are always
    // reached through an object (Python's self.x, C's p->x): only such uses are renamed,
    // not a parameter or local that happens to share the name.
    bool member = false;
    // rename of a Python parameter: calls of its function (`func`) that pass it by
    // keyword (func(old=...)) are renamed too, wherever they are.
    std::string keyword_of;
    // signature: how arguments map, the new parameters' names, the definition's name
    // offset (not a call), the language.
    std::vector<int> argmap;
    size_t old_count = 0;                 // parameters (and so arguments) before the change
    std::vector<std::string> old_params;  // their names
    std::vector<std::string> new_params;
    std::vector<std::string> new_param_texts;  // as written in the definition
    size_t def_name_at = std::string_view::npos;
    std::string language;
};

const index::Definition* innermost_enclosing(const std::vector<index::Definition>& defs,
                                             size_t at) {
    const index::Definition* best = nullptr;
    for (const auto& d : defs) {
        if (d.range.start_byte <= at && at < d.range.end_byte &&
            (!best ||
             d.range.end_byte - d.range.start_byte < best->range.end_byte - best->range.start_byte))
            best = &d;
    }
    return best;
}

// A rename of one identifier in the hunk: every token the same but one identifier,
// changed from A to B wherever it changed. Offsets of the B tokens in `after`.
std::optional<std::pair<std::pair<std::string, std::string>, std::vector<size_t>>> renamed_token(
    const EditHunk& h) {
    const auto tb = tokenize(h.before), ta = tokenize(h.after);
    if (tb.size() != ta.size() || tb.empty()) return std::nullopt;
    std::string a, b;
    std::vector<size_t> at;
    for (size_t i = 0; i < tb.size(); ++i) {
        if (tb[i].text == ta[i].text) continue;
        if (!tb[i].ident || !ta[i].ident) return std::nullopt;
        if (a.empty()) {
            a = std::string(tb[i].text);
            b = std::string(ta[i].text);
        } else if (tb[i].text != a || ta[i].text != b) {
            return std::nullopt;
        }
        at.push_back(ta[i].offset);
    }
    if (at.empty()) return std::nullopt;
    return std::make_pair(std::make_pair(a, b), at);
}

std::optional<Detected> detect_rename(const EditHunk& h, const std::string& path,
                                      std::string_view text, size_t region,
                                      const std::vector<index::Definition>& defs,
                                      std::string_view language) {
    auto r = renamed_token(h);
    if (!r) return std::nullopt;
    const auto& [names, offsets] = *r;
    const auto& [a, b] = names;
    const size_t p = region + offsets.front();
    Detected d;
    d.kind = "rename";
    d.old_name = a;
    d.new_name = b;
    d.path = path;
    // At a definition's name: the definition itself was renamed.
    for (const auto& def : defs) {
        if (def.name_range.start_byte == p && def.name == b) {
            d.global = true;
            d.scope_end = text.size();
            d.member = def.kind == "method" && qualified_members(language);
            return d;
        }
    }
    // Else a declaration the index does not hold (a parameter, a local, a field, a
    // global variable): only where the renamed place was the first mention of A in its
    // scope, so a use changed to name something else is not taken for a rename.
    const index::Definition* scope = innermost_enclosing(defs, p);
    size_t sb = 0, se = text.size();
    bool global = true;
    if (scope) {
        sb = scope->range.start_byte;
        se = scope->range.end_byte;
        const bool in_function = function_like(scope->kind);
        if (in_function && member_access(text, p) && !self_access(text, p)) return std::nullopt;
        global = !in_function || self_access(text, p);
        if (self_access(text, p)) {
            // A field assigned in a method: its class (or the file) is the scope to check.
            const index::Definition* cls = nullptr;
            for (const auto& def : defs)
                if (def.range.start_byte <= scope->range.start_byte &&
                    def.range.end_byte >= scope->range.end_byte && !function_like(def.kind) &&
                    (!cls || def.range.end_byte - def.range.start_byte <
                                 cls->range.end_byte - cls->range.start_byte))
                    cls = &def;
            sb = cls ? cls->range.start_byte : 0;
            se = cls ? cls->range.end_byte : text.size();
        }
    } else if (member_access(text, p)) {
        return std::nullopt;
    }
    // ... and where it looks declared: a parameter (in its function's parameter list), a
    // declaration, an enumerator.
    const bool in_function = scope && function_like(scope->kind);
    const bool strong =
        declared_by_keyword(text, p) || enumerator(text, p) ||
        (scope && !in_function && !self_access(text, p) && declaration_like(text, p, b.size()));
    if (!strong) {
        // Mentions in comments and strings do not count; a member or a type declared after
        // its uses (strong) may come after them.
        const auto before = occurrences(text, a, sb, p);
        const auto code = in_code(text, sb, before, language);
        if (std::find(code.begin(), code.end(), true) != code.end()) return std::nullopt;
    }
    bool in_params = false;
    if (scope && function_like(scope->kind)) {
        size_t open = scope->name_range.end_byte;
        while (open < text.size() && space(text[open])) ++open;
        if (open < text.size() && text[open] == '(') {
            const size_t close = matching_paren(text, open);
            in_params = close != std::string_view::npos && open < p && p < close;
        }
    }
    if (!strong && !in_params && !declaration_like(text, p, b.size())) return std::nullopt;
    if (in_params && language == "python" && !self_access(text, p)) d.keyword_of = scope->name;
    // B is new there: only the renamed tokens hold it before the edit.
    for (size_t at : occurrences(text, b, sb, se)) {
        if (std::find(offsets.begin(), offsets.end(), at - region) == offsets.end())
            return std::nullopt;
    }
    d.global = global;
    d.scope_begin = global ? 0 : sb;
    d.scope_end = global ? text.size() : se;
    d.member = qualified_members(language) && scope && global && !declared_by_keyword(text, p) &&
               !enumerator(text, p);
    return d;
}

std::optional<Detected> detect_signature(const EditHunk& h, const std::string& path,
                                         std::string_view text, size_t region,
                                         const std::vector<index::Definition>& defs,
                                         std::string_view language) {
    const size_t region_end = region + h.after.size();
    for (const auto& def : defs) {
        if (!function_like(def.kind) || def.name_range.end_byte > region_end ||
            def.range.end_byte <= region)
            continue;
        size_t open = def.name_range.end_byte;
        while (open < text.size() && space(text[open])) ++open;
        if (open >= text.size() || text[open] != '(') continue;
        const size_t close = matching_paren(text, open);
        if (close == std::string_view::npos || close < region || open >= region_end) continue;
        // The same list before the hunk: the document with the hunk's old lines back.
        std::string before(text.substr(0, region));
        before += h.before;
        before += text.substr(region_end);
        size_t bopen = std::string_view::npos;
        if (def.name_range.start_byte < region) {
            bopen = open;
        } else {
            for (size_t at : occurrences(before, def.name, region, region + h.before.size())) {
                size_t q = at + def.name.size();
                while (q < before.size() && space(before[q])) ++q;
                if (q < before.size() && before[q] == '(') {
                    bopen = q;
                    break;
                }
            }
        }
        if (bopen == std::string_view::npos || bopen >= before.size() || before[bopen] != '(')
            continue;
        const size_t bclose = matching_paren(before, bopen);
        if (bclose == std::string_view::npos) continue;
        const auto old_params = parse_params(before, bopen, bclose, language);
        const auto new_params = parse_params(text, open, close, language);
        auto map = argument_map(old_params, new_params);
        if (!map) continue;
        Detected d;
        d.kind = "signature";
        d.old_name = d.new_name = def.name;
        d.path = path;
        d.global = true;
        d.scope_end = text.size();
        d.argmap = std::move(*map);
        d.old_count = old_params.size();
        for (const auto& p : old_params) d.old_params.push_back(p.name);
        for (const auto& p : new_params) d.new_params.push_back(p.name);
        for (auto [a, e] : split_items(text, open, close))
            d.new_param_texts.push_back(std::string(text.substr(a, e - a)));
        if (language == "python" && d.new_param_texts.size() > d.new_params.size())
            d.new_param_texts.erase(d.new_param_texts.begin());  // self
        if (d.new_param_texts.size() != d.new_params.size()) continue;
        d.def_name_at = def.name_range.start_byte;
        d.language = std::string(language);
        return d;
    }
    return std::nullopt;
}

// The call's edit at a use of the function at `at` in `text`, or none (not a call, a
// declaration, already changed, keyword arguments).
std::optional<SuggestedEdit> call_edit(const Detected& d, const std::string& path,
                                       std::string_view text, size_t at) {
    size_t open = at + d.old_name.size();
    while (open < text.size() && (text[open] == ' ' || text[open] == '\t')) ++open;
    if (open >= text.size() || text[open] != '(') return std::nullopt;
    // Declarations and definitions are not calls: "def f(", "function f(", "func f(", "fn f(".
    {
        size_t b = at;
        while (b > 0 && (text[b - 1] == ' ' || text[b - 1] == '\t')) --b;
        size_t w = b;
        while (w > 0 && ident_char(static_cast<unsigned char>(text[w - 1]))) --w;
        const std::string_view kw = text.substr(w, b - w);
        if (kw == "def" || kw == "function" || kw == "func" || kw == "fn") return std::nullopt;
    }
    const size_t close = matching_paren(text, open);
    if (close == std::string_view::npos) return std::nullopt;
    {
        size_t q = close + 1;
        while (q < text.size() && space(text[q])) ++q;
        // "f(...) {" defines it (C, C++, Java, JS, Go, Rust); Python's "def" was seen above.
        if (q < text.size() && text[q] == '{' && d.language != "python") return std::nullopt;
    }
    const auto items = split_items(text, open, close);
    // Removing item `g` of the call: it and one comma.
    auto remove_item = [&](size_t g) {
        SuggestedEdit r;
        r.path = path;
        if (items.size() == 1) {
            r.start = items[0].first;
            r.end = items[0].second;
        } else if (g + 1 < items.size()) {
            r.start = items[g].first;
            r.end = items[g + 1].first;
        } else {
            r.start = items[g - 1].second;
            r.end = items[g].second;
        }
        r.old_text = std::string(text.substr(r.start, r.end - r.start));
        r.line = line_of(text, r.start);
        return r;
    };
    // Python: a removed parameter passed by keyword (name=value) goes wherever it is.
    if (d.language == "python" && d.argmap.size() + 1 == d.old_count &&
        std::find(d.argmap.begin(), d.argmap.end(), -1) == d.argmap.end()) {
        std::set<int> kept(d.argmap.begin(), d.argmap.end());
        size_t gone = 0;
        while (kept.count(static_cast<int>(gone))) ++gone;
        for (size_t g = 0; g < items.size(); ++g) {
            const auto t = tokenize(text.substr(items[g].first, items[g].second - items[g].first));
            if (t.size() >= 2 && t[0].text == d.old_params[gone] && t[1].text == "=" &&
                (t.size() < 3 || t[2].text != "="))
                return remove_item(g);
        }
    }
    if (items.size() != d.old_count) return std::nullopt;  // already changed, or defaults
    std::vector<std::string_view> args;
    // A C or C++ declaration (a prototype in a header) lists parameters, not arguments:
    // it gets the parameters as the definition writes them.
    bool declaration = false;
    if ((d.language == "c" || d.language == "cpp") && !items.empty()) {
        const auto t = tokenize(text.substr(items[0].first, items[0].second - items[0].first));
        declaration = t.size() >= 2 && t[0].ident && t[1].ident && t[0].text != "sizeof" &&
                      t[0].text != "new" && t[0].text != "delete";
    }
    auto param_text = [&](size_t i) {
        return declaration ? d.new_param_texts[i] : d.new_params[i];
    };
    for (auto [a, e] : items) {
        const std::string_view arg = text.substr(a, e - a);
        // Keyword arguments (Python's name=value) do not go by position.
        if (d.language == "python") {
            const auto t = tokenize(arg);
            if (t.size() >= 2 && t[0].ident && t[1].text == "=" &&
                (t.size() < 3 || t[2].text != "="))
                return std::nullopt;
        }
        args.push_back(arg);
    }
    SuggestedEdit e;
    e.path = path;
    // The smallest span that changes: removing one argument removes it and one comma.
    const size_t removed =
        d.old_count -
        (d.argmap.size() - static_cast<size_t>(std::count(d.argmap.begin(), d.argmap.end(), -1)));
    bool in_order = true;
    int last = -1;
    for (int m : d.argmap) {
        if (m < 0) continue;
        if (m < last) in_order = false;
        last = m;
    }
    if (in_order && removed == 1 && d.argmap.size() + 1 == d.old_count) {
        std::set<int> kept(d.argmap.begin(), d.argmap.end());
        size_t gone = 0;
        while (kept.count(static_cast<int>(gone))) ++gone;
        if (items.size() == 1) {
            e.start = items[0].first;
            e.end = items[0].second;
        } else if (gone + 1 < items.size()) {
            e.start = items[gone].first;
            e.end = items[gone + 1].first;
        } else {
            e.start = items[gone - 1].second;
            e.end = items[gone].second;
        }
        e.new_text.clear();
    } else if (in_order && removed == 0 && d.argmap.size() == d.old_count + 1) {
        size_t added = 0;
        while (d.argmap[added] >= 0) ++added;
        const std::string name = param_text(added);
        if (items.empty()) {
            e.start = e.end = open + 1;
            e.new_text = name;
        } else if (added < items.size()) {
            e.start = e.end = items[added].first;
            e.new_text = name + ", ";
        } else {
            e.start = e.end = items.back().second;
            e.new_text = ", " + name;
        }
    } else {
        // Anything else: the argument list rewritten.
        e.start = items.empty() ? open + 1 : items.front().first;
        e.end = items.empty() ? open + 1 : items.back().second;
        for (size_t i = 0; i < d.argmap.size(); ++i) {
            if (i) e.new_text += ", ";
            e.new_text += d.argmap[i] < 0 ? param_text(i) : std::string(args[d.argmap[i]]);
        }
    }
    e.old_text = std::string(text.substr(e.start, e.end - e.start));
    if (e.old_text == e.new_text) return std::nullopt;
    e.line = line_of(text, e.start);
    return e;
}

// The edits in one file's text: renames at the old name's remaining uses in the scope,
// signature changes at the calls.
void edits_in(const Detected& d, const std::string& path, std::string_view text, size_t from,
              size_t to, std::vector<SuggestedEdit>& out, size_t cap) {
    for (size_t at : occurrences(text, d.old_name, from, to)) {
        if (out.size() >= cap) return;
        if (d.kind == "rename") {
            if (d.member && !member_access(text, at)) continue;
            SuggestedEdit e;
            e.path = path;
            e.start = at;
            e.end = at + d.old_name.size();
            e.old_text = d.old_name;
            e.new_text = d.new_name;
            e.line = line_of(text, at);
            out.push_back(std::move(e));
        } else {
            if (path == d.path && at == d.def_name_at) continue;
            if (auto e = call_edit(d, path, text, at)) out.push_back(std::move(*e));
        }
    }
}

// A renamed Python parameter passed by keyword: in each call of its function,
// func(..., old=value) becomes func(..., new=value).
void keyword_edits(const Detected& d, const std::string& path, std::string_view text,
                   std::vector<SuggestedEdit>& out, size_t cap) {
    for (size_t at : occurrences(text, d.keyword_of)) {
        if (out.size() >= cap) return;
        size_t open = at + d.keyword_of.size();
        while (open < text.size() && (text[open] == ' ' || text[open] == '\t')) ++open;
        if (open >= text.size() || text[open] != '(' || prev_word(text, at) == "def") continue;
        const size_t close = matching_paren(text, open);
        if (close == std::string_view::npos) continue;
        for (auto [a, e] : split_items(text, open, close)) {
            const auto t = tokenize(text.substr(a, e - a));
            if (t.size() >= 2 && t[0].text == d.old_name && t[1].text == "=" &&
                (t.size() < 3 || t[2].text != "=")) {
                SuggestedEdit s;
                s.path = path;
                s.start = a + t[0].offset;
                s.end = s.start + d.old_name.size();
                s.old_text = d.old_name;
                s.new_text = d.new_name;
                s.line = line_of(text, s.start);
                out.push_back(std::move(s));
            }
        }
    }
}

}  // namespace

std::optional<IndexNextEdits> index_next_edits(const std::vector<EditHunk>& history,
                                               const NextEditCursor& cursor, int64_t now_ms,
                                               const NextEditSources& sources,
                                               const NextEditLimits& limits) {
    if (!sources.resolve || !sources.read) return std::nullopt;
    // The last few documents' parses, per thread, keyed by their whole text (so never
    // stale): asking again after a suggestion was accepted in another file reuses the
    // parse of the document the rename began in.
    thread_local std::map<std::string, std::pair<std::string, index::Extraction>> parsed;
    thread_local std::unique_ptr<index::Extractor> extractor;
    constexpr size_t kKeptParses = 4;
    std::optional<Detected> found;
    std::optional<std::string> found_text;
    // Newest first. A rename found at a use (the user renaming by hand, or accepting a
    // suggestion) does not hide the definition's rename it follows: an older hunk with the
    // same names at the definition wins.
    size_t looked = 0;
    for (auto it = history.rbegin(); it != history.rend() && looked < limits.max_hunks;
         ++it, ++looked) {
        const EditHunk& h = *it;
        if (now_ms - h.last_ms > limits.max_age_ms) break;
        const std::string path = sources.resolve(h.uri);
        if (path.empty()) continue;
        const index::Language* lang = index::language_for_path(path);
        if (!lang) continue;
        auto text = sources.read(path);
        if (!text) continue;
        const size_t region = locate(h, *text);
        if (region == std::string_view::npos) continue;
        // One parse per document: several hunks are often in the same one.
        auto ex_it = parsed.find(path);
        if (ex_it == parsed.end() || ex_it->second.first != *text) {
            if (!extractor) extractor = std::make_unique<index::Extractor>();
            if (ex_it == parsed.end() && parsed.size() >= kKeptParses) parsed.erase(parsed.begin());
            ex_it =
                parsed
                    .insert_or_assign(path, std::make_pair(*text, extractor->extract(*lang, *text)))
                    .first;
        }
        const index::Extraction& ex = ex_it->second.second;
        std::optional<Detected> d =
            detect_rename(h, path, *text, region, ex.definitions, lang->name);
        if (!d) d = detect_signature(h, path, *text, region, ex.definitions, lang->name);
        if (!d) continue;
        if (found && (found->old_name != d->old_name || found->new_name != d->new_name)) break;
        found = std::move(d);
        found_text = std::move(text);
        if (found->global) break;  // a definition's rename: nothing older can widen it
    }
    if (!found) return std::nullopt;
    const Detected& d = *found;

    IndexNextEdits out;
    out.kind = d.kind;
    out.old_name = d.old_name;
    out.new_name = d.new_name;
    if (d.kind == "rename") {
        out.label = "Rename " + d.old_name + " → " + d.new_name;
    } else {
        const size_t n_new = d.argmap.size();
        if (n_new < d.old_count)
            out.label = "Update calls to " + d.old_name + "(…): remove an argument";
        else if (n_new > d.old_count)
            out.label = "Update calls to " + d.old_name + "(…): add an argument";
        else
            out.label = "Update calls to " + d.old_name + "(…): reorder the arguments";
    }

    // The edited file (the cursor's document first when it is that one).
    std::vector<SuggestedEdit> edits;
    edits_in(d, d.path, *found_text, d.scope_begin, d.scope_end, edits, limits.max_edits);
    if (!d.keyword_of.empty()) {
        std::vector<std::string> files{d.path};
        if (sources.files_using) {
            auto more = sources.files_using(d.keyword_of, limits.max_files);
            files.insert(files.end(), more.begin(), more.end());
        }
        std::sort(files.begin(), files.end());
        files.erase(std::unique(files.begin(), files.end()), files.end());
        for (const auto& f : files) {
            auto t = f == d.path ? found_text : sources.read(f);
            if (!t || index::language_for_path(f) != index::language_for_path(d.path)) continue;
            keyword_edits(d, f, *t, edits, limits.max_edits);
        }
    }
    if (d.global) {
        std::vector<std::string> files;
        if (sources.files_using) files = sources.files_using(d.old_name, limits.max_files);
        std::set<std::string> skip;
        if (sources.defined_in && d.kind == "rename") {
            // The same name defined in another file names something else there.
            for (auto& f : sources.defined_in(d.old_name)) skip.insert(f);
        }
        std::sort(files.begin(), files.end());
        files.erase(std::unique(files.begin(), files.end()), files.end());
        for (const auto& f : files) {
            if (f == d.path || skip.count(f) || edits.size() >= limits.max_edits) continue;
            auto t = sources.read(f);
            if (!t) continue;
            edits_in(d, f, *t, 0, t->size(), edits, limits.max_edits);
        }
    }
    if (edits.empty()) return std::nullopt;
    // Order: the cursor's document from the cursor down, then from its top; then the
    // others by path, top to bottom.
    std::stable_sort(
        edits.begin(), edits.end(), [&](const SuggestedEdit& x, const SuggestedEdit& y) {
            auto key = [&](const SuggestedEdit& e) {
                const int file = e.path == cursor.path ? (e.start >= cursor.offset ? 0 : 1) : 2;
                return std::make_tuple(file, file == 2 ? e.path : std::string(), e.start);
            };
            return key(x) < key(y);
        });
    // One edit per place (a recursive call's keyword is also in the function's scope).
    edits.erase(std::unique(edits.begin(), edits.end(),
                            [](const SuggestedEdit& x, const SuggestedEdit& y) {
                                return x.path == y.path && x.start == y.start;
                            }),
                edits.end());
    out.edits = std::move(edits);
    return out;
}

}  // namespace latent::agent
