// Extraction over one tree: the tags query gives definitions (and their kinds); one walk
// of the tree gives references, imports and errors; the chunker splits at node
// boundaries. Tree-sitter handles are RAII (unique_ptr with their delete functions).
#include "index/extract.h"

#include <tree_sitter/api.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>

namespace latent::index {
namespace {

struct ParserDeleter {
    void operator()(TSParser* p) const { ts_parser_delete(p); }
};
struct TreeDeleter {
    void operator()(TSTree* t) const { ts_tree_delete(t); }
};
struct QueryDeleter {
    void operator()(TSQuery* q) const { ts_query_delete(q); }
};
struct QueryCursorDeleter {
    void operator()(TSQueryCursor* c) const { ts_query_cursor_delete(c); }
};
using ParserPtr = std::unique_ptr<TSParser, ParserDeleter>;
using TreePtr = std::unique_ptr<TSTree, TreeDeleter>;
using QueryPtr = std::unique_ptr<TSQuery, QueryDeleter>;
using QueryCursorPtr = std::unique_ptr<TSQueryCursor, QueryCursorDeleter>;
struct TreeCursor {
    TSTreeCursor c;
    explicit TreeCursor(TSNode n) : c(ts_tree_cursor_new(n)) {}
    ~TreeCursor() { ts_tree_cursor_delete(&c); }
    TreeCursor(const TreeCursor&) = delete;
    TreeCursor& operator=(const TreeCursor&) = delete;
};

// A text predicate of the tags query (#eq?, #not-eq?, #match?, #not-match?). Others
// (#strip!, #select-adjacent!, #set-adjacent!) concern doc comments, which we find
// ourselves, and are ignored.
struct Predicate {
    bool negate = false;
    bool regex = false;
    uint32_t capture = 0;
    bool other_is_capture = false;
    uint32_t other_capture = 0;
    std::string literal;
    // For #match?: the pattern as literal alternatives with optional anchors.
    std::vector<std::string> alternatives;
    bool anchor_start = false, anchor_end = false;
};

// The tags queries' regexes are anchored alternations of words ("^(require)$"); such a
// pattern becomes literal alternatives. Anything richer returns false and the predicate
// is ignored (a missed filter only adds a definition; no regex engine for one pattern).
bool parse_simple_regex(std::string_view re, Predicate& p) {
    if (!re.empty() && re.front() == '^') {
        p.anchor_start = true;
        re.remove_prefix(1);
    }
    if (!re.empty() && re.back() == '$') {
        p.anchor_end = true;
        re.remove_suffix(1);
    }
    if (re.size() >= 2 && re.front() == '(' && re.back() == ')') re = re.substr(1, re.size() - 2);
    for (char c : re)
        if (std::string_view(".*+?[]{}()\\^$").find(c) != std::string_view::npos) return false;
    size_t b = 0;
    for (;;) {
        const size_t e = re.find('|', b);
        p.alternatives.emplace_back(re.substr(b, e == std::string_view::npos ? e : e - b));
        if (e == std::string_view::npos) break;
        b = e + 1;
    }
    return true;
}

bool simple_match(const Predicate& p, std::string_view s) {
    for (const auto& a : p.alternatives) {
        const bool starts = s.substr(0, a.size()) == a;
        const bool ends = s.size() >= a.size() && s.substr(s.size() - a.size()) == a;
        if (p.anchor_start && p.anchor_end ? s == a
            : p.anchor_start               ? starts
            : p.anchor_end                 ? ends
                                           : s.find(a) != std::string_view::npos)
            return true;
    }
    return false;
}

struct CompiledQuery {
    QueryPtr query;
    std::string error;
    std::vector<std::string> capture_names;
    std::vector<std::vector<Predicate>> predicates;  // per pattern
    // Where the enabled patterns can start, by node symbol: the query then runs at those
    // nodes only (found by the extraction's own walk) instead of over the whole tree,
    // which costs as much as the parse. Empty: not known for every pattern, so the query
    // runs over the whole tree.
    std::vector<bool> roots;
};

// A reader of query source for one question: which node types can a pattern's match
// start at? It knows the shapes tags queries use — a node, `[...]` alternatives, a
// parenthesized group of one node and its predicates, fields, captures, anchors,
// quantifiers — and answers nullopt for anything else (a wildcard, an anonymous node, a
// group of sibling nodes, a quantified root).
class PatternRoots {
public:
    explicit PatternRoots(std::string_view src) : s_(src) {}

    std::optional<std::vector<std::string>> read() {
        std::vector<std::string> roots;
        skip();
        if (!item(roots)) return std::nullopt;
        skip();
        if (at_ < s_.size()) return std::nullopt;  // more than one top-level item
        if (roots.empty()) return std::nullopt;
        return roots;
    }

private:
    std::string_view s_;
    size_t at_ = 0;

