// `latent bench next-edit --dir D`: recall, precision and latency of the index-driven next
// edits (next_edit_index.h) on real code. Renames (and, with --signatures, removals of a
// function's last parameter) are played at definitions that ctags finds — independently
// of the index — for names ctags defines once in their language family and uses
// elsewhere; the suggestions index_next_edits makes through a WorkspaceIndex of D (its
// own database) are compared with the true places: for a rename every whole-word token
// of the old name left in the family's files (those in comments and strings, told apart
// by a simple lexer, are not counted missed but not wrong either); for a parameter
// removal every call `name(` with as many arguments as there were parameters, right when
// the suggestions there remove its last argument. Not a test of the editor or the
// server: the history, the cursor and the sources are built here as the server builds
// them. Progress on stderr, one JSON line on stdout (shared/BENCHMARKS.md).
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/code_words.h"
#include "agent/commands.h"
#include "agent/edit_history.h"
#include "agent/next_edit_index.h"
#include "agent/scratch_dir.h"
#include "agent/text_lines.h"
#include "agent/workspace_index.h"
#include "index/indexer.h"
#include "index/languages.h"

namespace latent::agent {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Args {
    std::string dir, lang;
    size_t renames = 100, signatures = 0;
    uint64_t seed = 1;
    unsigned threads = 0;
    size_t examples = 5;
    std::string name;                // only definitions of this name, each place printed
    std::string files = "mentions";  // files_using: "mentions" (the server's) or "references"
};

std::optional<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The first whole-word occurrence of `name` in [from, to) of `text`.
std::optional<size_t> find_word(const std::string& text, std::string_view name, size_t from,
                                size_t to) {
    size_t p = from;
    while ((p = text.find(name, p)) != std::string::npos && p + name.size() <= to) {
        const bool left = p == 0 || !ident_char(static_cast<unsigned char>(text[p - 1]));
        const bool right = p + name.size() >= text.size() ||
                           !ident_char(static_cast<unsigned char>(text[p + name.size()]));
        if (left && right) return p;
        ++p;
    }
    return std::nullopt;
}

// A bracketed list: text[open] is '(' and text[close] its ')'; parts are the bytes
// between top-level commas ([begin, end), whitespace included).
struct List {
    size_t open = 0, close = 0;
    std::vector<std::pair<size_t, size_t>> parts;
};

// The '>' closing a template or generic argument list opening at text[lt] ('<' right
// after a name: `map<int, int>`, `f<T, U>(x)`), or npos when it does not look like one
// (a comparison: no '>' before a ';', a brace, an unmatched ')', "&&" or "||").
size_t closing_angle(const std::string& text, size_t lt) {
    if (lt == 0 || !ident_char(static_cast<unsigned char>(text[lt - 1]))) return std::string::npos;
    int depth = 0, parens = 0;
    for (size_t i = lt; i < text.size() && i < lt + 256; ++i) {
        const char c = text[i];
        if (c == '<') {
            ++depth;
        } else if (c == '>' && text[i - 1] != '-') {
            if (--depth == 0) return i;
        } else if (c == '(') {
            ++parens;
        } else if (c == ')') {
            if (--parens < 0) return std::string::npos;
        } else if (c == ';' || c == '{' || c == '}' ||
                   ((c == '&' || c == '|') && i + 1 < text.size() && text[i + 1] == c)) {
            return std::string::npos;
        }
    }
    return std::string::npos;
}

// The list opening at text[open] ('('), with (), [] and {} nested and quoted strings
// skipped, and with `angles` template or generic arguments too (closing_angle); nullopt
// when it does not close within 64 KiB.
std::optional<List> parse_list(const std::string& text, size_t open, bool angles) {
    if (open >= text.size() || text[open] != '(') return std::nullopt;
    List l;
    l.open = open;
    int depth = 0;
    size_t part = open + 1;
    const size_t limit = std::min(text.size(), open + 65536);
    for (size_t i = open; i < limit; ++i) {
        const char c = text[i];
        if (c == '"' || c == '\'' || c == '`') {
            size_t k = i + 1;  // a backquoted string (JS, Go) may span lines
            while (k < limit && text[k] != c && (c == '`' || text[k] != '\n'))
                k += text[k] == '\\' ? 2 : 1;
            i = k;
        } else if (c == '<' && angles) {
            const size_t gt = closing_angle(text, i);
            if (gt != std::string::npos) i = gt;
        } else if (c == '(' || c == '[' || c == '{') {
            ++depth;
        } else if (c == ')' || c == ']' || c == '}') {
            if (--depth == 0) {
                l.close = i;
                l.parts.push_back({part, i});
                return l;
            }
        } else if (c == ',' && depth == 1) {
            l.parts.push_back({part, i});
            part = i + 1;
        }
    }
    return std::nullopt;
}

bool blank(const std::string& text, std::pair<size_t, size_t> r) {
    for (size_t i = r.first; i < r.second; ++i)
        if (!std::isspace(static_cast<unsigned char>(text[i]))) return false;
    return true;
}

// The parts that hold something (a trailing comma's empty part and "()"'s one left out).
std::vector<std::pair<size_t, size_t>> items(const std::string& text, const List& l) {
    std::vector<std::pair<size_t, size_t>> out;
    for (const auto& p : l.parts)
        if (!blank(text, p)) out.push_back(p);
    return out;
}

size_t trimmed_end(const std::string& text, std::pair<size_t, size_t> r) {
    size_t e = r.second;
    while (e > r.first && std::isspace(static_cast<unsigned char>(text[e - 1]))) --e;
    return e;
}

// The bytes to remove for dropping the last of `its`: from the end of the one before to
// the end of the last, so "(a, b)" becomes "(a)" and "(a,\n b,\n)" "(a,\n)"; a lone item
// goes whole ("(a)" becomes "()").
std::pair<size_t, size_t> drop_last(const std::string& text,
                                    const std::vector<std::pair<size_t, size_t>>& its) {
    if (its.size() == 1) return {its[0].first, trimmed_end(text, its[0])};
    return {trimmed_end(text, its[its.size() - 2]), trimmed_end(text, its.back())};
}

std::string squeeze(std::string_view s) {
    std::string out;
    for (char c : s)
        if (!std::isspace(static_cast<unsigned char>(c))) out += c;
    return out;
}

bool starts_unindented(const std::string& text, uint32_t line0) {
    const size_t p = line_start(text, line0);
    return p < text.size() && !std::isspace(static_cast<unsigned char>(text[p]));
}

// ctags kinds that define a name (over C/C++, Python, JS/TS, Go, Rust, Java). Macros and
// external declarations count for "defined once" but are not renamed.
const std::set<std::string> kDefinitionKinds = {
    "function",   "prototype", "method", "class",    "struct",   "union",         "enum",
    "enumerator", "member",    "field",  "variable", "typedef",  "interface",     "type",
    "constant",   "func",      "const",  "var",      "property", "alias",         "talias",
    "methodSpec", "generator", "getter", "setter",   "trait",    "implementation"};
const std::set<std::string> kAlsoCounted = {"macro", "externvar", "namespace", "module", "package"};
const std::set<std::string> kFileScopeOnly = {"variable", "var", "constant", "const"};
const std::set<std::string> kCallable = {"function", "prototype", "method", "func", "member"};

struct Occurrence {
    std::string file;  // relative
    size_t offset = 0;
    bool code = true;  // outside comments and strings
};

struct Candidate {
    std::string name, kind, file, family, signature, scope_kind;
    uint32_t line = 0;  // 0-based
};

using Place = std::pair<std::string, size_t>;  // absolute path, byte

double pct(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
}

// What the benchmark knows of the folder, found without the index.
struct Corpus {
    std::string root;
    std::map<std::string, std::string> texts;           // relative path -> text
    std::map<std::string, std::string> family_of_file;  // relative path -> family
    std::map<std::string, size_t> family_files;
    std::vector<Candidate> tagged;                                    // ctags definitions
    std::map<std::pair<std::string, std::string>, size_t> def_count;  // (family, name)
    std::map<std::pair<std::string, std::string>, std::vector<Occurrence>> occ;
    size_t ctags_defs = 0;

