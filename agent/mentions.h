// Mentions: the repository context a chat question asked for with '@' — a file (or a
// range of it), a symbol's definitions, a search of the codebase, the open editors —
// gathered into one prompt block within a token budget, with the sources it used; and
// the completion behind '@' in the chat input. Plain C++ (no JSON, no threads of its
// own); not the chat itself (agent.h) nor the index (workspace_index.h, index/).
//
// Containment: every file is read through Workspaces::resolve (real paths, whole
// components), so a uri with "..", a symlink out of a folder, or a path outside every
// folder is skipped, never read; an open document's text is preferred over the disk.
//
// Thread-safety: the functions keep no state and may run on any thread at once
// (Workspaces and DocumentStore lock; WorkspaceIndex serializes its reader).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/documents.h"
#include "agent/source.h"
#include "agent/workspaces.h"
#include "lsp/protocol.h"

namespace latent::agent {

// What the user @-mentioned in the last user message (protocol: Mention).
struct Mention {
    enum class Kind { kFile, kSymbol, kCodebase, kOpenEditors };
    Kind kind = Kind::kCodebase;
    std::string uri;                  // kFile: a file: URI
    std::optional<lsp::Range> range;  // kFile: only these lines (characters are ignored)
    std::string name;                 // kSymbol: the definition's exact name
};

struct GatherOptions {
    // The budget of the whole block in tokens (estimated at 4 bytes a token, as the
    // index's retrieval does): the chat.contextTokens setting. Default 4096.
    size_t token_budget = 4096;
    // At most this many definitions per @symbol (a name like "get" has hundreds). Default 5.
    size_t definitions_per_symbol = 5;
    // Chunks asked of each folder's BM25 search for @codebase. Default 12.
    size_t search_chunks = 12;
    // Definitions per name the question names, for @codebase. Default 3.
    size_t definitions_per_name = 3;
    // A file larger than this is read only this far (a mention of a generated 200 MB
    // file must not be read whole to show its first lines). Default 4 MiB.
    size_t max_file_bytes = 4u << 20;
};

// The context block for the prompt: each source fenced, headed by its path, line range
// and why it is there; `sources` in the same order (what the answer lists as clickable).
struct GatheredContext {
    std::string text;
    std::vector<Source> sources;
};

// Gathers the mentions' context for `question` (the last user message's text). The
// budget is split fairly: each mention in order gets an equal share of what is left, so
// an unused share passes to the next. @file: the file or its range, whole lines from the
// start while they fit. @symbol: its definitions (WorkspaceIndex::definitions) with their
// bodies read from the file. @codebase: definitions of the names in the question, then
// the index's BM25 chunks for the question's words, ranked, overlapping ranges dropped.
// openEditors: the open documents inside the folders, by URI, each capped to its share.
// Deterministic for the same workspace state. Mentions that resolve to nothing
// (outside the folders, no index yet, unknown name) add nothing.
GatheredContext gather_context(std::string_view question, const std::vector<Mention>& mentions,
                               const Workspaces& workspaces, const DocumentStore& documents,
                               const GatherOptions& options = {});

// One '@' completion item (protocol: latent/mentions items).
struct MentionItem {
    std::string label;   // file: the folder-relative path; symbol: the name
    std::string detail;  // file: the folder's name; symbol: "kind path:line" (1-based)
    std::string uri;
    std::optional<lsp::Range> range;  // symbol: its name's line (character 0)
    friend bool operator==(const MentionItem&, const MentionItem&) = default;
};

enum class MentionKind { kFile, kSymbol };

// The default and the cap of `limit` (protocol: default 20, max 100).
inline constexpr size_t kDefaultMentionLimit = 20, kMaxMentionLimit = 100;

// Completion for '@': indexed files matching `query` fuzzily (Retrieval::files) or
// definitions whose name starts with it (Retrieval::symbols), each folder's best first,
// the folders taken in turn; at most `limit` (0 means the default; capped at the max).
std::vector<MentionItem> complete_mentions(const Workspaces& workspaces, MentionKind kind,
                                           std::string_view query, size_t limit);

}  // namespace latent::agent