    void skip() {
        while (at_ < s_.size()) {
            const char c = s_[at_];
            if (c == ';') {
                while (at_ < s_.size() && s_[at_] != '\n') ++at_;
            } else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
                ++at_;
            } else {
                break;
            }
        }
    }
    // A node type or a capture name ("definition.function").
    std::string_view word() {
        const size_t b = at_;
        while (at_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[at_])) ||
                                   s_[at_] == '_' || s_[at_] == '-' || s_[at_] == '.'))
            ++at_;
        return s_.substr(b, at_ - b);
    }
    // Skips to just past the bracket that closes the one at at_ - 1 (strings skipped).
    bool close(char open, char shut) {
        int depth = 1;
        bool in_string = false;
        for (; at_ < s_.size(); ++at_) {
            const char c = s_[at_];
            if (in_string) {
                if (c == '\\')
                    ++at_;
                else if (c == '"')
                    in_string = false;
            } else if (c == '"') {
                in_string = true;
            } else if (c == ';') {
                while (at_ < s_.size() && s_[at_] != '\n') ++at_;
            } else if (c == open) {
                ++depth;
            } else if (c == shut && --depth == 0) {
                ++at_;
                return true;
            }
        }
        return false;
    }
    // Captures and a quantifier after an item; a quantifier on a root is refused.
    bool suffix(bool root) {
        skip();
        if (at_ < s_.size() && (s_[at_] == '*' || s_[at_] == '+' || s_[at_] == '?')) {
            if (root) return false;
            ++at_;
        }
        for (;;) {
            skip();
            if (at_ >= s_.size() || s_[at_] != '@') return true;
            ++at_;
            word();
        }
    }
    // One item; appends the node types it can start at. A predicate adds none.
    bool item(std::vector<std::string>& roots) {
        if (at_ >= s_.size()) return false;
        const char c = s_[at_];
        if (c == '[') {
            ++at_;
            for (;;) {
                skip();
                if (at_ >= s_.size()) return false;
                if (s_[at_] == ']') {
                    ++at_;
                    break;
                }
                std::vector<std::string> alt;
                if (!item(alt) || alt.empty()) return false;
                roots.insert(roots.end(), alt.begin(), alt.end());
            }
            return suffix(true);
        }
        if (c != '(') return false;  // "anonymous", _, a field at top level
        ++at_;
        skip();
        if (at_ < s_.size() && s_[at_] == '#') return close('(', ')');  // a predicate
        if (at_ < s_.size() && (s_[at_] == '(' || s_[at_] == '[')) {
            // A group: exactly one node among its items, the rest predicates.
            size_t nodes = 0;
            for (;;) {
                skip();
                if (at_ >= s_.size()) return false;
                if (s_[at_] == ')') {
                    ++at_;
                    break;
                }
                if (s_[at_] == '.') {  // an anchor
                    ++at_;
                    continue;
                }
                std::vector<std::string> inner;
                if (!item(inner)) return false;
                if (!inner.empty()) {
                    ++nodes;
                    roots.insert(roots.end(), inner.begin(), inner.end());
                }
            }
            return nodes == 1 && suffix(true);
        }
        const std::string_view type = word();
        if (type.empty() || type == "_" || type.front() == '_') return false;
        if (!close('(', ')')) return false;
        roots.emplace_back(type);
        return suffix(true);
    }
};

// The symbols each enabled pattern of `q` can start at, or empty when any pattern's
// start is not known (then the caller queries the whole tree).
std::vector<bool> pattern_root_symbols(TSQuery* q, const std::vector<bool>& enabled,
                                       std::string_view src, const TSLanguage* lang) {
    const uint32_t n_symbols = ts_language_symbol_count(lang);
    std::vector<bool> roots(n_symbols, false);
    uint32_t n_super = 0;
    const TSSymbol* supers = ts_language_supertypes(lang, &n_super);
    for (uint32_t p = 0; p < ts_query_pattern_count(q); ++p) {
        if (!enabled[p]) continue;
        if (!ts_query_is_pattern_rooted(q, p)) return {};
        const uint32_t b = ts_query_start_byte_for_pattern(q, p);
        const uint32_t e = ts_query_end_byte_for_pattern(q, p);
        if (b >= e || e > src.size()) return {};
        const auto types = PatternRoots(src.substr(b, e - b)).read();
        if (!types) return {};
        for (const auto& t : *types) {
            bool found = false;
            for (TSSymbol sym = 0; sym < n_symbols; ++sym) {
                if (ts_language_symbol_type(lang, sym) != TSSymbolTypeRegular ||
                    t != ts_language_symbol_name(lang, sym))
                    continue;
                for (uint32_t k = 0; k < n_super; ++k)
                    if (supers[k] == sym) return {};  // matches its subtypes: not one type
                roots[sym] = true;
                found = true;
            }
            if (!found) return {};
        }
    }
    return roots;
}

