// Retrieval queries and the ranking of context_for.
#include "index/retrieval.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <set>
#include <tuple>
#include <unordered_set>

namespace latent::index {
namespace {

constexpr const char* kSymbolColumns =
    "f.path, s.name, s.kind, s.container, s.start_line, s.start_col, s.end_line, s.end_col, "
    "s.start_byte, s.end_byte, s.name_line, s.name_col, s.signature, s.doc, s.file_id";

SymbolHit read_symbol(const Statement& s) {
    SymbolHit h;
    h.path = s.text(0);
    Definition& d = h.definition;
    d.name = s.text(1);
    d.kind = s.text(2);
    d.container = s.text(3);
    auto u = [&](int c) { return static_cast<uint32_t>(s.int64(c)); };
    d.range = {{u(4), u(5)}, {u(6), u(7)}, u(8), u(9)};
    d.name_range.start = {u(10), u(11)};
    d.name_range.end = {u(10), u(11) + static_cast<uint32_t>(d.name.size())};
    d.signature = s.text(12);
    d.doc = s.text(13);
    h.file_id = s.int64(14);
    return h;
}

bool is_word(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           static_cast<unsigned char>(c) >= 0x80;
}

size_t tokens_of(size_t bytes) { return (bytes + 3) / 4; }

// Number of leading path components two paths share (same folder = closer).
size_t shared_dirs(std::string_view a, std::string_view b) {
    size_t n = 0, i = 0;
    while (i < a.size() && i < b.size() && a[i] == b[i]) {
        if (a[i] == '/') ++n;
        ++i;
    }
    return n;
}

}  // namespace

std::string fts_query(std::string_view text) {
    std::vector<std::string> words;
    std::set<std::string> seen;
    size_t i = 0;
    while (i < text.size() && words.size() < 32) {
        while (i < text.size() && !is_word(text[i])) ++i;
        size_t j = i;
        while (j < text.size() && is_word(text[j])) ++j;
        if (j > i) {
            std::string w(text.substr(i, std::min<size_t>(j - i, 64)));  // longer: not a name
            if (seen.insert(w).second) words.push_back(std::move(w));
        }
        i = j;
    }
    std::string q;
    for (const auto& w : words) {
        if (!q.empty()) q += " OR ";
        q += '"' + w + '"';  // words hold no '"' (is_word), so quoting is exact
    }
    return q;
}

std::vector<SymbolHit> Retrieval::definitions(std::string_view name, size_t limit) {
    Statement& s =
        store_.cached(std::string("SELECT ") + kSymbolColumns +
                      " FROM (SELECT * FROM symbols WHERE name = ? ORDER BY id LIMIT ?) s"
                      " JOIN files f ON f.id = s.file_id ORDER BY f.path, s.start_byte");
    s.bind(1, name).bind(2, static_cast<int64_t>(limit));
    std::vector<SymbolHit> out;
    while (s.step()) out.push_back(read_symbol(s));
    return out;
}

std::vector<SymbolHit> Retrieval::symbols_in(std::string_view path) {
    Statement s = store_.prepare(std::string("SELECT ") + kSymbolColumns +
                                 " FROM symbols s JOIN files f ON f.id = s.file_id "
                                 "WHERE f.path = ? ORDER BY s.name_line, s.name_col, s.id");
    s.bind(1, path);
    std::vector<SymbolHit> out;
    while (s.step()) out.push_back(read_symbol(s));
    return out;
}

std::vector<ChunkHit> Retrieval::search(std::string_view text, size_t k) {
    const std::string q = fts_query(text);
    if (q.empty() || k == 0) return {};
    Statement& s = store_.cached(
        // Rank inside FTS5 first (index data only), then read the text of the k best.
        "SELECT f.path, c.start_line, c.end_line, c.kind, c.name, c.text, m.score FROM "
        "(SELECT rowid AS id, bm25(chunks_fts, 2.0, 1.0) AS score FROM chunks_fts "
        "WHERE chunks_fts MATCH ? ORDER BY score, rowid LIMIT ?) m "
        "JOIN chunks c ON c.id = m.id JOIN files f ON f.id = c.file_id ORDER BY m.score, c.id");
    s.bind(1, q).bind(2, static_cast<int64_t>(std::min<size_t>(k, 1000)));
    std::vector<ChunkHit> out;
    while (s.step()) {
        ChunkHit h;
        h.path = s.text(0);
        h.start_line = static_cast<uint32_t>(s.int64(1));
        h.end_line = static_cast<uint32_t>(s.int64(2));
        h.kind = s.text(3);
        h.name = s.text(4);
        h.text = s.text(5);
        h.score = sqlite3_column_double(s.get(), 6);
        out.push_back(std::move(h));
    }
    return out;
}

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// A quoted FTS5 phrase of the words FTS5's tokenizer would see in `text` (runs of ASCII
// letters and digits or non-ASCII bytes); "" when there are none. Quoted, so no user
// text is ever FTS syntax.
std::string fts_phrase(std::string_view text) {
    std::string words;
    size_t i = 0;
    while (i < text.size()) {
        auto tok = [&](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) ||
                   static_cast<unsigned char>(c) >= 0x80;
        };
        while (i < text.size() && !tok(text[i])) ++i;
        size_t j = i;
        while (j < text.size() && tok(text[j])) ++j;
        if (j > i) {
            if (!words.empty()) words += ' ';
            words.append(text.substr(i, j - i));
        }
        i = j;
    }
    return words.empty() ? std::string() : '"' + words + '"';
}

}  // namespace

