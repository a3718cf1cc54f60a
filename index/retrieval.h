// Retrieval: the questions the agent asks the index — definitions of a name, the
// symbols of a file, chunks like some text (FTS5 BM25), and the context for a cursor
// within a token budget. Read-only; not the indexing (indexer.h) nor prompt building.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "index/sqlite_store.h"

namespace latent::index {

struct SymbolHit {
    std::string path;  // relative to the workspace root
    int64_t file_id = 0;
    Definition definition;
};

struct ChunkHit {
    std::string path;
    uint32_t start_line = 0, end_line = 0;  // 0-based, inclusive
    std::string kind, name, text;
    double score = 0;  // BM25 as SQLite reports it: lower is better
};

// One use of an identifier (a refs entry; definitions' own names are not uses). Not
// extract.h's Reference (a name at a point of one file, before storing).
struct ReferenceHit {
    std::string path;
    uint32_t line = 0, col = 0;  // 0-based; col in bytes
};

struct Snippet {
    std::string path;
    uint32_t start_line = 0, end_line = 0;  // 0-based, inclusive
    std::string text;
    std::string why;  // "definition of Foo (used at line 12)", "similar code"
};

struct ContextOptions {
    // Lines above and below the cursor whose identifiers count as "near". Default 15.
    uint32_t window_lines = 15;
    // While fewer than max_names are found, this many more lines beyond the window on each
    // side are read too, nearest first (a file's imports, the names used all over it).
    // Default 0.
    uint32_t far_lines = 0;
    // Definitions and similar chunks from the cursor's own file too. A completion prompt
    // shows that file around the cursor and leaves its blocks out, so the agent turns this
    // off and the budget goes to other files. Default true.
    bool current_file = true;
    // ... and columns at most this many bytes from the cursor's. Default 2048.
    uint32_t window_bytes = 2048;
    // At most this many definitions per name (common names have hundreds). Default 3.
    size_t per_name = 3;
    // Distinct names near the cursor considered, nearest first. Default 24.
    size_t max_names = 24;
    // Definitions of one name ranked before keeping per_name (the first by path; a name
    // defined more often than this is too common to help much). Default 32.
    size_t max_definitions_per_name = 32;
    // Similar chunks asked of BM25. Default 8.
    size_t similar = 8;
    // At most this many of the nearest names make the BM25 query. Default 8.
    size_t similar_terms = 8;
    // ... and together they may occur in at most this many chunks (BM25's work).
    // Default 1500.
    size_t similar_postings = 1500;
    // A definition longer than this is shown as its doc and signature line (the signature
    // alone when those are longer too). Default 1600.
    size_t max_snippet_bytes = 1600;
};

// Thread-safety: none; give each reader thread its own Store connection and Retrieval.
// Results are in a deterministic order for the same database state.
class Retrieval {
public:
    explicit Retrieval(Store& store) : store_(store) {}

    // Definitions named exactly `name`, ordered by path then position. `limit` caps
    // the answer (a name like "get" can have thousands): the first `limit` stored are
    // kept, so the cost does not grow with the name's frequency.
    std::vector<SymbolHit> definitions(std::string_view name, size_t limit = 100);
    // A file's definitions in source order.
    std::vector<SymbolHit> symbols_in(std::string_view path);
    // The k chunks most like `text` by BM25 over chunk text and names (ties by id).
    std::vector<ChunkHit> search(std::string_view text, size_t k);
    // Every use of the identifier `name` (exact, case-sensitive), ordered by path, line,
    // column; at most `limit`. Found through chunks_fts (the chunks holding the name's
    // words), then those chunks' refs rows; at most kMaxReferenceChunks chunks are read.
    std::vector<ReferenceHit> references(std::string_view name, size_t limit);
    static constexpr size_t kMaxReferenceChunks = 20'000;
    // Paths of the files whose chunks hold the words of the identifier `name` (chunks_fts:
    // every mention, uses the refs rows miss included — a field after "->", a comment),
    // sorted, at most `limit`. A superset: the caller checks the text for the name itself.
    std::vector<std::string> files_mentioning(std::string_view name, size_t limit);
    // Workspace-relative paths of indexed files. Empty `query`: all, sorted, the first
    // `limit`. Else a fuzzy match (every query character in order, case-insensitive),
    // ranked: query a substring of the basename, then of the path, then a subsequence;
    // shorter paths first, then by path.
    std::vector<std::string> files(std::string_view query, size_t limit);
    // Definitions whose name starts with `query` (case-insensitive; also those with a word
    // starting with it, as symbols_fts splits names at '_'), ranked: exact name first,
    // then case-insensitive exact, then prefix, then word prefix; shorter names, then by
    // name, path and position. Empty query: none. The user's text is never FTS syntax.
    std::vector<SymbolHit> symbols(std::string_view query, size_t limit);
    // Snippets for a cursor at `position` in `path`: definitions of identifiers near
    // it (other files before the current one, nearer uses first), then similar chunks,
    // until `token_budget` (estimated at 4 bytes a token) is spent.
    std::vector<Snippet> context_for(std::string_view path, Point position, size_t token_budget,
                                     const ContextOptions& options = {});

private:
    Store& store_;
    // How many chunks hold a term, counted up to cap + 1 (the answer is only compared
    // with the cap); remembered until the index changes.
    std::unordered_map<std::string, int64_t> df_cache_;
    int64_t df_version_ = -1;
    int64_t chunks_holding(const std::string& term, int64_t cap);
};

// An FTS5 MATCH expression OR-ing the identifier-like words of `text` (each quoted, so
// no user text is ever FTS syntax); "" when there are none. At most 32 words.
std::string fts_query(std::string_view text);

}  // namespace latent::index