// The tags queries lead definitions with `(comment)* @doc .` for editors that show doc
// comments; we find doc comments ourselves (doc_for), and the quantified sibling prefix
// makes the query cursor try a match at every comment and keep states open across
// siblings. It is blanked out (same length, so error offsets still point into the text).
std::string without_doc_prefixes(std::string_view query) {
    std::string s(query);
    auto blank = [&](size_t b, size_t e) {  // [b, e) becomes spaces
        std::fill(s.begin() + static_cast<std::ptrdiff_t>(b),
                  s.begin() + static_cast<std::ptrdiff_t>(e), ' ');
    };
    constexpr std::string_view kPrefix = "(comment)* @doc";
    for (size_t at = s.find(kPrefix); at != std::string::npos; at = s.find(kPrefix, at)) {
        size_t e = at + kPrefix.size();
        while (e < s.size() && (s[e] == ' ' || s[e] == '\n' || s[e] == '\t' || s[e] == '\r')) ++e;
        if (e < s.size() && s[e] == '.') ++e;  // the anchor that ties it to the definition
        blank(at, e);
        at = e;
    }
    // The predicates on @doc (#strip!, #select-adjacent!, #set-adjacent!) go with it.
    for (size_t at = s.find("(#"); at != std::string::npos; at = s.find("(#", at + 1)) {
        size_t e = at + 2;
        bool in_string = false;
        for (; e < s.size(); ++e) {
            if (in_string && s[e] == '\\') {
                ++e;
            } else if (s[e] == '"') {
                in_string = !in_string;
            } else if (!in_string && s[e] == ')') {
                break;
            }
        }
        if (e >= s.size()) break;
        if (std::string_view(s).substr(at, e + 1 - at).find("@doc") != std::string_view::npos)
            blank(at, e + 1);
    }
    return s;
}

CompiledQuery compile(const Language& lang) {
    CompiledQuery cq;
    uint32_t error_offset = 0;
    TSQueryError error_type = TSQueryErrorNone;
    const std::string src = without_doc_prefixes(lang.tags_query);
    cq.query.reset(ts_query_new(lang.grammar(), src.data(), static_cast<uint32_t>(src.size()),
                                &error_offset, &error_type));
    if (!cq.query) {
        cq.error = std::string(lang.name) + ": tags query error " +
                   std::to_string(static_cast<int>(error_type)) + " at byte " +
                   std::to_string(error_offset);
        return cq;
    }
    TSQuery* q = cq.query.get();
    for (uint32_t i = 0; i < ts_query_capture_count(q); ++i) {
        uint32_t len = 0;
        const char* s = ts_query_capture_name_for_id(q, i, &len);
        cq.capture_names.emplace_back(s, len);
    }
    // Only definitions are read: patterns without a definition capture (the tags
    // queries' @reference.* ones, which match every call) are switched off.
    std::vector<bool> enabled(ts_query_pattern_count(q), false);
    for (uint32_t p = 0; p < ts_query_pattern_count(q); ++p) {
        for (uint32_t i = 0; i < ts_query_capture_count(q); ++i)
            if (cq.capture_names[i].rfind("definition.", 0) == 0 &&
                ts_query_capture_quantifier_for_id(q, p, i) != TSQuantifierZero)
                enabled[p] = true;
        if (!enabled[p]) ts_query_disable_pattern(q, p);
    }
    cq.roots = pattern_root_symbols(q, enabled, src, lang.grammar());
    cq.predicates.resize(ts_query_pattern_count(q));
    for (uint32_t p = 0; p < ts_query_pattern_count(q); ++p) {
        uint32_t n = 0;
        const TSQueryPredicateStep* steps = ts_query_predicates_for_pattern(q, p, &n);
        for (uint32_t i = 0; i < n;) {
            uint32_t j = i;
            while (j < n && steps[j].type != TSQueryPredicateStepTypeDone) ++j;
            // steps[i..j): name, args...
            if (j - i == 3 && steps[i].type == TSQueryPredicateStepTypeString &&
                steps[i + 1].type == TSQueryPredicateStepTypeCapture) {
                uint32_t len = 0;
                const std::string name = ts_query_string_value_for_id(q, steps[i].value_id, &len);
                Predicate pred;
                pred.capture = steps[i + 1].value_id;
                bool known = true;
                if (name == "eq?" || name == "not-eq?") {
                    pred.negate = name == "not-eq?";
                } else if (name == "match?" || name == "not-match?") {
                    pred.negate = name == "not-match?";
                    pred.regex = true;
                } else {
                    known = false;
                }
                if (known) {
                    if (steps[i + 2].type == TSQueryPredicateStepTypeCapture) {
                        pred.other_is_capture = true;
                        pred.other_capture = steps[i + 2].value_id;
                    } else {
                        pred.literal = ts_query_string_value_for_id(q, steps[i + 2].value_id, &len);
                        if (pred.regex && !parse_simple_regex(pred.literal, pred)) known = false;
                    }
                    if (known && !(pred.regex && pred.other_is_capture))
                        cq.predicates[p].push_back(std::move(pred));
                }
            }
            i = j + 1;
        }
    }
    return cq;
}