std::vector<ReferenceHit> Retrieval::references(std::string_view name, size_t limit) {
    std::vector<ReferenceHit> out;
    const std::string phrase = fts_phrase(name);
    if (phrase.empty() || limit == 0) return out;
    // Chunks cover their files without overlapping, so walking the chunks holding the
    // name in (path, line) order and each one's refs rows in line order gives the uses
    // in order. Two chunks can share a line (one ends where the next starts): a line is
    // read once per file.
    Statement chunks = store_.prepare(
        "SELECT c.file_id, f.path, c.start_line, c.end_line FROM "
        "(SELECT rowid AS id FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT ?) m "
        "JOIN chunks c ON c.id = m.id JOIN files f ON f.id = c.file_id "
        "ORDER BY f.path, c.start_line, c.id");
    chunks.bind(1, phrase).bind(2, static_cast<int64_t>(kMaxReferenceChunks));
    Statement& rows = store_.cached(
        "SELECT line, uses FROM refs WHERE file_id = ? AND line >= ? AND line <= ? "
        "ORDER BY line, n");
    int64_t last_file = -1, next_line = 0;
    while (out.size() < limit && chunks.step()) {
        const int64_t file_id = chunks.int64(0);
        int64_t first = chunks.int64(2);
        const int64_t end = chunks.int64(3);
        if (file_id == last_file) first = std::max(first, next_line);
        last_file = file_id;
        if (first > end) continue;
        next_line = end + 1;
        const std::string path = chunks.text(1);
        rows.reset();
        rows.bind(1, file_id).bind(2, first).bind(3, end);
        while (out.size() < limit && rows.step()) {
            const auto line = static_cast<uint32_t>(rows.int64(0));
            const auto* p = sqlite3_column_text(rows.get(), 1);
            const std::string_view uses(reinterpret_cast<const char*>(p),
                                        p ? sqlite3_column_bytes(rows.get(), 1) : 0);
            for (const auto& u : parse_uses(uses)) {
                if (u.name != name) continue;
                out.push_back({path, line, u.col});
                if (out.size() >= limit) break;
            }
        }
        rows.reset();  // an unfinished statement would pin this reader's snapshot
    }
    return out;
}

std::vector<std::string> Retrieval::files_mentioning(std::string_view name, size_t limit) {
    std::vector<std::string> out;
    const std::string phrase = fts_phrase(name);
    if (phrase.empty() || limit == 0) return out;
    Statement q = store_.prepare(
        "SELECT DISTINCT f.path FROM "
        "(SELECT rowid AS id FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT ?) m "
        "JOIN chunks c ON c.id = m.id JOIN files f ON f.id = c.file_id ORDER BY f.path LIMIT ?");
    q.bind(1, phrase)
        .bind(2, static_cast<int64_t>(kMaxReferenceChunks))
        .bind(3, static_cast<int64_t>(limit));
    while (q.step()) out.push_back(q.text(0));
    return out;
}

