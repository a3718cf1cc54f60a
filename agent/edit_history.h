// EditHistory: the user's recent edits, per document, as hunks a person would call one
// edit — the keystrokes of one word, one line or one block coalesced — with the whole
// lines before and after, oldest first, capped in count and size. What next-edit
// suggestions read: the prompt shows them as unified diffs, and a hunk that renames an
// identifier says what to rename elsewhere. Plain data and arithmetic on texts: the
// caller (the language server's document sync) gives each applied change — the document
// after it, where it was, the text it removed — and the time (an injected clock, in
// milliseconds). The document before the change is never needed whole: its lines are
// those of the document after, with the removed text in place of the inserted.
//
// Coalescing: a change joins the newest hunk when it is in the same document, touches
// or comes within `join_lines` lines of that hunk's lines, and follows it within
// `join_ms`; else it starts a new hunk. A hunk whose text ends up as it began (typed and
// deleted again, undone) is dropped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace latent::agent {

struct EditHunk {
    std::string uri;
    // Whole lines: [old_first, old_first + old_count) of the document before the hunk
    // became [new_first, new_first + new_count) of the document after it (0-based).
    uint32_t old_first = 0, old_count = 0;
    uint32_t new_first = 0, new_count = 0;
    std::string before, after;  // those lines' text, each line with its '\n' (the last may lack it)
    int64_t first_ms = 0, last_ms = 0;  // the first and the latest change in it
    bool operator==(const EditHunk&) const = default;
};

struct EditHistoryOptions {
    size_t max_hunks = 32;          // kept, all documents together; the oldest go first
    size_t max_hunk_bytes = 16384;  // before + after; a larger hunk is not kept (a paste,
                                    // a reformat: nothing a next edit could follow)
    uint32_t join_lines = 1;        // a change this many lines from the hunk joins it
    int64_t join_ms = 5000;         // ... when it follows the hunk's last change within this
};

// Thread safety: none; the caller serialises (the server records on its reading thread).
class EditHistory {
public:
    explicit EditHistory(EditHistoryOptions options = {});

    // One applied change: `after` is the whole document after it, in which bytes
    // [start, new_end) replaced `removed`.
    void record(const std::string& uri, std::string_view after, size_t start,
                std::string_view removed, size_t new_end, int64_t now_ms);
    // The document was closed, or replaced whole by something else: its hunks go.
    void forget(const std::string& uri);

    // Oldest first; only `uri`'s when given.
    std::vector<EditHunk> hunks(std::optional<std::string_view> uri = std::nullopt) const;

private:
    EditHistoryOptions options_;
    std::deque<EditHunk> hunks_;  // oldest first
};

// A hunk as a unified diff ("--- a/path", "+++ b/path", "@@ -l,n +l,n @@" and the lines),
// `path` as the prompt shows the file.
std::string unified_diff(const EditHunk& hunk, std::string_view path);

}  // namespace latent::agent