// Compiled queries, one per language, built on first use and never freed.
const CompiledQuery& query_for(const Language& lang) {
    static std::mutex mu;
    static std::map<std::string_view, std::unique_ptr<CompiledQuery>> cache;
    std::lock_guard lock(mu);
    auto& slot = cache[lang.name];
    if (!slot) slot = std::make_unique<CompiledQuery>(compile(lang));
    return *slot;
}

std::string_view node_text(TSNode n, std::string_view text) {
    const uint32_t b = std::min<uint32_t>(ts_node_start_byte(n), text.size());
    const uint32_t e = std::min<uint32_t>(ts_node_end_byte(n), text.size());
    return text.substr(b, e - b);
}

Range range_of(TSNode n) {
    const TSPoint s = ts_node_start_point(n), e = ts_node_end_point(n);
    return {{s.row, s.column}, {e.row, e.column}, ts_node_start_byte(n), ts_node_end_byte(n)};
}

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_comment(TSNode n) {
    return std::string_view(ts_node_type(n)).find("comment") != std::string_view::npos;
}

std::string trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return std::string(s);
}

std::string cap(std::string s, size_t n) {
    if (s.size() > n) s.resize(n);
    return s;
}

// The line holding `byte`, trimmed and capped. Only a window of kMaxLineBytes either side
// is searched (a minified file is one line of megabytes); a line starting further back
// is shown from a little before `byte`, so the name stays in what is kept.
std::string line_at(std::string_view text, uint32_t byte) {
    const size_t at = std::min<size_t>(byte, text.size());
    const size_t lo = at > kMaxLineBytes ? at - kMaxLineBytes : 0;
    const auto back = text.substr(lo, at - lo).rfind('\n');
    size_t start = back != std::string_view::npos ? lo + back + 1 : lo;
    if (back == std::string_view::npos && lo > 0) start = at - kMaxLineBytes / 4;
    const auto ahead = text.substr(at, kMaxLineBytes);
    const auto fwd = ahead.find('\n');
    const size_t end = at + (fwd == std::string_view::npos ? ahead.size() : fwd);
    return cap(trim(text.substr(start, end - start)), kMaxLineBytes);
}