std::vector<std::string> Retrieval::files(std::string_view query, size_t limit) {
    std::vector<std::string> out;
    if (limit == 0) return out;
    if (query.empty()) {
        Statement& s = store_.cached("SELECT path FROM files ORDER BY path LIMIT ?");
        s.bind(1, static_cast<int64_t>(limit));
        while (s.step()) out.push_back(s.text(0));
        s.reset();
        return out;
    }
    const std::string q = lower(query);
    struct Match {
        int rank;  // 0 basename substring, 1 path substring, 2 subsequence
        std::string path;
    };
    std::vector<Match> matches;
    Statement& s = store_.cached("SELECT path FROM files ORDER BY path");
    while (s.step()) {
        std::string path = s.text(0);
        const std::string l = lower(path);
        const size_t slash = l.rfind('/');
        const std::string_view base = slash == std::string::npos
                                          ? std::string_view(l)
                                          : std::string_view(l).substr(slash + 1);
        int rank;
        if (base.find(q) != std::string_view::npos) {
            rank = 0;
        } else if (l.find(q) != std::string::npos) {
            rank = 1;
        } else {
            size_t i = 0;
            for (char c : l)
                if (i < q.size() && c == q[i]) ++i;
            if (i < q.size()) continue;
            rank = 2;
        }
        matches.push_back({rank, std::move(path)});
    }
    s.reset();
    std::sort(matches.begin(), matches.end(), [](const Match& a, const Match& b) {
        return std::tuple(a.rank, a.path.size(), std::string_view(a.path)) <
               std::tuple(b.rank, b.path.size(), std::string_view(b.path));
    });
    for (size_t i = 0; i < matches.size() && i < limit; ++i)
        out.push_back(std::move(matches[i].path));
    return out;
}

std::vector<SymbolHit> Retrieval::symbols(std::string_view query, size_t limit) {
    std::vector<SymbolHit> hits;
    if (query.empty() || limit == 0) return hits;
    // Exact names through the symbols(name) index: never crowded out by the prefix's cap.
    Statement& exact =
        store_.cached(std::string("SELECT ") + kSymbolColumns +
                      " FROM (SELECT * FROM symbols WHERE name = ? ORDER BY id LIMIT ?) s"
                      " JOIN files f ON f.id = s.file_id");
    exact.bind(1, query).bind(2, static_cast<int64_t>(std::min<size_t>(limit, 1000)));
    std::vector<SymbolHit> rows;
    while (exact.step()) rows.push_back(read_symbol(exact));
    exact.reset();
    // A prefix query over symbols_fts: the first kPrefixRows symbols (by id) whose name
    // has a word starting with the query; a common prefix ("get") is capped, not ranked
    // over the whole index.
    constexpr int64_t kPrefixRows = 2000;
    if (const std::string phrase = fts_phrase(query); !phrase.empty()) {
        Statement& prefix =
            store_.cached(std::string("SELECT ") + kSymbolColumns +
                          " FROM (SELECT rowid AS id FROM symbols_fts WHERE symbols_fts MATCH ? "
                          "ORDER BY rowid LIMIT ?) m JOIN symbols s ON s.id = m.id "
                          "JOIN files f ON f.id = s.file_id");
        prefix.bind(1, phrase + "*").bind(2, kPrefixRows);
        while (prefix.step()) rows.push_back(read_symbol(prefix));
        prefix.reset();
    }
    const std::string q = lower(query);
    struct Ranked {
        int rank;
        SymbolHit hit;
    };
    std::vector<Ranked> ranked;
    std::set<std::tuple<int64_t, uint32_t, std::string>> dup;  // (file, start byte, name)
    for (auto& h : rows) {
        const Definition& d = h.definition;
        if (!dup.insert({h.file_id, d.range.start_byte, d.name}).second) continue;
        const std::string l = lower(d.name);
        const int rank = d.name == query ? 0 : l == q ? 1 : l.compare(0, q.size(), q) == 0 ? 2 : 3;
        ranked.push_back({rank, std::move(h)});
    }
    std::sort(ranked.begin(), ranked.end(), [](const Ranked& a, const Ranked& b) {
        const Definition& x = a.hit.definition;
        const Definition& y = b.hit.definition;
        return std::tuple(a.rank, x.name.size(), std::string_view(x.name),
                          std::string_view(a.hit.path), x.range.start_byte) <
               std::tuple(b.rank, y.name.size(), std::string_view(y.name),
                          std::string_view(b.hit.path), y.range.start_byte);
    });
    for (size_t i = 0; i < ranked.size() && i < limit; ++i)
        hits.push_back(std::move(ranked[i].hit));
    return hits;
}

