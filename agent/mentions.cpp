// Mentions (see mentions.h): reading mentioned files, definitions and search hits into
// one budgeted context block, and '@' completion over the folders' indexes.
#include "agent/mentions.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <tuple>

namespace latent::agent {
namespace {

namespace fs = std::filesystem;

size_t tokens_of(size_t bytes) { return (bytes + 3) / 4; }
size_t left(size_t budget, size_t used) { return budget > used ? budget - used : 0; }

bool is_word(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
           static_cast<unsigned char>(c) >= 0x80;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Lines split at "\n" (a "\r" before it dropped); the views point into `text`.
std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    size_t b = 0;
    while (b <= text.size()) {
        size_t e = text.find('\n', b);
        if (e == std::string_view::npos) e = text.size();
        std::string_view line = text.substr(b, e - b);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        lines.push_back(line);
        if (e == text.size()) break;
        b = e + 1;
    }
    if (lines.size() > 1 && lines.back().empty()) lines.pop_back();  // the final newline
    return lines;
}

// The fence language: the file's extension ("a/b.py" -> "py"), "" when none.
std::string fence_language(std::string_view path) {
    const size_t slash = path.rfind('/');
    const size_t dot = path.rfind('.');
    if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash) ||
        dot + 1 >= path.size())
        return "";
    std::string ext(path.substr(dot + 1));
    for (char c : ext)
        if (!std::isalnum(static_cast<unsigned char>(c))) return "";
    return ext;
}

// Words of a question that say nothing about the code.
const std::set<std::string, std::less<>>& stop_words() {
    static const std::set<std::string, std::less<>> words = {
        "a",       "an",    "and",   "are",   "as",   "at",   "be",   "by",     "can",  "could",
        "do",      "does",  "for",   "from",  "how",  "i",    "in",   "into",   "is",   "it",
        "its",     "me",    "my",    "of",    "on",   "or",   "our",  "should", "so",   "that",
        "the",     "their", "then",  "there", "this", "to",   "us",   "was",    "we",   "what",
        "when",    "where", "which", "who",   "why",  "will", "with", "would",  "you",  "your",
        "explain", "code",  "work",  "works", "get",  "gets", "use",  "used",   "uses", "done"};
    return words;
}

// The distinct words of `question` worth searching for, in order: at least two
// characters, not stop words; at most 32 (a pasted log is not a question).
std::vector<std::string> question_words(std::string_view question) {
    std::vector<std::string> words;
    std::set<std::string> seen;
    size_t i = 0;
    while (i < question.size() && words.size() < 32) {
        while (i < question.size() && !is_word(question[i])) ++i;
        size_t j = i;
        while (j < question.size() && is_word(question[j])) ++j;
        if (j - i >= 2 && j - i <= 64) {
            std::string w(question.substr(i, j - i));
            if (!stop_words().count(lower(w)) && seen.insert(w).second)
                words.push_back(std::move(w));
        }
        i = j;
    }
    return words;
}

// The state of one gather_context call.
class Gatherer {
public:
    Gatherer(const Workspaces& ws, const DocumentStore& docs, const GatherOptions& o)
        : ws_(ws), docs_(docs), o_(o), enc_(docs.encoding()) {}

    GatheredContext out;

    // The folders' indexes, in folder order.
    std::vector<std::shared_ptr<WorkspaceIndex>> indexes() const { return ws_.indexes(); }

    // The real path of a file an index named (root-relative), or "" when it resolves
    // outside the folders (a symlink) or nowhere.
    std::string resolve_indexed(const WorkspaceIndex& idx, const std::string& rel) const {
        return ws_.resolve(path_to_uri(idx.root() + "/" + rel));
    }
    std::string resolve(const std::string& uri) const { return ws_.resolve(uri); }