// Removes comment markers line by line: /** */ /* */ // /// //! # and leading '*'.
std::string strip_comment(std::string_view c) {
    std::string out;
    size_t pos = 0;
    while (pos <= c.size()) {
        size_t nl = c.find('\n', pos);
        if (nl == std::string_view::npos) nl = c.size();
        std::string_view line = c.substr(pos, nl - pos);
        auto drop_ws = [&] {
            while (!line.empty() && (line.front() == ' ' || line.front() == '\t'))
                line.remove_prefix(1);
        };
        drop_ws();
        while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.remove_suffix(1);
        if (ends_with(line, "*/")) line.remove_suffix(2);
        for (std::string_view m : {"/**", "/*!", "/*", "///", "//!", "//", "#", "*"}) {
            if (line.substr(0, m.size()) == m) {
                line.remove_prefix(m.size());
                break;
            }
        }
        while (!line.empty() && (line.back() == ' ' || line.back() == '\r' || line.back() == '\t'))
            line.remove_suffix(1);
        drop_ws();
        while (!line.empty() && line.back() == ' ') line.remove_suffix(1);
        if (!line.empty() || !out.empty()) {
            if (!out.empty()) out += '\n';
            out += line;
        }
        pos = nl + 1;
    }
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

// A node's ancestors, root first, in one descent from the root (each ts_node_parent
// call is a descent of its own, so walking up with it costs depth squared).
void ancestors_of(TSNode root, TSNode n, std::vector<TSNode>& out) {
    out.clear();
    for (TSNode cur = root; !ts_node_is_null(cur) && !ts_node_eq(cur, n);
         cur = ts_node_child_with_descendant(cur, n))
        out.push_back(cur);
}

// The node a definition's range should cover: C/C++ tags name the function_declarator;
// the definition is the function_definition (or declaration) around it. `chain` holds
// n's ancestors and is cut to the result's.
TSNode widen(TSNode n, std::vector<TSNode>& chain) {
    if (std::string_view(ts_node_type(n)) != "function_declarator") return n;
    for (size_t k = chain.size(); k-- > 0;) {
        const std::string_view t = ts_node_type(chain[k]);
        if (t == "function_definition" || t == "declaration" || t == "field_declaration") {
            const TSNode p = chain[k];
            chain.resize(k);
            return p;
        }
        if (t != "pointer_declarator" && t != "reference_declarator" && t != "function_declarator")
            break;
    }
    return n;
}

// `std::lock_guard lock(mu);` inside a body parses as a function declaration (C++'s
// most vexing parse); declarations inside function bodies are not definitions.
bool is_local_declaration(TSNode n, const std::vector<TSNode>& chain) {
    if (std::string_view(ts_node_type(n)) != "declaration") return false;
    for (const TSNode& p : chain)
        if (std::string_view(ts_node_type(p)) == "compound_statement") return true;
    return false;
}

// Wrappers that end where the definition ends (export, decorators, templates,
// `const f = () => {};`) carry its doc comment above them.
TSNode outermost_wrapper(TSNode n, const std::vector<TSNode>& chain) {
    for (size_t k = chain.size(); k-- > 1;) {  // chain[0] is the root
        const TSNode p = chain[k];
        if (ts_node_end_byte(p) > ts_node_end_byte(n) + 2) return n;
        const std::string_view t = ts_node_type(p);
        if (t.find("body") != std::string_view::npos || t.find("block") != std::string_view::npos ||
            t.find("list") != std::string_view::npos)
            return n;
        n = p;
    }
    return n;
}

std::string doc_for(TSNode def, const std::vector<TSNode>& chain, std::string_view text) {
    TSNode n = outermost_wrapper(def, chain);
    std::vector<TSNode> comments;
    uint32_t next_line = ts_node_start_point(n).row;
    for (TSNode s = ts_node_prev_sibling(n); !ts_node_is_null(s) && is_comment(s);
         s = ts_node_prev_sibling(s)) {
        if (ts_node_end_point(s).row + 1 < next_line) break;  // a blank line separates
        if (ts_node_end_point(s).row == next_line && comments.empty() &&
            ts_node_start_point(s).row == ts_node_start_point(n).row)
            break;  // a trailing comment of the previous line's code is not ours
        comments.push_back(s);
        next_line = ts_node_start_point(s).row;
        if (comments.size() >= 64) break;  // a doc block longer than that is a file header
    }
    std::string doc;
    for (auto it = comments.rbegin(); it != comments.rend(); ++it) {
        if (!doc.empty()) doc += '\n';
        doc += strip_comment(node_text(*it, text));
    }
    if (doc.empty()) {
        // Python: a string as the body's first statement.
        TSNode body = ts_node_child_by_field_name(def, "body", 4);
        if (!ts_node_is_null(body) && ts_node_named_child_count(body) > 0) {
            TSNode first = ts_node_named_child(body, 0);
            if (std::string_view(ts_node_type(first)) == "expression_statement" &&
                ts_node_named_child_count(first) > 0 &&
                std::string_view(ts_node_type(ts_node_named_child(first, 0))) == "string") {
                std::string_view s = node_text(ts_node_named_child(first, 0), text);
                for (std::string_view q : {"\"\"\"", "'''", "\"", "'"}) {
                    if (s.size() >= 2 * q.size() && s.substr(0, q.size()) == q && ends_with(s, q)) {
                        s = s.substr(q.size(), s.size() - 2 * q.size());
                        break;
                    }
                }
                doc = trim(s);
                while (!doc.empty() && (doc.front() == '\n')) doc.erase(0, 1);
                while (!doc.empty() && (doc.back() == '\n' || doc.back() == ' ')) doc.pop_back();
            }
        }
    }
    return cap(doc, 4096);  // a doc longer than 4 KiB is not a doc comment
}

// Scopes that are not tagged as definitions but name their contents.
std::string scope_name(TSNode n, std::string_view text) {
    const std::string_view t = ts_node_type(n);
    if (t == "namespace_definition" || t == "mod_item" || t == "internal_module" || t == "module" ||
        t == "class_specifier" || t == "struct_specifier") {
        TSNode name = ts_node_child_by_field_name(n, "name", 4);
        if (!ts_node_is_null(name)) return std::string(node_text(name, text));
    }
    if (t == "impl_item") {
        TSNode type = ts_node_child_by_field_name(n, "type", 4);
        if (!ts_node_is_null(type)) return std::string(node_text(type, text));
    }
    return {};
}

struct Chunker {
    std::string_view text;
    uint32_t max_bytes;
    // Definitions by the end byte of their range (for "this node is that definition").
    std::multimap<uint32_t, const Definition*> by_end;
    std::vector<Chunk>* out;

    const Definition* definition_at(TSNode n) const {
        const uint32_t s = ts_node_start_byte(n), e = ts_node_end_byte(n);
        const Definition* best = nullptr;
        for (auto it = by_end.lower_bound(e > 2 ? e - 2 : 0); it != by_end.end() && it->first <= e;
             ++it) {
            const Definition* d = it->second;
            if (d->range.start_byte >= s && (!best || d->range.start_byte < best->range.start_byte))
                best = d;
        }
        return best;
    }

    void emit(uint32_t b, uint32_t e, TSPoint sp, TSPoint ep, std::string kind, std::string name) {
        if (e <= b) return;
        Chunk c;
        c.range = {{sp.row, sp.column}, {ep.row, ep.column}, b, e};
        c.kind = std::move(kind);
        c.name = std::move(name);
        out->push_back(std::move(c));
    }

    // Splits the children of `parent` into chunks; `name`/`kind` label the pieces
    // (a long definition's parts carry its name).
    void children(TSNode parent, const std::string& name, const std::string& kind, int depth) {
        const uint32_t count = ts_node_child_count(parent);
        bool open = false;
        uint32_t gb = 0, ge = 0;
        TSPoint gsp{}, gep{};
        uint32_t pending_comment_start = UINT32_MAX;
        uint32_t pending_end_row = 0;
        TSPoint pending_sp{};
        auto flush = [&] {
            if (open) emit(gb, ge, gsp, gep, kind, name);
            open = false;
        };
        // A cursor over the children: ts_node_child(parent, i) walks from the first child
        // each time, quadratic over a file of many top-level statements.
        TreeCursor tc(parent);
        TSTreeCursor& cursor = tc.c;
        TSNode previous{};
        bool more = count > 0 && ts_tree_cursor_goto_first_child(&cursor);
        for (uint32_t i = 0; more; ++i, more = ts_tree_cursor_goto_next_sibling(&cursor)) {
            const TSNode c = ts_tree_cursor_current_node(&cursor);
            const TSNode before = previous;
            previous = c;
            const uint32_t b = ts_node_start_byte(c), e = ts_node_end_byte(c);
            if (e <= b) continue;
            const Definition* d = depth < 64 ? definition_at(c) : nullptr;
            if (is_comment(c)) {
                // A blank line (or code on the comment's line) starts a new comment run.
                const bool trailing =
                    i > 0 && ts_node_start_point(c).row == ts_node_end_point(before).row;
                if (pending_comment_start == UINT32_MAX ||
                    ts_node_start_point(c).row > pending_end_row + 1) {
                    pending_comment_start = trailing ? UINT32_MAX : b;
                    pending_sp = ts_node_start_point(c);
                }
                pending_end_row = ts_node_end_point(c).row;
            } else if (d) {
                if (pending_comment_start != UINT32_MAX &&
                    pending_end_row + 1 < ts_node_start_point(c).row)
                    pending_comment_start = UINT32_MAX;  // separated by a blank line
                // A definition starts its own chunk, taking the comments just above it.
                uint32_t start = b;
                TSPoint sp = ts_node_start_point(c);
                if (pending_comment_start != UINT32_MAX) {
                    if (open && ge > pending_comment_start) ge = pending_comment_start;
                    start = pending_comment_start;
                    sp = pending_sp;
                }
                // Comments taken by the definition are no longer in the open gap.
                if (open && gb >= start) open = false;
                flush();
                pending_comment_start = UINT32_MAX;
                if (e - start <= max_bytes || ts_node_child_count(c) == 0) {
                    emit(start, e, sp, ts_node_end_point(c), "definition", d->name);
                } else {
                    if (b > start) emit(start, b, sp, ts_node_start_point(c), "part", d->name);
                    children(c, d->name, "part", depth + 1);
                }
                continue;
            }
            if (!is_comment(c)) pending_comment_start = UINT32_MAX;
            if (e - b > max_bytes && ts_node_child_count(c) > 0 && depth < 64) {
                flush();
                pending_comment_start = UINT32_MAX;
                children(c, name, kind, depth + 1);
                continue;
            }
            if (open && e - gb > max_bytes) flush();
            if (!open) {
                open = true;
                gb = b;
                gsp = ts_node_start_point(c);
            }
            ge = e;
            gep = ts_node_end_point(c);
        }
        flush();
    }
};

void line_chunks(std::string_view text, uint32_t max_bytes, std::vector<Chunk>& out) {
    uint32_t b = 0, line = 0;
    while (b < text.size()) {
        uint32_t e = b, l = line, col = 0;
        while (e < text.size() && (e - b < max_bytes || text[e - 1] != '\n')) {
            if (text[e] == '\n') {
                ++l;
                col = 0;
            } else {
                ++col;
            }
            ++e;
        }
        Chunk c;
        c.range = {{line, 0}, {l, col}, b, e};
        c.kind = "text";
        out.push_back(std::move(c));
        b = e;
        line = l;
    }
}

struct ProgressPayload {
    std::chrono::steady_clock::time_point deadline;
};

bool on_progress(TSParseState* state) {
    auto* p = static_cast<ProgressPayload*>(state->payload);
    return std::chrono::steady_clock::now() > p->deadline;  // true cancels the parse
}

}  // namespace