    std::string abs(const std::string& rel) const { return root + "/" + rel; }
    std::string rel(const std::string& abs_path) const { return abs_path.substr(root.size() + 1); }
    std::string where(const Place& p, const std::string& edited_rel,
                      const std::string& edited) const {
        const std::string r = rel(p.first);
        const std::string& t = r == edited_rel ? edited : texts.at(r);
        return r + ":" + std::to_string(line_of(t, p.second) + 1);
    }
};

// The sources as the language server gives them: the index's references and
// definitions, the edited document's text, the others' from disk.
// `spent` gathers the milliseconds spent in them (the index's queries and the reads), so
// the latency splits into the workspace's part and the detector's own.
NextEditSources make_sources(WorkspaceIndex& wi, const std::string& root, const std::string& abs,
                             const std::string& edited, bool from_references,
                             std::shared_ptr<double> spent) {
    NextEditSources src;
    if (!from_references) {
        // As the server asks (agent_next_edit.cpp): every file whose chunks mention it.
        src.files_using = [&wi, root](std::string_view name, size_t limit) {
            std::vector<std::string> out;
            for (const auto& rel : wi.files_mentioning(name, limit))
                out.push_back(root + "/" + rel);
            return out;
        };
    } else
        src.files_using = [&wi, root, abs](std::string_view name, size_t limit) {
            std::vector<std::string> out;
            std::set<std::string> seen;
            for (const auto& r : wi.references(name, 20'000)) {
                std::string p = root + "/" + r.path;
                if (p == abs || !seen.insert(p).second) continue;
                out.push_back(std::move(p));
                if (out.size() >= limit) break;
            }
            return out;
        };
    src.read = [root, abs, &edited](const std::string& p) -> std::optional<std::string> {
        if (p == abs) return edited;
        if (p.rfind(root + "/", 0) != 0) return std::nullopt;
        return read_file(p);
    };
    src.defined_in = [&wi, root](std::string_view name) {
        std::vector<std::string> out;
        for (const auto& d : wi.definitions(std::string(name), 1000)) {
            std::string p = root + "/" + d.path;
            if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(std::move(p));
        }
        return out;
    };
    src.resolve = [root](const std::string& u) -> std::string {
        if (u.rfind("file://", 0) != 0) return "";
        std::string p = u.substr(7);
        return p.rfind(root + "/", 0) == 0 ? p : "";
    };
    // Each source timed: the detector's own time is the call's less these.
    auto timed = [spent](auto f) {
        return [spent, f](auto&&... args) {
            const auto t0 = Clock::now();
            auto r = f(std::forward<decltype(args)>(args)...);
            *spent += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
            return r;
        };
    };
    src.files_using = timed(src.files_using);
    src.read = timed(src.read);
    src.defined_in = timed(src.defined_in);
    return src;
}

// The `n` misses with the most places missed.
nlohmann::json worst(nlohmann::json misses, size_t n) {
    std::stable_sort(misses.begin(), misses.end(), [](const auto& x, const auto& y) {
        return x["missed"].template get<size_t>() > y["missed"].template get<size_t>();
    });
    if (misses.size() > n) misses.erase(misses.begin() + static_cast<ptrdiff_t>(n), misses.end());
    return misses;
}

struct Figures {
    size_t played = 0, none = 0, truth = 0, truth_all = 0, found = 0, hits = 0, hits_all = 0,
           wrong_text = 0, wrong_kind = 0, complete = 0;
    // The mean of each play's own recall (plays with places to change): a name with
    // hundreds of uses weighs as much as one with two.
    double recall_sum = 0;
    size_t with_truth = 0;
    size_t keep = 5;                     // misses listed, those with the most places missed first
    std::vector<double> ms, sources_ms;  // per call: all of it, in the sources
    std::map<std::string, std::array<size_t, 3>> by_kind;  // kind -> played, truth, hits
    nlohmann::json misses = nlohmann::json::array(), false_hits = nlohmann::json::array();

    nlohmann::json json(const char* what) const {
        nlohmann::json kinds = nlohmann::json::object();
        for (const auto& [kind, v] : by_kind)
            kinds[kind] = {
                {what, v[0]}, {"truth", v[1]}, {"recall", v[1] ? double(v[2]) / v[1] : 1.0}};
        return {{what, played},
                {"no_suggestion", none},
                {"complete", complete},
                {"truth", truth},
                {"found", found},
                {"recall", truth ? double(hits) / truth : 1.0},
                {"recall_mean", with_truth ? recall_sum / with_truth : 1.0},
                {"precision", found ? double(hits_all) / found : 1.0},
                // Right places in comments or strings (a docstring's mention, a doctest).
                {"right_outside_code", hits_all >= hits ? hits_all - hits : 0},
                {"wrong_text", wrong_text},
                {"wrong_kind", wrong_kind},
                {"p50_ms", pct(ms, 0.5)},
                {"p99_ms", pct(ms, 0.99)},
                {"max_ms", pct(ms, 1.0)},
                // Of which in the sources (index queries, file reads).
                {"sources_p50_ms", pct(sources_ms, 0.5)},
                {"sources_p99_ms", pct(sources_ms, 0.99)},
                {"by_kind", kinds},
                {"misses", worst(misses, keep)},
                {"false_hits", false_hits}};
    }
};

// Where the definition `c` names itself on its line; none when the name is not there (a
// definition made by a macro).
std::optional<size_t> name_on_line(const std::string& text, const Candidate& c) {
    const size_t ls = line_start(text, c.line);
    size_t le = text.find('\n', ls);
    if (le == std::string::npos) le = text.size();
    return find_word(text, c.name, ls, le);
}

// One rename at the definition `c`: its name's bytes on its line become name + "X2".
bool play_rename(const Corpus& k, WorkspaceIndex& wi, const Candidate& c, const Args& a,
                 Figures& F) {
    const size_t examples = a.examples;
    const bool trace = !a.name.empty();
    const std::string& text = k.texts.at(c.file);
    const auto def = name_on_line(text, c);
    if (!def) return false;  // the name is not on its line (a definition made by a macro)
    const std::string new_name = c.name + "X2";
    const size_t delta = new_name.size() - c.name.size();
    std::string edited = text;
    edited.replace(*def, c.name.size(), new_name);
    const std::string abs = k.abs(c.file);
    EditHistory history;
    const int64_t t_edit = 10'000;
    history.record("file://" + abs, edited, *def, c.name, *def + new_name.size(), t_edit);

    // The truth: every occurrence left, in the edited text's bytes; those in code, and
    // all (comments and strings too: an edit there is not counted wrong).
    std::set<Place> truth, truth_all;
    for (const Occurrence& o : k.occ.at({c.family, c.name})) {
        if (o.file == c.file && o.offset == *def) continue;
        const size_t off = o.file == c.file && o.offset > *def ? o.offset + delta : o.offset;
        truth_all.insert({k.abs(o.file), off});
        if (o.code) truth.insert({k.abs(o.file), off});
    }

    auto spent = std::make_shared<double>(0);
    const NextEditSources src =
        make_sources(wi, k.root, abs, edited, a.files == "references", spent);
    const auto t0 = Clock::now();
    const auto r =
        index_next_edits(history.hunks(), {abs, *def + new_name.size()}, t_edit + 300, src);
    F.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    F.sources_ms.push_back(*spent);
    ++F.played;
    F.truth += truth.size();
    F.truth_all += truth_all.size();
    auto& by = F.by_kind[c.kind];
    ++by[0];
    by[1] += truth.size();
    std::set<Place> found;
    if (!r) {
        ++F.none;
    } else {
        if (r->kind != "rename") ++F.wrong_kind;
        for (const SuggestedEdit& e : r->edits) {
            found.insert({e.path, e.start});
            if (e.new_text != new_name || e.old_text != c.name || e.end - e.start != c.name.size())
                ++F.wrong_text;
        }
    }
    F.found += found.size();
    if (trace) {
        std::fprintf(stderr, "rename %s (%s) at %s:%u (%zu bytes): %s, %.2f ms (sources %.2f)\n",
                     c.name.c_str(), c.kind.c_str(), c.file.c_str(), c.line + 1, text.size(),
                     r ? r->label.c_str() : "no suggestion", F.ms.back(), F.sources_ms.back());
        for (const Place& p : truth_all)
            std::fprintf(stderr, "  %s %s %s\n", found.count(p) ? "found " : "MISSED",
                         truth.count(p) ? "code   " : "comment",
                         k.where(p, c.file, edited).c_str());
        for (const Place& p : found)
            if (!truth_all.count(p))
                std::fprintf(stderr, "  WRONG          %s\n", k.where(p, c.file, edited).c_str());
    }
    size_t hits = 0;
    for (const Place& f : found) {
        if (truth.count(f)) ++hits;
        if (truth_all.count(f)) {
            ++F.hits_all;
        } else if (F.false_hits.size() < examples) {
            F.false_hits.push_back({{"name", c.name},
                                    {"kind", c.kind},
                                    {"defined", c.file + ":" + std::to_string(c.line + 1)},
                                    {"at", k.where(f, c.file, edited)}});
        }
    }
    F.hits += hits;
    by[2] += hits;
    if (hits == truth.size()) ++F.complete;
    size_t missed = 0;
    std::string first_miss;
    for (const Place& t : truth)
        if (!found.count(t) && missed++ == 0) first_miss = k.where(t, c.file, edited);
    if (!truth.empty()) {
        F.recall_sum += double(hits) / truth.size();
        ++F.with_truth;
    }
    if (missed)
        F.misses.push_back({{"name", c.name},
                            {"kind", c.kind},
                            {"defined", c.file + ":" + std::to_string(c.line + 1)},
                            {"missed", missed},
                            {"of", truth.size()},
                            {"first", first_miss},
                            {"suggested", r ? r->edits.size() : 0}});
    return true;
}

// Whether a call's receiver is passed as the first parameter (Python's self, Rust's
// &self): a call `x.f(...)` then has one argument fewer than the parameters.
bool takes_self(const std::string& text, std::pair<size_t, size_t> first_param) {
    const std::string p = squeeze(
        std::string_view(text).substr(first_param.first, first_param.second - first_param.first));
    return p == "self" || p == "cls" || p == "&self" || p == "&mutself" || p == "mutself";
}

// One parameter removal at the definition `c`: its last parameter (and the comma before)
// goes. Truth: the calls `name(` with as many arguments as it had parameters, each of
// which should lose its last argument.
bool play_signature(const Corpus& k, WorkspaceIndex& wi, const Candidate& c, const Args& a,
                    Figures& F) {
    const size_t examples = a.examples;
    const bool trace = !a.name.empty();
    const std::string& text = k.texts.at(c.file);
    const auto def = name_on_line(text, c);
    if (!def) return false;
    size_t open = *def + c.name.size();
    while (open < text.size() && (text[open] == ' ' || text[open] == '\t')) ++open;
    const bool angles = c.family != "python" && c.family != "go";
    const auto params = parse_list(text, open, angles);
    if (!params) return false;
    const auto ps = items(text, *params);
    if (ps.size() < 2) return false;
    // Calls are matched by their count of arguments: a variadic, optional or defaulted
    // parameter anywhere (or Python's bare * and /) makes that count ambiguous.
    for (const auto& p : ps) {
        const std::string q = squeeze(std::string_view(text).substr(p.first, p.second - p.first));
        if (q.empty() || q.find("...") != std::string::npos || q[0] == '*' || q[0] == '/' ||
            q.find('=') != std::string::npos || q.find('?') != std::string::npos)
            return false;
    }
    const bool self = takes_self(text, ps.front());
    // The removed parameter's name (Python's keyword arguments name it): its first word.
    std::string param_name;
    for (size_t i = ps.back().first; i < ps.back().second; ++i) {
        const auto ch = static_cast<unsigned char>(text[i]);
        if (ident_char(ch))
            param_name += text[i];
        else if (!param_name.empty())
            break;
    }
    const auto [cut_b, cut_e] = drop_last(text, ps);
    const std::string removed = text.substr(cut_b, cut_e - cut_b);
    std::string edited = text;
    edited.erase(cut_b, cut_e - cut_b);
    const std::string abs = k.abs(c.file);
    EditHistory history;
    const int64_t t_edit = 10'000;
    history.record("file://" + abs, edited, cut_b, removed, cut_b, t_edit);

    // The calls, in the texts after the edit: each with the text its argument list should
    // become (whitespace squeezed out).
    struct Call {
        List args;
        std::string want;
        bool code = true;  // outside comments and strings (a doctest, an example in a
                           // comment: an edit there is right when it is the wanted one,
                           // but its absence is no miss)
    };
    std::map<Place, Call> truth;
    std::set<std::string> files;
    for (const Occurrence& o : k.occ.at({c.family, c.name})) files.insert(o.file);
    for (const std::string& f : files) {
        const std::string& t = f == c.file ? edited : k.texts.at(f);
        const std::vector<uint8_t> mask = non_code_mask(t, c.family);
        size_t p = 0;
        while (auto at = find_word(t, c.name, p, t.size())) {
            p = *at + c.name.size();
            if (f == c.file && *at == *def) continue;
            size_t q = p;
            while (q < t.size() && std::isspace(static_cast<unsigned char>(t[q]))) ++q;
            const auto l = parse_list(t, q, angles);
            if (!l) continue;
            const auto args = items(t, *l);
            // A method taking self is called with one argument fewer, through an object
            // or as a bound method kept in a variable.
            const size_t want = self ? ps.size() - 1 : ps.size();
            if (args.size() != want || want == 0) continue;
            // A keyword argument of another name is not the one removed (Python, by
            // name): the call is not one to change.
            if (c.family == "python") {
                const std::string last_arg = squeeze(std::string_view(t).substr(
                    args.back().first, args.back().second - args.back().first));
                const size_t eq = last_arg.find('=');
                if (eq != std::string::npos && eq > 0 && last_arg[eq + 1] != '=' &&
                    last_arg.substr(0, eq) != param_name)
                    continue;
            }
            const auto [b, e] = drop_last(t, args);
            std::string after = t.substr(l->open, l->close + 1 - l->open);
            after.erase(b - l->open, e - b);
            truth[{k.abs(f), *at}] = {*l, squeeze(after), mask[*at] == 0};
        }
    }

    auto spent = std::make_shared<double>(0);
    const NextEditSources src =
        make_sources(wi, k.root, abs, edited, a.files == "references", spent);
    const auto t0 = Clock::now();
    const auto r = index_next_edits(history.hunks(), {abs, cut_b}, t_edit + 300, src);
    F.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    F.sources_ms.push_back(*spent);
    ++F.played;
    size_t in_code = 0;
    for (const auto& [place, call] : truth) in_code += call.code;
    F.truth += in_code;
    F.truth_all += truth.size();
    auto& by = F.by_kind[c.kind];
    ++by[0];
    by[1] += in_code;
    if (!r) {
        ++F.none;
    } else if (r->kind != "signature") {
        ++F.wrong_kind;
    }
    // Each suggestion goes to the call whose parentheses hold it; a call is right when
    // its suggestions together turn its arguments into the wanted ones.
    std::map<Place, std::vector<const SuggestedEdit*>> per_call;
    std::vector<const SuggestedEdit*> stray;
    if (r) {
        for (const SuggestedEdit& e : r->edits) {
            const Place* at = nullptr;
            for (const auto& [place, call] : truth)
                if (place.first == e.path && e.start > call.args.open && e.end <= call.args.close)
                    at = &place;
            if (at)
                per_call[*at].push_back(&e);
            else
                stray.push_back(&e);
        }
        F.found += r->edits.size();
    }
    if (trace) {
        std::fprintf(stderr, "signature %s at %s:%u, removed \"%s\": %s\n", c.name.c_str(),
                     c.file.c_str(), c.line + 1, removed.c_str(),
                     r ? r->label.c_str() : "no suggestion");
        for (const auto& [place, call] : truth)
            std::fprintf(stderr, "  %s %s %s wants %s\n",
                         per_call.count(place) ? "edited" : "MISSED",
                         call.code ? "code   " : "comment", k.where(place, c.file, edited).c_str(),
                         call.want.c_str());
        for (const SuggestedEdit* e : stray)
            std::fprintf(stderr, "  STRAY %s: \"%s\" -> \"%s\"\n",
                         k.where({e->path, e->start}, c.file, edited).c_str(), e->old_text.c_str(),
                         e->new_text.c_str());
    }
    size_t hits = 0;
    for (const auto& [place, es] : per_call) {
        const Call& call = truth.at(place);
        const std::string rel = k.rel(place.first);
        const std::string& t = rel == c.file ? edited : k.texts.at(rel);
        std::string s = t.substr(call.args.open, call.args.close + 1 - call.args.open);
        std::vector<const SuggestedEdit*> sorted = es;
        std::sort(sorted.begin(), sorted.end(),
                  [](auto* x, auto* y) { return x->start > y->start; });
        bool ok = true;
        for (const SuggestedEdit* e : sorted) {
            if (t.compare(e->start, e->end - e->start, e->old_text) != 0) ok = false;
            s.replace(e->start - call.args.open, e->end - e->start, e->new_text);
        }
        if (ok && squeeze(s) == call.want) {
            hits += call.code;
            F.hits_all += es.size();
        } else if (F.false_hits.size() < examples) {
            F.false_hits.push_back({{"name", c.name},
                                    {"at", k.where(place, c.file, edited)},
                                    {"became", s},
                                    {"wanted", call.want}});
        }
    }
    for (const SuggestedEdit* e : stray)
        if (F.false_hits.size() < examples)
            F.false_hits.push_back({{"name", c.name},
                                    {"at", k.where({e->path, e->start}, c.file, edited)},
                                    {"old", e->old_text},
                                    {"new", e->new_text},
                                    {"why", "not in a call with the matching argument count"}});
    F.hits += hits;
    by[2] += hits;
    if (hits == in_code) ++F.complete;
    if (in_code) {
        F.recall_sum += double(hits) / in_code;
        ++F.with_truth;
    }
    if (hits < in_code) {
        std::string first;
        for (const auto& [place, call] : truth)
            if (call.code && !per_call.count(place)) {
                first = k.where(place, c.file, edited);
                break;
            }
        F.misses.push_back({{"name", c.name},
                            {"defined", c.file + ":" + std::to_string(c.line + 1)},
                            {"removed", removed},
                            {"missed", in_code - hits},
                            {"of", in_code},
                            {"first", first},
                            {"suggested", r ? r->edits.size() : 0}});
    }
    return true;
}

// Reads the folder the way the index lists it, runs ctags over those files and the
// token search for every name ctags defines once.
std::optional<std::string> load_corpus(Corpus& k, const std::string& only, const std::string& tmp) {
    for (const std::string& rel : index::list_workspace_files(k.root, true)) {
        const std::string fam = family_of(rel);
        if (fam.empty() || (!only.empty() && fam != only)) continue;
        auto t = read_file(k.abs(rel));
        // The indexer's own skips: too large, minified, binary.
        if (!t || t->size() > (1u << 20) || index::looks_minified(*t) ||
            t->find('\0') != std::string::npos)
            continue;
        k.texts[rel] = std::move(*t);
        k.family_of_file[rel] = fam;
        ++k.family_files[fam];
    }
    if (k.texts.empty()) return k.root + ": no source files of a known language";

    const std::string list = tmp + "/files";
    {
        std::ofstream out(list);
        for (const auto& [rel, t] : k.texts) out << k.abs(rel) << "\n";
    }
    const auto tags =
        index::run_program({"ctags", "-L", list, "--output-format=json", "--fields=+nKSZ",
                            "--fields=+{scopeKind}", "--kinds-C=+p", "--kinds-C++=+p", "-f", "-"});
    if (!tags) return "ctags (universal-ctags) is needed and failed";
    std::istringstream in(*tags);
    std::string line;
    while (std::getline(in, line)) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || j.value("_type", "") != "tag") continue;
        const std::string kind = j.value("kind", ""), name = j.value("name", "");
        std::string path = j.value("path", "");
        if (path.rfind(k.root + "/", 0) != 0) continue;
        path = k.rel(path);
        const auto f = k.family_of_file.find(path);
        if (f == k.family_of_file.end()) continue;
        const bool def = kDefinitionKinds.count(kind) > 0;
        if (!def && !kAlsoCounted.count(kind)) continue;
        ++k.ctags_defs;
        ++k.def_count[{f->second, name}];
        if (!def || name.size() < 4 || keyword(name)) continue;
        const int ln = j.value("line", 0);
        if (ln <= 0) continue;
        // Variables and constants at file scope only: ctags reports some locals (a
        // TypeScript const in a method) without a scope, so the line must start with
        // the declaration too. A local's name is often another local's elsewhere.
        if (kFileScopeOnly.count(kind) &&
            (j.contains("scope") || !starts_unindented(k.texts.at(path), ln - 1)))
            continue;
        k.tagged.push_back({name, kind, path, f->second, j.value("signature", ""),
                            j.value("scopeKind", ""), static_cast<uint32_t>(ln - 1)});
    }
    std::map<std::string, std::unordered_set<std::string>> once;  // family -> names
    for (const Candidate& c : k.tagged)
        if (k.def_count[{c.family, c.name}] == 1) once[c.family].insert(c.name);
    for (const auto& [rel, text] : k.texts) {
        const std::string& fam = k.family_of_file[rel];
        const auto& names = once[fam];
        if (names.empty()) continue;
        const std::vector<uint8_t> mask = non_code_mask(text, fam);
        const std::string& file = rel;  // a structured binding: clang 14 cannot capture it
        for_each_word(text, [&](size_t off, std::string_view w) {
            if (w.size() < 4) return;
            const std::string s(w);
            if (names.count(s)) k.occ[{fam, s}].push_back({file, off, mask[off] == 0});
        });
    }
    return std::nullopt;
}

