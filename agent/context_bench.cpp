// The truth, the simulated peers and the scoring of `latent bench context` (context_bench.h).
#include "agent/context_bench.h"

#include <algorithm>
#include <filesystem>
#include <optional>
#include <random>
#include <set>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "agent/code_words.h"

namespace latent::agent::context_bench {
namespace {

namespace fs = std::filesystem;

// ctags kinds that define a name, over C/C++, Python, JS/TS, Go, Rust and Java.
const std::set<std::string, std::less<>> kDefinitionKinds = {
    "function",   "prototype", "method", "class",    "struct",   "union",          "enum",
    "enumerator", "member",    "field",  "variable", "typedef",  "interface",      "type",
    "constant",   "func",      "const",  "var",      "property", "alias",          "talias",
    "methodSpec", "generator", "getter", "setter",   "trait",    "implementation", "macro",
    "externvar",  "namespace", "module"};
const std::set<std::string, std::less<>> kVariableKinds = {"variable", "var", "constant", "const"};
const std::set<std::string, std::less<>> kFunctionScopes = {"function", "method", "member", "func",
                                                            "generator"};
const std::set<std::string, std::less<>> kFunctionKinds = {"function",  "method", "member", "func",
                                                           "generator", "getter", "setter"};

std::vector<size_t> line_starts(std::string_view text) {
    std::vector<size_t> s = {0};
    for (size_t i = 0; i < text.size(); ++i)
        if (text[i] == '\n' && i + 1 < text.size()) s.push_back(i + 1);
    return s;
}

size_t line_end(std::string_view text, size_t from) {
    const size_t nl = text.find('\n', from);
    return nl == std::string_view::npos ? text.size() : nl;
}

size_t first_non_space(std::string_view text, size_t from, size_t to) {
    while (from < to && (text[from] == ' ' || text[from] == '\t' || text[from] == '\r')) ++from;
    return from;
}

std::string header(const std::string& marker, const ContextBlock& b) {
    return marker + " " + b.path + ":" + std::to_string(b.start_line + 1) + "\n";
}

// The block's size as layout_fim_prompt counts it.
size_t block_bytes(const std::string& marker, const ContextBlock& b) {
    size_t n = header(marker, b).size() + b.text.size();
    if (b.text.empty() || b.text.back() != '\n') ++n;
    return n;
}

bool blank(std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

std::vector<Needed> needed_in(const Repo& repo, const Span& span, const std::string& text,
                              const std::vector<uint8_t>& mask) {
    std::vector<Needed> out;
    const std::string family = family_of(span.file);
    std::unordered_set<std::string> seen;
    const std::string part = text.substr(span.begin, span.end - span.begin);
    for_each_word(part, [&](size_t off, std::string_view w) {
        if (w.size() < 3 || mask[span.begin + off] || keyword(w)) return;
        std::string name(w);
        if (!seen.insert(name).second) return;
        const auto it = repo.by_name.find(name);
        if (it == repo.by_name.end()) return;
        Needed n{name, {}};
        for (size_t i : it->second) {
            const Tag& t = repo.tags[i];
            if (family_of(t.file) != family) continue;
            if (t.file == span.file) return;  // its own file defines it
            n.definitions.push_back(t);
        }
        if (n.definitions.empty() || n.definitions.size() > kMaxDefinitions) return;
        out.push_back(std::move(n));
    });
    return out;
}

std::string parent_of(const std::string& rel) {
    const size_t slash = rel.rfind('/');
    return slash == std::string::npos ? "" : rel.substr(0, slash);
}

std::string join(const std::string& dir, const std::string& rel) {
    const std::string p = dir.empty() ? rel : dir + "/" + rel;
    std::string n = fs::path(p).lexically_normal().generic_string();
    if (n.rfind("./", 0) == 0) n = n.substr(2);
    return n;
}

std::vector<std::string> lines_of(std::string_view text) {
    std::vector<std::string> out;
    size_t p = 0;
    while (p < text.size()) {
        const size_t e = line_end(text, p);
        out.emplace_back(text.substr(p, e - p));
        p = e + 1;
    }
    return out;
}

// The quoted text after `from` in `line` ('...' or "..."), or "".
std::string quoted_after(const std::string& line, size_t from) {
    const size_t q = line.find_first_of("'\"", from);
    if (q == std::string::npos) return "";
    const size_t e = line.find(line[q], q + 1);
    return e == std::string::npos ? "" : line.substr(q + 1, e - q - 1);
}

std::string trim(std::string s) {
    const size_t a = s.find_first_not_of(" \t\r");
    if (a == std::string::npos) return "";
    const size_t b = s.find_last_not_of(" \t\r");
    return s.substr(a, b - a + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    size_t p = 0;
    while (true) {
        const size_t e = s.find(sep, p);
        out.push_back(trim(s.substr(p, e == std::string::npos ? std::string::npos : e - p)));
        if (e == std::string::npos) return out;
        p = e + 1;
    }
}

}  // namespace

std::vector<Tag> parse_ctags(std::string_view json_lines, const std::string& root) {
    std::vector<Tag> out;
    size_t p = 0;
    while (p < json_lines.size()) {
        const size_t e = line_end(json_lines, p);
        const auto j = nlohmann::json::parse(json_lines.substr(p, e - p), nullptr, false);
        p = e + 1;
        if (j.is_discarded() || !j.is_object() || j.value("_type", "") != "tag") continue;
        const std::string kind = j.value("kind", ""), path = j.value("path", "");
        if (!kDefinitionKinds.count(kind) || path.rfind(root + "/", 0) != 0) continue;
        if (kVariableKinds.count(kind) && kFunctionScopes.count(j.value("scopeKind", "")))
            continue;  // a local
        const int line = j.value("line", 0);
        if (line <= 0) continue;
        Tag t{j.value("name", ""), kind, path.substr(root.size() + 1),
              static_cast<uint32_t>(line - 1), static_cast<uint32_t>(line - 1)};
        if (const int end = j.value("end", 0); end >= line) t.end = static_cast<uint32_t>(end - 1);
        if (!t.name.empty()) out.push_back(std::move(t));
    }
    return out;
}

void Repo::index_tags() {
    by_name.clear();
    for (size_t i = 0; i < tags.size(); ++i) by_name[tags[i].name].push_back(i);
}

const char* kind_name(SpanKind k) {
    switch (k) {
        case SpanKind::kFunction:
            return "function";
        case SpanKind::kBlock:
            return "block";
        case SpanKind::kLine:
            return "line";
    }
    return "?";
}

std::vector<Needed> needed_definitions(const Repo& repo, const Span& span) {
    const auto it = repo.texts.find(span.file);
    if (it == repo.texts.end() || span.end > it->second.size() || span.begin >= span.end) return {};
    return needed_in(repo, span, it->second, non_code_mask(it->second, family_of(span.file)));
}

Picked pick_spans(const Repo& repo, size_t n, uint64_t seed) {
    Picked out;
    struct Lines {
        std::vector<size_t> starts;
        std::vector<uint8_t> mask;
    };
    std::map<std::string, Lines> lines;  // per file, made on first use
    auto lines_for = [&](const std::string& file) -> const Lines& {
        auto it = lines.find(file);
        if (it != lines.end()) return it->second;
        const std::string& t = repo.texts.at(file);
        return lines[file] = {line_starts(t), non_code_mask(t, family_of(file))};
    };
    // A span over lines [first, last] of `file`: from the first's first non-blank byte to
    // the end of the last (its line break stays).
    auto make = [&](const std::string& file, SpanKind kind, size_t first,
                    size_t last) -> std::optional<Span> {
        const std::string& t = repo.texts.at(file);
        const Lines& l = lines_for(file);
        if (last >= l.starts.size() || first > last) return std::nullopt;
        const size_t b = first_non_space(t, l.starts[first], line_end(t, l.starts[first]));
        size_t e = line_end(t, l.starts[last]);
        while (e > b && (t[e - 1] == '\r' || t[e - 1] == ' ' || t[e - 1] == '\t')) --e;
        if (b >= e) return std::nullopt;
        return Span{file, kind, b, e};
    };

    // Candidates per kind: (file, first line, last line) for functions; (file, line) else.
    std::vector<std::tuple<std::string, size_t, size_t>> functions;
    std::set<std::pair<std::string, uint32_t>> seen;
    for (const Tag& t : repo.tags) {
        if (!kFunctionKinds.count(t.kind) || !repo.texts.count(t.file)) continue;
        if (!seen.insert({t.file, t.line}).second) continue;
        const bool python = family_of(t.file) == "python";
        size_t first = t.line + 1;
        size_t last = python ? t.end : (t.end > 0 ? t.end - 1 : 0);
        if (family_of(t.file) == "ts/js" && t.end == t.line) {
            // No end from ctags (its TypeScript parser gives none): the body's braces.
            const std::string& text = repo.texts.at(t.file);
            const Lines& l = lines_for(t.file);
            if (t.line >= l.starts.size()) continue;
            const size_t from = l.starts[t.line];
            const size_t limit =
                t.line + 10 < l.starts.size() ? l.starts[t.line + 10] : text.size();
            size_t open = from;
            while (open < limit && (text[open] != '{' || l.mask[open])) ++open;
            if (open >= limit) continue;
            int depth = 0;
            size_t close = open;
            for (; close < text.size(); ++close) {
                if (l.mask[close]) continue;
                if (text[close] == '{') ++depth;
                if (text[close] == '}' && --depth == 0) break;
            }
            if (close >= text.size()) continue;
            auto line_at = [&](size_t off) {
                return static_cast<size_t>(std::upper_bound(l.starts.begin(), l.starts.end(), off) -
                                           l.starts.begin() - 1);
            };
            first = line_at(open) + 1;
            last = line_at(close);
            if (last == 0) continue;
            --last;
        }
        if (last < first + 1 || last - first + 1 > 60) continue;
        functions.emplace_back(t.file, first, last);
    }
    std::vector<std::pair<std::string, size_t>> code_lines;
    for (const auto& [file, text] : repo.texts) {
        const Lines& l = lines_for(file);
        for (size_t i = 0; i < l.starts.size(); ++i) {
            const size_t e = line_end(text, l.starts[i]);
            const size_t b = first_non_space(text, l.starts[i], e);
            if (b < e && !l.mask[b]) code_lines.emplace_back(file, i);
        }
    }

    const size_t quota[3] = {(n + 2) / 3, (n + 1) / 3, n / 3};
    for (int k = 0; k < 3; ++k) {
        const auto kind = static_cast<SpanKind>(k);
        std::mt19937_64 rng(seed * 3 + static_cast<uint64_t>(k));
        size_t taken = 0;
        auto consider = [&](const std::optional<Span>& s) {
            if (!s) return;
            const Lines& l = lines_for(s->file);
            if (needed_in(repo, *s, repo.texts.at(s->file), l.mask).empty()) {
                ++out.skipped[kind_name(kind)];
                return;
            }
            out.spans.push_back(*s);
            ++taken;
        };
        if (kind == SpanKind::kFunction) {
            std::vector<size_t> order(functions.size());
            for (size_t i = 0; i < order.size(); ++i) order[i] = i;
            std::shuffle(order.begin(), order.end(), rng);
            for (size_t i = 0; i < order.size() && taken < quota[k]; ++i) {
                const auto& [file, first, last] = functions[order[i]];
                consider(make(file, kind, first, last));
            }
        } else {
            std::vector<size_t> order(code_lines.size());
            for (size_t i = 0; i < order.size(); ++i) order[i] = i;
            std::shuffle(order.begin(), order.end(), rng);
            for (size_t i = 0; i < order.size() && taken < quota[k]; ++i) {
                const auto& [file, line] = code_lines[order[i]];
                const size_t len = kind == SpanKind::kBlock ? 3 + rng() % 4 : 1;
                consider(make(file, kind, line, line + len - 1));
            }
        }
    }
    out.skipped.emplace("function", 0);
    out.skipped.emplace("block", 0);
    out.skipped.emplace("line", 0);
    return out;
}

std::vector<ContextBlock> parse_context(std::string_view context, const Repo& repo) {
    std::vector<ContextBlock> out;
    bool open = false;
    size_t p = 0;
    while (p < context.size()) {
        const size_t e = line_end(context, p);
        const std::string_view line = context.substr(p, e - p);
        p = e + 1;
        std::string_view rest;
        if (line.rfind("// ", 0) == 0)
            rest = line.substr(3);
        else if (line.rfind("# ", 0) == 0)
            rest = line.substr(2);
        if (!rest.empty()) {
            const size_t colon = rest.rfind(':');
            if (colon != std::string_view::npos && colon + 1 < rest.size() &&
                std::all_of(rest.begin() + colon + 1, rest.end(),
                            [](char c) { return c >= '0' && c <= '9'; }) &&
                repo.texts.count(std::string(rest.substr(0, colon)))) {
                const auto n = std::stoul(std::string(rest.substr(colon + 1)));
                out.push_back({std::string(rest.substr(0, colon)),
                               static_cast<uint32_t>(n > 0 ? n - 1 : 0), 0, ""});
                out.back().end_line = out.back().start_line;
                open = true;
                continue;
            }
            if (repo.texts.count(std::string(rest))) {  // the current file's line: the end
                open = false;
                continue;
            }
        }
        if (!open) continue;
        ContextBlock& b = out.back();
        if (!b.text.empty()) ++b.end_line;
        b.text.append(line);
        b.text += '\n';
    }
    return out;
}

std::vector<ContextBlock> fit(const std::vector<ContextBlock>& ranked, size_t bytes,
                              const std::string& current, bool truncate) {
    const std::string marker = comment_marker(current);
    std::vector<ContextBlock> out;
    for (const ContextBlock& b : ranked) {
        if (b.path == current || blank(b.text)) continue;
        const bool overlaps = std::any_of(out.begin(), out.end(), [&](const ContextBlock& o) {
            return o.path == b.path && b.start_line <= o.end_line && o.start_line <= b.end_line;
        });
        if (overlaps) continue;
        const size_t need = block_bytes(marker, b);
        if (need <= bytes) {
            bytes -= need;
            out.push_back(b);
            continue;
        }
        if (!truncate) continue;
        ContextBlock cut{b.path, b.start_line, b.start_line, ""};
        size_t left = bytes > header(marker, b).size() ? bytes - header(marker, b).size() : 0;
        uint32_t n = 0;
        for (const std::string& l : lines_of(b.text)) {
            if (l.size() + 1 > left) break;
            cut.text += l + "\n";
            left -= l.size() + 1;
            ++n;
        }
        if (n > 0 && !blank(cut.text)) {
            cut.end_line = b.start_line + n - 1;
            out.push_back(std::move(cut));
        }
        break;
    }
    return out;
}

std::vector<std::string> imports_of(const Repo& repo, const std::string& file) {
    std::vector<std::string> out;
    const auto it = repo.texts.find(file);
    if (it == repo.texts.end()) return out;
    const std::string family = family_of(file);
    const std::string dir = parent_of(file);
    auto add = [&](const std::string& rel) {
        if (rel != file && repo.texts.count(rel) &&
            std::find(out.begin(), out.end(), rel) == out.end())
            out.push_back(rel);
    };
    auto exists = [&](const std::string& rel) { return repo.texts.count(rel) > 0; };
    // A file whose path ends with "/<tail>" (an include path or a package we only see part of).
    auto by_ending = [&](const std::string& tail) -> std::string {
        for (const auto& [rel, t] : repo.texts)
            if (rel == tail || (rel.size() > tail.size() &&
                                rel.compare(rel.size() - tail.size(), tail.size(), tail) == 0 &&
                                rel[rel.size() - tail.size() - 1] == '/'))
                return rel;
        return "";
    };
    // Python: a dotted module under `base` (or, absolute, under any ending of the repo).
    auto python_module = [&](const std::string& base, const std::string& dotted,
                             bool relative) -> std::string {
        std::string path = dotted;
        std::replace(path.begin(), path.end(), '.', '/');
        if (relative) {
            for (const std::string& c :
                 {join(base, path + ".py"), join(base, path + "/__init__.py")})
                if (exists(c)) return c;
            return "";
        }
        // Absolute: drop leading packages until a file of the repository matches (the repo may
        // be the package itself: "asyncio.events" is events.py of a copy of asyncio/).
        std::vector<std::string> parts = split(dotted, '.');
        for (size_t k = 0; k < parts.size(); ++k) {
            std::string p;
            for (size_t i = k; i < parts.size(); ++i) p += (p.empty() ? "" : "/") + parts[i];
            for (const std::string& c : {p + ".py", p + "/__init__.py"})
                if (exists(c)) return c;
        }
        return "";
    };
    // Go: an import path names a package, a folder: its files (not the tests), where the
    // repository holds a folder whose path ends with the import path.
    auto go_package = [&](const std::string& path) {
        std::vector<std::string> files;
        for (const auto& [rel, t] : repo.texts) {
            // The repository is a folder of some module: the import path ends with the
            // folder's path within it (its root's own import path is not known).
            const std::string d = parent_of(rel);
            const bool ends =
                !d.empty() &&
                (d == path || (path.size() > d.size() &&
                               path.compare(path.size() - d.size(), d.size(), d) == 0 &&
                               path[path.size() - d.size() - 1] == '/'));
            if (ends && rel.size() > 3 && rel.compare(rel.size() - 3, 3, ".go") == 0 &&
                rel.find("_test.go") == std::string::npos)
                files.push_back(rel);
        }
        std::sort(files.begin(), files.end());
        for (const std::string& f : files) add(f);
    };
    // Rust: the file of module path `parts` under folder `base` (x.rs or x/mod.rs, the
    // longest prefix of the path that is a file: `use a::b::Item` is in a/b.rs or a.rs).
    auto rust_module = [&](const std::string& base, const std::vector<std::string>& parts) {
        for (size_t n = parts.size(); n > 0; --n) {
            std::string p;
            for (size_t i = 0; i < n; ++i) p += (p.empty() ? "" : "/") + parts[i];
            for (const std::string& c : {join(base, p + ".rs"), join(base, p + "/mod.rs")})
                if (exists(c)) return c;
            // A crate root above the repository (a folder of a crate): by the path's ending,
            // or with its leading modules dropped (the repository is `iter/` of
            // `crate::iter::adapters::map`).
            for (const std::string& c : {p + ".rs", p + "/mod.rs"})
                if (const std::string e = by_ending(c); !e.empty()) return e;
            for (size_t k = 1; k < n; ++k) {
                std::string q;
                for (size_t i = k; i < n; ++i) q += (q.empty() ? "" : "/") + parts[i];
                for (const std::string& c : {q + ".rs", q + "/mod.rs"})
                    if (exists(c)) return c;
            }
        }
        // An item of the module `base` itself: its own file.
        for (const std::string& c :
             {base + ".rs", join(base, "mod.rs"), join(base, "lib.rs"), join(base, "main.rs")})
            if (!base.empty() && exists(c)) return c;
        return std::string();
    };
    // The folder of this file's child modules: its own folder for mod.rs / lib.rs / main.rs,
    // else the folder named after it (Rust 2018).
    const std::string base_name = file.substr(dir.empty() ? 0 : dir.size() + 1);
    const bool mod_root = base_name == "mod.rs" || base_name == "lib.rs" || base_name == "main.rs";
    const std::string children =
        mod_root ? dir
                 : join(dir, base_name.size() > 3 ? base_name.substr(0, base_name.size() - 3)
                                                  : base_name);
    const std::string parent_module = mod_root ? parent_of(dir) : dir;
    std::string crate_root = dir;
    while (!crate_root.empty() && !exists(join(crate_root, "lib.rs")) &&
           !exists(join(crate_root, "main.rs")))
        crate_root = parent_of(crate_root);
    bool in_go_imports = false;
    for (const std::string& raw : lines_of(it->second)) {
        const std::string line = trim(raw);
        if (family == "go") {
            if (in_go_imports) {
                if (line.rfind(")", 0) == 0) {
                    in_go_imports = false;
                    continue;
                }
                if (const std::string q = quoted_after(line, 0); !q.empty()) go_package(q);
            } else if (line.rfind("import (", 0) == 0) {
                in_go_imports = true;
            } else if (line.rfind("import ", 0) == 0) {
                if (const std::string q = quoted_after(line, 7); !q.empty()) go_package(q);
            }
            continue;
        }
        if (family == "rust") {
            std::string l = line;
            if (l.rfind("pub ", 0) == 0) l = trim(l.substr(4));
            if (l.rfind("pub(crate) ", 0) == 0) l = trim(l.substr(11));
            if (l.rfind("mod ", 0) == 0 && !l.empty() && l.back() == ';') {
                const std::string name = trim(l.substr(4, l.size() - 5));
                const std::string m = rust_module(children, {name});
                if (!m.empty()) add(m);
            } else if (l.rfind("use ", 0) == 0) {
                std::string path = l.substr(4);
                path = path.substr(0, path.find_first_of("{;* "));
                std::vector<std::string> parts;
                for (size_t a = 0; a < path.size();) {
                    const size_t b = path.find("::", a);
                    const std::string part = path.substr(a, b == std::string::npos ? b : b - a);
                    if (!part.empty()) parts.push_back(part);
                    if (b == std::string::npos) break;
                    a = b + 2;
                }
                if (parts.empty()) continue;
                std::string base;
                if (parts[0] == "crate") {
                    base = crate_root;
                } else if (parts[0] == "super") {
                    base = parent_module;
                } else if (parts[0] == "self") {
                    base = children;
                } else {
                    continue;  // another crate
                }
                parts.erase(parts.begin());
                while (!parts.empty() && parts[0] == "super") {
                    base = parent_of(base);
                    parts.erase(parts.begin());
                }
                const std::string m = rust_module(base, parts);
                if (!m.empty()) add(m);
            }
            continue;
        }
        if (family == "c/c++") {
            if (line.empty() || line[0] != '#') continue;
            const size_t inc = line.find("include");
            if (inc == std::string::npos || trim(line.substr(1, inc - 1)) != "") continue;
            const size_t a = line.find_first_of("\"<", inc);
            if (a == std::string::npos) continue;
            const size_t b = line.find(line[a] == '<' ? '>' : '"', a + 1);
            if (b == std::string::npos) continue;
            const std::string name = line.substr(a + 1, b - a - 1);
            if (const std::string c = join(dir, name); exists(c))
                add(c);
            else if (exists(join("", name)))
                add(join("", name));
            else if (const std::string e = by_ending(join("", name)); !e.empty())
                add(e);
        } else if (family == "python") {
            if (line.rfind("from ", 0) == 0) {
                const size_t imp = line.find(" import ");
                if (imp == std::string::npos) continue;
                std::string mod = trim(line.substr(5, imp - 5));
                size_t dots = 0;
                while (dots < mod.size() && mod[dots] == '.') ++dots;
                std::string base = dir;
                for (size_t d = 1; d < dots; ++d) base = parent_of(base);
                mod = mod.substr(dots);
                std::string names = line.substr(imp + 8);
                names.erase(std::remove_if(names.begin(), names.end(),
                                           [](char c) { return c == '(' || c == ')'; }),
                            names.end());
                const std::string m = mod.empty() ? "" : python_module(base, mod, dots > 0);
                if (!m.empty()) add(m);
                // `from . import x` and `from pkg import module`: the names may be modules.
                for (const std::string& n : split(names, ',')) {
                    const std::string name = split(n, ' ')[0];
                    if (name.empty() || name == "*") continue;
                    const std::string sub = mod.empty() ? name : mod + "." + name;
                    const std::string s = python_module(base, sub, dots > 0);
                    if (!s.empty()) add(s);
                }
            } else if (line.rfind("import ", 0) == 0) {
                for (const std::string& n : split(line.substr(7), ',')) {
                    const std::string s = python_module(dir, split(n, ' ')[0], false);
                    if (!s.empty()) add(s);
                }
            }
        } else if (family == "ts/js") {
            std::string spec;
            if (line.rfind("import ", 0) == 0 || line.rfind("export ", 0) == 0) {
                const size_t from = line.find(" from ");
                if (from != std::string::npos)
                    spec = quoted_after(line, from + 6);
                else if (line.rfind("import ", 0) == 0)
                    spec = quoted_after(line, 7);
            }
            if (spec.empty()) {
                const size_t req = line.find("require(");
                if (req != std::string::npos) spec = quoted_after(line, req + 8);
            }
            if (spec.empty() || spec[0] != '.') continue;
            std::string stem = join(dir, spec);
            for (const char* js : {".js", ".mjs", ".cjs", ".jsx"}) {
                const std::string x(js);
                if (stem.size() > x.size() &&
                    stem.compare(stem.size() - x.size(), x.size(), x) == 0 && !exists(stem)) {
                    stem.resize(stem.size() - x.size());  // TS imports "./x.js" for x.ts
                    break;
                }
            }
            for (const char* ext : {"", ".ts", ".tsx", ".d.ts", ".js", ".mjs", ".cjs", ".jsx",
                                    "/index.ts", "/index.tsx", "/index.js"}) {
                if (exists(stem + ext)) {
                    add(stem + ext);
                    break;
                }
            }
        }
    }
    return out;
}

std::vector<ContextBlock> imports_context(const Repo& repo, const std::string& file, size_t bytes) {
    std::vector<ContextBlock> ranked;
    for (const std::string& rel : imports_of(repo, file)) {
        const std::string& t = repo.texts.at(rel);
        const auto n = static_cast<uint32_t>(line_starts(t).size());
        ranked.push_back({rel, 0, n > 0 ? n - 1 : 0, t});
    }
    return fit(ranked, bytes, file, /*truncate=*/true);
}

std::vector<ContextBlock> ring_context(const Repo& repo, const std::string& file, uint64_t seed,
                                       size_t bytes) {
    constexpr size_t kRingFiles = 16, kChunkLines = 64;
    std::vector<std::string> trace = imports_of(repo, file);
    std::vector<std::string> folder;
    const std::string dir = parent_of(file);
    for (const auto& [rel, t] : repo.texts)
        if (rel != file && parent_of(rel) == dir &&
            std::find(trace.begin(), trace.end(), rel) == trace.end())
            folder.push_back(rel);
    std::mt19937_64 rng(seed ^ std::hash<std::string>{}(file));
    std::shuffle(folder.begin(), folder.end(), rng);
    trace.insert(trace.end(), folder.begin(), folder.end());
    if (trace.size() > kRingFiles) trace.resize(kRingFiles);
    std::vector<ContextBlock> chunks;
    for (const std::string& rel : trace) {
        const std::string& t = repo.texts.at(rel);
        const std::vector<size_t> starts = line_starts(t);
        const size_t at = rng() % starts.size();
        const size_t first = at > kChunkLines / 2 ? at - kChunkLines / 2 : 0;
        const size_t last = std::min(starts.size(), first + kChunkLines) - 1;
        const size_t end = last + 1 < starts.size() ? starts[last + 1] : t.size();
        chunks.push_back({rel, static_cast<uint32_t>(first), static_cast<uint32_t>(last),
                          t.substr(starts[first], end - starts[first])});
    }
    return fit(chunks, bytes, file, /*truncate=*/false);
}

std::string bm25_query(std::string_view before_cursor) {
    std::vector<std::string> words;  // nearest first
    std::unordered_set<std::string> seen;
    size_t i = before_cursor.size();
    while (i > 0 && words.size() < 32) {
        while (i > 0 && !ident_char(static_cast<unsigned char>(before_cursor[i - 1]))) --i;
        size_t s = i;
        while (s > 0 && ident_char(static_cast<unsigned char>(before_cursor[s - 1]))) --s;
        if (s < i && !std::isdigit(static_cast<unsigned char>(before_cursor[s]))) {
            std::string w(before_cursor.substr(s, i - s));
            if (seen.insert(w).second) words.push_back(std::move(w));
        }
        i = s;
    }
    std::string q;
    for (auto it = words.rbegin(); it != words.rend(); ++it) q += (q.empty() ? "" : " ") + *it;
    return q;
}

Score score(const std::vector<ContextBlock>& blocks, const std::vector<Needed>& needed,
            const std::string& marker, const std::function<size_t(std::string_view)>& count) {
    Score s;
    s.needed = needed.size();
    std::vector<std::set<uint32_t>> shown(blocks.size());  // lines of found definitions
    for (const Needed& n : needed) {
        bool found = false;
        for (size_t i = 0; i < blocks.size(); ++i) {
            const ContextBlock& b = blocks[i];
            for (const Tag& d : n.definitions) {
                if (d.file != b.path) continue;
                if (b.start_line <= d.line && d.line <= b.end_line) found = true;
                for (uint32_t l = std::max(d.line, b.start_line); l <= std::min(d.end, b.end_line);
                     ++l)
                    shown[i].insert(l);
            }
        }
        if (found) ++s.found;
    }
    for (size_t i = 0; i < blocks.size(); ++i) {
        const ContextBlock& b = blocks[i];
        s.tokens += count(header(marker, b) + b.text);
        if (shown[i].empty()) continue;
        const std::vector<std::string> ls = lines_of(b.text);
        std::string part;
        for (uint32_t l : shown[i])
            if (l - b.start_line < ls.size()) part += ls[l - b.start_line] + "\n";
        s.needed_tokens += count(part);
    }
    return s;
}

}  // namespace latent::agent::context_bench