struct Extractor::Impl {
    ExtractOptions options;
    ParserPtr parser{ts_parser_new()};
    QueryCursorPtr cursor{ts_query_cursor_new()};
};

Extractor::Extractor(ExtractOptions options) : impl_(std::make_unique<Impl>()) {
    impl_->options = options;
}
Extractor::~Extractor() = default;

Extraction Extractor::extract(const Language& language, std::string_view text) {
    Extraction x;
    // The indexer caps files at a few MiB; tree-sitter takes 32-bit offsets.
    if (text.size() >= UINT32_MAX / 2) text = text.substr(0, UINT32_MAX / 2);
    const CompiledQuery& cq = query_for(language);
    TSParser* parser = impl_->parser.get();
    if (!ts_parser_set_language(parser, language.grammar()) || !cq.query) {
        line_chunks(text, impl_->options.chunk_bytes, x.chunks);
        x.has_errors = true;
        return x;
    }
    struct Input {
        std::string_view text;
    } in{text};
    TSInput input{};
    input.payload = &in;
    input.read = [](void* payload, uint32_t byte, TSPoint, uint32_t* bytes_read) -> const char* {
        auto* s = static_cast<Input*>(payload);
        if (byte >= s->text.size()) {
            *bytes_read = 0;
            return "";
        }
        *bytes_read = static_cast<uint32_t>(s->text.size() - byte);
        return s->text.data() + byte;
    };
    input.encoding = TSInputEncodingUTF8;
    ProgressPayload progress{std::chrono::steady_clock::now() +
                             std::chrono::microseconds(impl_->options.timeout_micros)};
    TSParseOptions popts{&progress, on_progress};
    TreePtr tree(ts_parser_parse_with_options(parser, nullptr, input, popts));
    if (!tree) {
        ts_parser_reset(parser);
        x.timed_out = true;
        line_chunks(text, impl_->options.chunk_bytes, x.chunks);
        return x;
    }
    const TSNode root = ts_tree_root_node(tree.get());
    x.has_errors = ts_node_has_error(root);

    // One walk over the tree: identifier uses (a candidate reference each), imports, and
    // the nodes the tags query's patterns can start at.
    struct Use {
        uint32_t byte;
        TSPoint at;
        uint32_t length;
    };
    std::vector<Use> uses;
    std::vector<TSNode> starts;
    std::unordered_set<std::string_view> import_types(language.import_types.begin(),
                                                      language.import_types.end());
    {
        TreeCursor tc(root);
        TSTreeCursor& walk = tc.c;
        const std::vector<bool>& roots = cq.roots;
        for (;;) {
            const TSNode n = ts_tree_cursor_current_node(&walk);
            const TSSymbol sym = ts_node_symbol(n);
            if (sym < roots.size() && roots[sym]) starts.push_back(n);
            const std::string_view type = ts_node_type(n);
            if (import_types.count(type)) {
                std::string imp;
                for (char ch : node_text(n, text)) {
                    const bool ws = ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r';
                    if (ws && (imp.empty() || imp.back() == ' ')) continue;
                    imp += ws ? ' ' : ch;
                }
                while (!imp.empty() && imp.back() == ' ') imp.pop_back();
                x.imports.push_back(
                    {cap(std::move(imp), kMaxLineBytes), ts_node_start_point(n).row});
            }
            if (ts_node_child_count(n) == 0 && ts_node_is_named(n) &&
                ends_with(type, "identifier")) {
                const uint32_t b = ts_node_start_byte(n);
                uses.push_back({b, ts_node_start_point(n), ts_node_end_byte(n) - b});
            }
            if (ts_tree_cursor_goto_first_child(&walk)) continue;
            bool done = false;
            while (!ts_tree_cursor_goto_next_sibling(&walk)) {
                if (!ts_tree_cursor_goto_parent(&walk)) {
                    done = true;
                    break;
                }
            }
            if (done) break;
        }
    }

    // Definitions from the tags query: at each node a pattern can start at (matches
    // that start there only), or over the whole tree when those are not known.
    TSQueryCursor* qc = impl_->cursor.get();
    std::unordered_set<uint64_t> seen;
    std::unordered_map<uint64_t, size_t> def_by_range;  // full range -> index
    std::unordered_set<uint32_t> def_name_bytes;
    std::vector<TSNode> chain;
    const bool targeted = !cq.roots.empty() && !impl_->options.whole_tree_query;
    if (!targeted) starts.assign(1, root);
    ts_query_cursor_set_max_start_depth(qc, targeted ? 0 : UINT32_MAX);
    // One match: its predicates checked, its definition (widened, deduplicated) taken.
    auto take = [&](const TSQueryMatch& m) {
        bool ok = true;
        for (const Predicate& p : cq.predicates[m.pattern_index]) {
            std::string_view a, b;
            bool have_a = false, have_b = !p.other_is_capture;
            for (uint16_t i = 0; i < m.capture_count; ++i) {
                if (m.captures[i].index == p.capture) {
                    a = node_text(m.captures[i].node, text);
                    have_a = true;
                }
                if (p.other_is_capture && m.captures[i].index == p.other_capture) {
                    b = node_text(m.captures[i].node, text);
                    have_b = true;
                }
            }
            if (!have_a || !have_b) continue;
            if (!p.other_is_capture) b = p.literal;
            const bool hit = p.regex ? simple_match(p, a) : a == b;
            if (hit == p.negate) ok = false;
        }
        if (!ok) return;
        TSNode name{}, def{};
        bool have_name = false, have_def = false;
        std::string_view kind;
        for (uint16_t i = 0; i < m.capture_count; ++i) {
            const std::string& cname = cq.capture_names[m.captures[i].index];
            if (cname == "name") {
                name = m.captures[i].node;
                have_name = true;
            } else if (cname.rfind("definition.", 0) == 0) {
                def = m.captures[i].node;
                kind = std::string_view(cname).substr(11);
                have_def = true;
            }
        }
        if (!have_name || !have_def) return;
        ancestors_of(root, def, chain);
        def = widen(def, chain);
        if (is_local_declaration(def, chain)) return;
        const uint64_t key = (uint64_t(ts_node_start_byte(name)) << 32) | ts_node_start_byte(def);
        if (!seen.insert(key).second) return;
        Definition d;
        d.name = std::string(node_text(name, text));
        d.kind = std::string(kind);
        d.range = range_of(def);
        d.name_range = range_of(name);
        d.signature = line_at(text, d.name_range.start_byte);
        d.doc = doc_for(def, chain, text);
        def_name_bytes.insert(d.name_range.start_byte);
        x.definitions.push_back(std::move(d));
    };
    for (const TSNode& start : starts) {
        ts_query_cursor_exec(qc, cq.query.get(), start);
        TSQueryMatch match;
        while (ts_query_cursor_next_match(qc, &match)) take(match);
    }
    std::sort(x.definitions.begin(), x.definitions.end(),
              [](const Definition& a, const Definition& b) {
                  return std::pair(a.name_range.start_byte, a.range.start_byte) <
                         std::pair(b.name_range.start_byte, b.range.start_byte);
              });
    for (size_t i = 0; i < x.definitions.size(); ++i) {
        const Range& r = x.definitions[i].range;
        def_by_range.emplace((uint64_t(r.start_byte) << 32) | r.end_byte, i);
    }
    // Containers: the nearest enclosing definition or named scope.
    for (auto& d : x.definitions) {
        TSNode n = ts_node_descendant_for_byte_range(root, d.range.start_byte, d.range.end_byte);
        // Ascend to the node with exactly this range, then walk up its ancestors.
        ancestors_of(root, n, chain);
        size_t up = chain.size();  // n's ancestors are chain[0, up)
        while (!ts_node_is_null(n) && (ts_node_start_byte(n) != d.range.start_byte ||
                                       ts_node_end_byte(n) != d.range.end_byte))
            n = up > 0 ? chain[--up] : TSNode{};
        if (ts_node_is_null(n)) continue;
        // `double geo::total(...)` and Go's `func (s *Store) Add`: the qualifier names it.
        TSNode name_parent = ts_node_parent(ts_node_descendant_for_byte_range(
            root, d.name_range.start_byte, d.name_range.end_byte));
        if (!ts_node_is_null(name_parent) &&
            std::string_view(ts_node_type(name_parent)) == "qualified_identifier") {
            TSNode scope = ts_node_child_by_field_name(name_parent, "scope", 5);
            if (!ts_node_is_null(scope)) {
                d.container = std::string(node_text(scope, text));
                continue;
            }
        }
        if (std::string_view(ts_node_type(n)) == "method_declaration") {
            TSNode recv = ts_node_child_by_field_name(n, "receiver", 8);
            if (!ts_node_is_null(recv)) {
                std::string_view r = node_text(recv, text);
                // "(s *Store)" -> "Store": the last word before ')' without '*'.
                const auto close = r.rfind(')');
                if (close != std::string_view::npos) r = r.substr(0, close);
                const auto sp = r.find_last_of(" *(");
                if (sp != std::string_view::npos) r = r.substr(sp + 1);
                if (!r.empty()) {
                    d.container = std::string(r);
                    continue;
                }
            }
        }
        for (size_t j = up; j-- > 0;) {
            const TSNode p = chain[j];
            const uint64_t k = (uint64_t(ts_node_start_byte(p)) << 32) | ts_node_end_byte(p);
            if (auto it = def_by_range.find(k); it != def_by_range.end()) {
                if (&x.definitions[it->second] != &d) {
                    d.container = x.definitions[it->second].name;
                    break;
                }
                continue;
            }
            std::string s = scope_name(p, text);
            if (!s.empty()) {
                d.container = std::move(s);
                break;
            }
        }
    }

    // References: the uses that are not the names of definitions.
    for (const Use& u : uses) {
        if (x.references.size() >= impl_->options.max_references) break;
        if (def_name_bytes.count(u.byte)) continue;
        x.references.push_back(
            {std::string(text.substr(std::min<size_t>(u.byte, text.size()), u.length)),
             {u.at.row, u.at.column},
             u.byte});
    }

    // Chunks.
    Chunker chunker{text, std::max<uint32_t>(impl_->options.chunk_bytes, 64), {}, &x.chunks};
    for (const auto& d : x.definitions) chunker.by_end.emplace(d.range.end_byte, &d);
    chunker.children(root, "", "gap", 0);
    return x;
}

std::string check_languages() {
    for (const auto& lang : languages()) {
        const uint32_t abi = ts_language_abi_version(lang.grammar());
        if (abi < TREE_SITTER_MIN_COMPATIBLE_LANGUAGE_VERSION || abi > TREE_SITTER_LANGUAGE_VERSION)
            return std::string(lang.name) + ": grammar ABI " + std::to_string(abi) +
                   " not supported by this tree-sitter core";
        const CompiledQuery& cq = query_for(lang);
        if (!cq.query) return cq.error;
    }
    return {};
}

bool targeted_query(const Language& language) { return !query_for(language).roots.empty(); }

}  // namespace latent::index