    // Adds lines [first, last] (0-based, inclusive; clamped to the file) of the file at
    // `real` as one fenced block: whole lines from `first` while the block stays within
    // `budget` tokens. Returns the tokens used (0: nothing added — unreadable, empty,
    // overlapping a block already added, or not even one line fits). `client_uri` is
    // the uri the client named, tried first for an open document.
    size_t add_block(const std::string& real, uint32_t first, uint32_t last, const std::string& why,
                     size_t budget, const std::string& client_uri = "") {
        const std::shared_ptr<const std::string> text = read(real, client_uri);
        if (!text) return 0;
        const auto lines = split_lines(*text);
        if (lines.empty() || first >= lines.size()) return 0;
        last = std::min<uint32_t>(last, static_cast<uint32_t>(lines.size() - 1));
        if (first > last) return 0;
        auto& ranges = taken_[real];
        for (const auto& [a, b] : ranges)
            if (first <= b && a <= last) return 0;
        const std::string shown = ws_.shown_path(real);
        const std::string lang = fence_language(shown);
        // The header (path, two line numbers of at most 10 digits, why), the fences (one
        // longer than any backtick run inside, so the code cannot close it) and the
        // separating newline.
        size_t bytes = 0, longest_ticks = 0;
        auto overhead = [&](size_t ticks) {
            return shown.size() + why.size() + 2 * lang.size() + 30 +
                   2 * (std::max<size_t>(3, ticks + 1) + 1) + 1;
        };
        uint32_t end = first;
        bool any = false;
        for (uint32_t l = first; l <= last; ++l) {
            size_t ticks = longest_ticks, run = 0;
            for (char c : lines[l]) {
                run = c == '`' ? run + 1 : 0;
                ticks = std::max(ticks, run);
            }
            if (tokens_of(overhead(ticks) + bytes + lines[l].size() + 1) > budget) break;
            bytes += lines[l].size() + 1;
            longest_ticks = ticks;
            end = l;
            any = true;
        }
        if (!any) return 0;
        const std::string fence(std::max<size_t>(3, longest_ticks + 1), '`');
        std::string block = shown + ":" + std::to_string(first + 1) + "-" +
                            std::to_string(end + 1) + " (" + why + ")\n" + fence + lang + "\n";
        for (uint32_t l = first; l <= end; ++l) {
            block.append(lines[l]);
            block += '\n';
        }
        block += fence + "\n";
        if (!out.text.empty()) out.text += '\n';
        out.text += block;
        ranges.push_back({first, end});
        Source s;
        s.uri = path_to_uri(real);
        s.path = shown;
        s.range.start = {first, 0};
        s.range.end = {end, static_cast<uint32_t>(code_units(lines[end], enc_))};
        s.why = why;
        out.sources.push_back(std::move(s));
        return tokens_of(block.size() + 1);  // within budget: overhead() bounds the header
    }

private:
    // The text of `real`: the open document's (by the client's uri, then by the real
    // path's), else the disk's, at most max_file_bytes of it. Null when unreadable.
    std::shared_ptr<const std::string> read(const std::string& real,
                                            const std::string& client_uri) {
        if (auto it = files_.find(real); it != files_.end()) return it->second;
        std::shared_ptr<const std::string> text;
        std::optional<Document> doc;
        if (!client_uri.empty()) doc = docs_.get(client_uri);
        if (!doc) doc = docs_.get(path_to_uri(real));
        if (doc) {
            text = std::make_shared<const std::string>(std::move(doc->text));
        } else {
            std::error_code ec;
            if (fs::is_regular_file(real, ec)) {
                std::ifstream in(real, std::ios::binary);
                std::string s(o_.max_file_bytes, '\0');
                in.read(s.data(), static_cast<std::streamsize>(s.size()));
                s.resize(static_cast<size_t>(in.gcount()));
                if (!in.bad()) text = std::make_shared<const std::string>(std::move(s));
            }
        }
        files_.emplace(real, text);
        return text;
    }

    const Workspaces& ws_;
    const DocumentStore& docs_;
    const GatherOptions& o_;
    PositionEncoding enc_;
    std::map<std::string, std::vector<std::pair<uint32_t, uint32_t>>> taken_;  // real -> lines
    std::map<std::string, std::shared_ptr<const std::string>> files_;          // read once
};

size_t gather_file(Gatherer& g, const Mention& m, size_t budget) {
    const std::string real = g.resolve(m.uri);
    if (real.empty()) return 0;  // outside every folder, "..", a symlink out: never read
    uint32_t first = 0, last = UINT32_MAX;
    if (m.range) {
        first = m.range->start.line;
        last = m.range->end.line;
        // A range ending at the start of a line does not include that line.
        if (m.range->end.character == 0 && last > first) --last;
    }
    return g.add_block(real, first, last, "@file", budget, m.uri);
}

size_t gather_symbol(Gatherer& g, const Mention& m, size_t budget, const GatherOptions& o) {
    if (m.name.empty()) return 0;
    struct Def {
        std::string real;
        uint32_t first, last;
    };
    std::vector<Def> defs;
    for (const auto& idx : g.indexes()) {
        for (const auto& h : idx->definitions(m.name, o.definitions_per_symbol)) {
            if (defs.size() >= o.definitions_per_symbol) break;
            std::string real = g.resolve_indexed(*idx, h.path);
            if (real.empty()) continue;
            defs.push_back(
                {std::move(real), h.definition.range.start.line, h.definition.range.end.line});
        }
    }
    size_t used = 0;
    for (size_t i = 0; i < defs.size(); ++i) {
        const size_t share = left(budget, used) / (defs.size() - i);
        used += g.add_block(defs[i].real, defs[i].first, defs[i].last, "definition of " + m.name,
                            share);
    }
    return used;
}