int64_t Retrieval::chunks_holding(const std::string& term, int64_t cap) {
    Statement& v = store_.cached("PRAGMA data_version");
    // data_version moves with other connections' commits, total_changes with this one's:
    // the cache never outlives the index state it was read from (determinism).
    const int64_t version =
        (v.step() ? v.int64(0) : 0) * 1'000'003 + sqlite3_total_changes64(store_.handle());
    v.reset();
    if (version != df_version_ || df_cache_.size() > 200'000) {
        df_cache_.clear();
        df_version_ = version;
    }
    const std::string key = term + '\0' + std::to_string(cap);
    if (auto it = df_cache_.find(key); it != df_cache_.end()) return it->second;
    // Counting stops past `cap`: FTS5 reads the doclist lazily, so a common word costs no
    // more than a rare one (chunks_vocab would read all of its doclist).
    Statement& df = store_.cached(
        "SELECT count(*) FROM (SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT ?)");
    df.bind(1, "\"" + term + "\"").bind(2, cap + 1);
    const int64_t n = df.step() ? df.int64(0) : 0;
    df.reset();
    df_cache_.emplace(key, n);
    return n;
}

std::vector<Snippet> Retrieval::context_for(std::string_view path, Point position,
                                            size_t token_budget, const ContextOptions& o) {
    // One read transaction for the dozens of statements below: one snapshot (a
    // consistent answer) and one lock instead of one per statement.
    struct ReadTransaction {
        Store& store;
        bool began = false;
        explicit ReadTransaction(Store& s) : store(s) {
            if (sqlite3_get_autocommit(store.handle())) {
                store.cached("BEGIN").step();
                began = true;
            }
        }
        ~ReadTransaction() {
            if (began && !sqlite3_get_autocommit(store.handle())) {
                try {
                    store.cached("COMMIT").step();
                } catch (const StoreError&) {
                    sqlite3_exec(store.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
                }
            }
        }
        ReadTransaction(const ReadTransaction&) = delete;
        ReadTransaction& operator=(const ReadTransaction&) = delete;
    } read_transaction(store_);
    std::vector<Snippet> out;
    size_t used = 0;
    std::set<std::pair<std::string, uint32_t>> taken;  // (path, start_line)
    auto add = [&](Snippet s) {
        const size_t t = tokens_of(s.text.size() + s.path.size() + 16);
        if (used + t > token_budget) return;
        if (!taken.insert({s.path, s.start_line}).second) return;
        used += t;
        out.push_back(std::move(s));
    };
    const auto file = store_.file(path);

    // 1. Identifiers near the cursor, nearest first (line distance, then column).
    std::vector<std::string> names;
    std::map<std::string, uint32_t> used_at;
    if (file) {
        // Line by line outwards from the cursor (the two lines at one distance together),
        // each one row of refs (found by its key), stopping once enough names are
        // found; columns farther than window_bytes from the cursor's are not "near" (a
        // generated file's 100 KB line would otherwise be read and sorted whole).
        Statement& s = store_.cached("SELECT uses FROM refs WHERE file_id = ? AND line = ?");
        const uint32_t col_lo =
            position.column > o.window_bytes ? position.column - o.window_bytes : 0;
        const uint32_t col_hi = static_cast<uint32_t>(
            std::min<uint64_t>(uint64_t{position.column} + o.window_bytes, UINT32_MAX));
        struct Near {
            uint32_t col_distance;
            std::string name;
            uint32_t line;
        };
        std::vector<Near> uses;
        const uint64_t reach = uint64_t{o.window_lines} + o.far_lines;
        for (uint32_t d = 0; d <= reach && names.size() < o.max_names; ++d) {
            uses.clear();
            for (int side = 0; side < (d == 0 ? 1 : 2); ++side) {
                if (side == 0 && d > position.line) continue;
                const uint32_t line = side == 0 ? position.line - d : position.line + d;
                s.reset();
                s.bind(1, file->id).bind(2, int64_t{line});
                if (!s.step()) continue;
                const auto* p = sqlite3_column_text(s.get(), 0);
                const std::string_view row(reinterpret_cast<const char*>(p),
                                           p ? sqlite3_column_bytes(s.get(), 0) : 0);
                for (const auto& u : parse_uses(row, col_lo, col_hi)) {
                    uses.push_back(
                        {static_cast<uint32_t>(std::abs(int64_t{u.col} - position.column)),
                         std::string(u.name), line});
                }
            }
            s.reset();  // an unfinished statement would pin this reader's snapshot
            std::sort(uses.begin(), uses.end(), [](const Near& a, const Near& b) {
                return std::tie(a.col_distance, a.name, a.line) <
                       std::tie(b.col_distance, b.name, b.line);
            });
            for (auto& u : uses) {
                if (names.size() >= o.max_names) break;
                if (used_at.emplace(u.name, u.line).second) names.push_back(std::move(u.name));
            }
        }
    }

    // 2. Their definitions: other files first; within a name, closer folders first.
    struct Candidate {
        bool same_file;
        size_t name_rank;
        size_t closeness;  // negated in the sort: more shared folders first
        uint32_t distance;
        SymbolHit hit;
    };
    std::vector<Candidate> cands;
    // Ranked on a few columns of each definition; only the kept ones are read whole (a
    // common name has dozens of definitions, each with its doc comment).
    struct Lean {
        int64_t id;
        std::string path;
        uint32_t start_line, end_line, start_byte;
    };
    Statement& lean = store_.cached(
        "SELECT s.id, f.path, s.start_line, s.end_line, s.start_byte FROM "
        "(SELECT id, file_id, start_line, end_line, start_byte FROM symbols WHERE name = ? "
        "ORDER BY id LIMIT ?) s JOIN files f ON f.id = s.file_id");
    Statement& full = store_.cached(std::string("SELECT ") + kSymbolColumns +
                                    " FROM symbols s JOIN files f ON f.id = s.file_id "
                                    "WHERE s.id = ?");
    for (size_t r = 0; r < names.size(); ++r) {
        struct Ranked {
            bool same_file;
            size_t closeness;
            uint32_t distance;
            Lean def;
        };
        std::vector<Ranked> per;
        lean.reset();
        lean.bind(1, names[r]).bind(2, static_cast<int64_t>(o.max_definitions_per_name));
        while (lean.step()) {
            Lean l{lean.int64(0), lean.text(1), static_cast<uint32_t>(lean.int64(2)),
                   static_cast<uint32_t>(lean.int64(3)), static_cast<uint32_t>(lean.int64(4))};
            const bool same = l.path == path;
            if (same && !o.current_file) continue;
            if (same && l.start_line <= position.line && l.end_line >= position.line)
                continue;  // the definition the cursor is in: already in the prompt
            const uint32_t dist =
                same ? static_cast<uint32_t>(std::abs(static_cast<int64_t>(l.start_line) -
                                                      static_cast<int64_t>(position.line)))
                     : 0;
            const size_t closeness = shared_dirs(l.path, path);
            per.push_back({same, closeness, dist, std::move(l)});
        }
        lean.reset();
        std::sort(per.begin(), per.end(), [](const Ranked& a, const Ranked& b) {
            return std::tuple(a.same_file, -static_cast<int64_t>(a.closeness), a.distance,
                              std::string_view(a.def.path), a.def.start_byte, a.def.id) <
                   std::tuple(b.same_file, -static_cast<int64_t>(b.closeness), b.distance,
                              std::string_view(b.def.path), b.def.start_byte, b.def.id);
        });
        if (per.size() > o.per_name) per.resize(o.per_name);
        for (auto& p : per) {
            full.reset();
            full.bind(1, p.def.id);
            if (!full.step()) continue;
            cands.push_back({p.same_file, r, p.closeness, p.distance, read_symbol(full)});
        }
        full.reset();
    }
    std::stable_sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) {
        return std::tuple(a.same_file, a.name_rank, a.distance) <
               std::tuple(b.same_file, b.name_rank, b.distance);
    });
    Statement& chunk = store_.cached(
        "SELECT start_byte, end_byte, text FROM chunks WHERE file_id = ? AND start_byte <= ? "
        "ORDER BY start_byte DESC LIMIT 1");
    for (auto& c : cands) {
        const Definition& d = c.hit.definition;
        Snippet s;
        s.path = c.hit.path;
        s.start_line = d.range.start.line;
        s.end_line = d.range.end.line;
        chunk.reset();
        chunk.bind(1, c.hit.file_id).bind(2, int64_t{d.range.start_byte});
        if (d.range.end_byte - d.range.start_byte <= o.max_snippet_bytes && chunk.step() &&
            chunk.int64(1) >= int64_t{d.range.end_byte}) {
            const std::string text = chunk.text(2);
            const size_t off = d.range.start_byte - static_cast<size_t>(chunk.int64(0));
            s.text = text.substr(std::min(off, text.size()), d.range.end_byte - d.range.start_byte);
            chunk.reset();
        } else {
            chunk.reset();
            if (!d.doc.empty() && d.doc.size() + 1 + d.signature.size() <= o.max_snippet_bytes)
                s.text = d.doc + "\n";
            s.text += d.signature;
            s.start_line = s.end_line = d.name_range.start.line;
        }
        s.why = "definition of " + d.name + " (used at line " +
                std::to_string(used_at[d.name] + 1) + ")";
        add(std::move(s));
    }

    // 3. Chunks like the code around the cursor (not the cursor's own chunk). BM25 scores
    // every chunk holding any asked word, so words are taken nearest first while the
    // chunks holding them stay within o.similar_postings (a query must take
    // milliseconds whatever the size of the index); a word in too many chunks says
    // little anyway and is skipped. Counting a word's chunks reads its postings (up to
    // the cap), so the words weighed at all are bounded too: four times the budget.
    std::string words;
    {
        int64_t postings = 0, weighed = 0;
        size_t kept = 0;
        for (const auto& n : names) {
            if (kept >= o.similar_terms || weighed > 4 * static_cast<int64_t>(o.similar_postings))
                break;
            // The tokenizer lower-cases and splits at '_' (and other non-alphanumerics).
            int64_t cost = 0;
            size_t b = 0;
            while (b < n.size()) {
                while (b < n.size() && !std::isalnum(static_cast<unsigned char>(n[b])) &&
                       static_cast<unsigned char>(n[b]) < 0x80)
                    ++b;
                size_t e = b;
                std::string term;
                while (e < n.size() && (std::isalnum(static_cast<unsigned char>(n[e])) ||
                                        static_cast<unsigned char>(n[e]) >= 0x80))
                    term += static_cast<char>(std::tolower(static_cast<unsigned char>(n[e++])));
                if (!term.empty())
                    cost += chunks_holding(term, static_cast<int64_t>(o.similar_postings));
                b = e;
            }
            weighed += cost;
            if (cost == 0 || postings + cost > static_cast<int64_t>(o.similar_postings)) continue;
            postings += cost;
            words += n + " ";
            ++kept;
        }
    }
    for (auto& h : search(words, o.similar)) {
        if (h.path == path &&
            (!o.current_file || (h.start_line <= position.line && h.end_line >= position.line)))
            continue;
        Snippet s;
        s.path = h.path;
        s.start_line = h.start_line;
        s.end_line = h.end_line;
        s.text = std::move(h.text);
        s.why = "similar code" + (h.name.empty() ? std::string() : " (" + h.name + ")");
        add(std::move(s));
    }
    return out;
}

}  // namespace latent::index