void register_bench_next_edit(CLI::App& app, int& exit_code) {
    CLI::App* bench = bench_command(app);
    auto* cmd = bench->add_subcommand(
        "next-edit",
        "Recall, precision and latency of the index-driven next edits: renames and "
        "parameter removals played at definitions ctags finds, checked against a token "
        "search of the files of the same language.");
    auto a = std::make_shared<Args>();
    cmd->add_option("--dir", a->dir, "Folder of real code")->required();
    cmd->add_option("--renames", a->renames, "Renames per language family")
        ->capture_default_str()
        ->check(CLI::Range(0, 100000));
    cmd->add_option("--signatures", a->signatures,
                    "Removals of a function's last parameter per language family")
        ->capture_default_str()
        ->check(CLI::Range(0, 100000));
    cmd->add_option("--seed", a->seed, "Which definitions are picked")->capture_default_str();
    cmd->add_option("--lang", a->lang,
                    "Only this family: c/c++ (or c, cpp), python, ts/js (or ts, js), go, rust, "
                    "java");
    cmd->add_option("--threads", a->threads, "Parser threads (0: the indexer's default)");
    cmd->add_option("--name", a->name,
                    "Only definitions of this name, every suggestion and true place printed "
                    "(to look into a miss)");
    cmd->add_option("--files", a->files,
                    "Where other files' uses are looked for: mentions (every file whose chunks "
                    "hold the name, as the server asks) or references (the index's uses only)")
        ->capture_default_str()
        ->check(CLI::IsMember({"mentions", "references"}));
    cmd->add_option("--examples", a->examples, "Misses and false hits listed per family")
        ->capture_default_str();
    cmd->callback([&exit_code, a] {
        if (!fs::is_directory(a->dir)) {
            exit_code = fail(a->dir + ": not a directory");
            return;
        }
        std::string only = a->lang;
        if (only == "c" || only == "cpp" || only == "c++") only = "c/c++";
        if (only == "ts" || only == "js" || only == "typescript" || only == "javascript")
            only = "ts/js";
        std::error_code ec;
        Corpus k;
        k.root = fs::canonical(a->dir, ec).string();
        const ScratchDir scratch("latent-bench-next-edit");
        if (!scratch.ok()) {
            exit_code = fail("cannot create a temporary folder");
            return;
        }
        const char* tmp = scratch.path().c_str();

        // 1. The index, in its own database, as the language server runs it.
        WorkspaceIndexOptions wo;
        wo.root = k.root;
        wo.db = std::string(tmp) + "/index.sqlite";
        wo.threads = a->threads;
        std::mutex mu;
        std::condition_variable cv;
        bool indexed = false;
        std::string summary;
        auto last = Clock::now();
        wo.progress = [&last](size_t done, size_t total) {
            if (done != total && Clock::now() - last < std::chrono::milliseconds(250)) return;
            last = Clock::now();
            std::fprintf(stderr, "\rbench next-edit: indexing %zu/%zu files", done, total);
            if (done == total) std::fprintf(stderr, "\n");
        };
        wo.done = [&](const std::string& s) {
            std::lock_guard<std::mutex> lock(mu);
            indexed = true;
            summary = s;
            cv.notify_all();
        };
        wo.log = [](const std::string&) {};
        const auto t_index = Clock::now();
        WorkspaceIndex wi(wo);
        wi.start();
        {
            std::unique_lock<std::mutex> lock(mu);
            cv.wait(lock, [&] { return indexed; });
        }
        const double index_s = std::chrono::duration<double>(Clock::now() - t_index).count();
        std::fprintf(stderr, "bench next-edit: index: %s (%.1f s)\n", summary.c_str(), index_s);

        // 2. The files, ctags' definitions and the token search: the truth.
        if (auto err = load_corpus(k, only, tmp)) {
            exit_code = fail(*err);
            return;
        }
        std::fprintf(stderr, "bench next-edit: %zu files, ctags: %zu definitions\n", k.texts.size(),
                     k.ctags_defs);

        // 3. Names ctags defines once and the token search finds used elsewhere, seeded.
        std::map<std::string, std::vector<const Candidate*>> pool;  // family -> candidates
        for (const Candidate& c : k.tagged) {
            if (k.def_count[{c.family, c.name}] != 1) continue;
            if (!a->name.empty() && c.name != a->name) continue;
            const auto o = k.occ.find({c.family, c.name});
            if (o == k.occ.end() || o->second.size() < 2) continue;
            pool[c.family].push_back(&c);
        }
        nlohmann::json rows = nlohmann::json::array();
        for (auto& [fam, cands] : pool) {
            std::mt19937_64 rng(a->seed);
            std::shuffle(cands.begin(), cands.end(), rng);
            Figures R, S;
            R.keep = S.keep = a->examples;
            for (const Candidate* c : cands) {
                if (R.played >= a->renames) break;
                if (play_rename(k, wi, *c, *a, R) && R.played % 25 == 0)
                    std::fprintf(stderr, "bench next-edit: %s: %zu renames, recall %.3f\n",
                                 fam.c_str(), R.played, R.truth ? double(R.hits) / R.truth : 1.0);
            }
            for (const Candidate* c : cands) {
                if (S.played >= a->signatures) break;
                if (!kCallable.count(c->kind)) continue;
                play_signature(k, wi, *c, *a, S);
            }
            nlohmann::json row = {{"lang", fam}, {"files", k.family_files[fam]}};
            nlohmann::json rj = R.json("renames");
            rj["truth_with_comments"] = R.truth_all;
            rj["recall_with_comments"] = R.truth_all ? double(R.hits_all) / R.truth_all : 1.0;
            for (auto& [key, v] : rj.items()) row[key] = v;
            if (a->signatures) row["signatures"] = S.json("changes");
            rows.push_back(row);
            std::fprintf(stderr,
                         "bench next-edit: %s: %zu renames over %zu files: recall %.3f (mean per "
                         "rename %.3f), precision %.3f (%zu of %zu places; %zu suggested), none "
                         "for %zu, p50 %.2f ms, p99 %.2f ms\n",
                         fam.c_str(), R.played, k.family_files[fam], rj["recall"].get<double>(),
                         rj["recall_mean"].get<double>(), rj["precision"].get<double>(), R.hits,
                         R.truth, R.found, R.none, pct(R.ms, 0.5), pct(R.ms, 0.99));
            if (a->signatures)
                std::fprintf(stderr,
                             "bench next-edit: %s: %zu parameter removals: recall %.3f, "
                             "precision %.3f (%zu of %zu calls; %zu edits), none for %zu, "
                             "p50 %.2f ms, p99 %.2f ms\n",
                             fam.c_str(), S.played, S.truth ? double(S.hits) / S.truth : 1.0,
                             S.found ? double(S.hits_all) / S.found : 1.0, S.hits, S.truth, S.found,
                             S.none, pct(S.ms, 0.5), pct(S.ms, 0.99));
        }
        const nlohmann::json out = {{"bench", "next-edit"},
                                    {"dir", k.root},
                                    {"seed", a->seed},
                                    {"files_from", a->files},
                                    {"files", k.texts.size()},
                                    {"index_s", index_s},
                                    {"ctags_definitions", k.ctags_defs},
                                    {"rows", rows}};
        std::printf("%s\n",
                    out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    });
}

}  // namespace

void register_bench_next_edit_command(CLI::App& app, int& exit_code) {
    register_bench_next_edit(app, exit_code);
}

}  // namespace latent::agent