size_t gather_codebase(Gatherer& g, std::string_view question, size_t budget,
                       const GatherOptions& o) {
    const std::vector<std::string> words = question_words(question);
    if (words.empty()) return 0;
    // Candidates ranked by tier: 0 definitions named exactly as a word of the question,
    // 1 the BM25 chunks for the question's words, 2 definitions whose name matches a word
    // but for case ("range" -> class Range).
    struct Candidate {
        int tier;
        double score;      // tier 1: BM25 (lower is better); else the word's index
        std::string path;  // root-relative, for the order
        uint32_t first, last;
        std::string real, why;
    };
    std::vector<Candidate> cands;
    std::string search_text, search_why;
    for (const auto& w : words) {
        search_text += w + " ";
        if (search_why.size() < 60) search_why += (search_why.empty() ? "" : " ") + w;
    }
    for (const auto& idx : g.indexes()) {
        for (size_t wi = 0; wi < words.size(); ++wi) {
            const std::string& w = words[wi];
            if (w.size() < 3) continue;
            size_t exact = 0, folded = 0;
            const std::string lw = lower(w);
            for (const auto& h : idx->symbols(w, 4 * o.definitions_per_name + 8)) {
                const std::string& name = h.definition.name;
                const bool same = name == w;
                if (!same && lower(name) != lw) continue;
                size_t& n = same ? exact : folded;
                if (n >= o.definitions_per_name) continue;
                std::string real = g.resolve_indexed(*idx, h.path);
                if (real.empty()) continue;
                ++n;
                cands.push_back({same ? 0 : 2, static_cast<double>(wi), h.path,
                                 h.definition.range.start.line, h.definition.range.end.line,
                                 std::move(real), "definition of " + name});
            }
        }
        for (const auto& h : idx->search(search_text, o.search_chunks)) {
            std::string real = g.resolve_indexed(*idx, h.path);
            if (real.empty()) continue;
            cands.push_back({1, h.score, h.path, h.start_line, h.end_line, std::move(real),
                             "search: " + search_why});
        }
    }
    std::stable_sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) {
        return std::tie(a.tier, a.score, a.path, a.first, a.real) <
               std::tie(b.tier, b.score, b.path, b.first, b.real);
    });
    // One source may take at most a third of the budget: a 2000-line class must not
    // crowd out the rest (its first lines still show what it is).
    const size_t per_source = std::max<size_t>(budget / 3, 64);
    size_t used = 0;
    for (const auto& c : cands) {
        if (left(budget, used) < 32) break;
        used +=
            g.add_block(c.real, c.first, c.last, c.why, std::min(per_source, left(budget, used)));
    }
    return used;
}

size_t gather_open_editors(Gatherer& g, const DocumentStore& docs, size_t budget) {
    std::vector<std::pair<std::string, std::string>> open;  // (uri, real) inside the folders
    for (const auto& uri : docs.uris())
        if (std::string real = g.resolve(uri); !real.empty()) open.push_back({uri, real});
    std::sort(open.begin(), open.end());
    size_t used = 0;
    for (size_t i = 0; i < open.size(); ++i) {
        const size_t share = left(budget, used) / (open.size() - i);
        used += g.add_block(open[i].second, 0, UINT32_MAX, "open editor", share, open[i].first);
    }
    return used;
}

}  // namespace

GatheredContext gather_context(std::string_view question, const std::vector<Mention>& mentions,
                               const Workspaces& workspaces, const DocumentStore& documents,
                               const GatherOptions& options) {
    Gatherer g(workspaces, documents, options);
    size_t used = 0;
    for (size_t i = 0; i < mentions.size(); ++i) {
        const size_t share = left(options.token_budget, used) / (mentions.size() - i);
        const Mention& m = mentions[i];
        size_t u = 0;
        switch (m.kind) {
            case Mention::Kind::kFile:
                u = gather_file(g, m, share);
                break;
            case Mention::Kind::kSymbol:
                u = gather_symbol(g, m, share, options);
                break;
            case Mention::Kind::kCodebase:
                u = gather_codebase(g, question, share, options);
                break;
            case Mention::Kind::kOpenEditors:
                u = gather_open_editors(g, documents, share);
                break;
        }
        used += u;
    }
    return std::move(g.out);
}

std::vector<MentionItem> complete_mentions(const Workspaces& workspaces, MentionKind kind,
                                           std::string_view query, size_t limit) {
    if (limit == 0) limit = kDefaultMentionLimit;
    limit = std::min(limit, kMaxMentionLimit);
    // Each folder's ranked answer, then the folders taken in turn.
    std::vector<std::vector<MentionItem>> per;
    for (const auto& idx : workspaces.indexes()) {
        const std::string folder_name = fs::path(idx->root()).filename().string();
        std::vector<MentionItem> items;
        if (kind == MentionKind::kFile) {
            for (const auto& rel : idx->files(query, limit)) {
                const std::string abs = idx->root() + "/" + rel;
                items.push_back({workspaces.shown_path(abs), folder_name, path_to_uri(abs), {}});
            }
        } else {
            for (const auto& h : idx->symbols(query, limit)) {
                const std::string abs = idx->root() + "/" + h.path;
                const uint32_t line = h.definition.name_range.start.line;
                items.push_back({h.definition.name,
                                 h.definition.kind + " " + workspaces.shown_path(abs) + ":" +
                                     std::to_string(line + 1),
                                 path_to_uri(abs), lsp::Range{{line, 0}, {line, 0}}});
            }
        }
        per.push_back(std::move(items));
    }
    std::vector<MentionItem> out;
    for (size_t rank = 0; out.size() < limit; ++rank) {
        bool any = false;
        for (auto& items : per) {
            if (rank >= items.size() || out.size() >= limit) continue;
            out.push_back(std::move(items[rank]));
            any = true;
        }
        if (!any) break;
    }
    return out;
}

}  // namespace latent::agent
