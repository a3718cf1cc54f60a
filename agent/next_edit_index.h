// Index-driven next edits: the edits a change at a definition implies elsewhere, found
// without a model. When the user renames an identifier where it is defined (a function,
// a type, a field, a method, a global — or a parameter or local at its declaration), the
// places that still use the old name become suggestions; when the user changes a
// function's parameter list (a parameter added, removed or moved), its call sites get the
// matching change to their arguments.
//
// Plain computation over texts: the caller gives the user's recent edits (edit_history.h),
// the document's current text and, through NextEditSources, the other files that may use
// a name (the index's references) and their current text (open documents before disk).
// Every place suggested is checked against that current text, so a stale index never
// produces an edit at the wrong bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/edit_history.h"

namespace latent::agent {

// One suggested replacement, in bytes of the file's current text.
struct SuggestedEdit {
    std::string path;           // absolute path of the file
    size_t start = 0, end = 0;  // bytes [start, end) of that file's current text ...
    std::string old_text;       // ... which hold this (checked when computed)
    std::string new_text;       // ... to be replaced by this
    uint32_t line = 0;          // 0-based line of `start`
    bool operator==(const SuggestedEdit&) const = default;
};

struct IndexNextEdits {
    std::string kind;                // "rename" | "signature"
    std::string old_name, new_name;  // rename: the identifier before and after; signature:
                                     // the function's name in both
    std::string label;               // what the editor shows: "Rename foo → bar"
    // In the order to offer them: the edited document first (from the edit down, then
    // from its top), then the other files by path, each top to bottom.
    std::vector<SuggestedEdit> edits;
};

// What the detector may ask of the workspace. Each may be null (then unused).
struct NextEditSources {
    // Absolute paths of files other than the edited one that may use the identifier
    // `name` (the index's references, deduplicated). At most `limit`.
    std::function<std::vector<std::string>(std::string_view name, size_t limit)> files_using;
    // The current text of a file (the open document's when open, else the disk's, read
    // only inside the workspace folders); nullopt when unreadable, binary or too large.
    std::function<std::optional<std::string>(const std::string& path)> read;
    // Absolute paths of the files that define `name` (the index's definitions): a rename
    // of a name defined elsewhere too is not followed into the files that define it,
    // where the name is another thing's.
    std::function<std::vector<std::string>(std::string_view name)> defined_in;
    // The absolute path of a document URI inside the workspace folders ("" outside).
    std::function<std::string(const std::string& uri)> resolve;
};

struct NextEditLimits {
    size_t max_files = 200;        // other files searched
    size_t max_edits = 500;        // suggestions kept
    int64_t max_age_ms = 120'000;  // a definition change older than this is not followed
    size_t max_hunks = 8;          // newest hunks looked at for a definition change
};

// Where the user is: the document's absolute path and the byte of the cursor in its
// current text (suggestions in it come first, from the cursor down).
struct NextEditCursor {
    std::string path;
    size_t offset = 0;
};

// The edits implied by the newest definition change among `history` (all documents,
// oldest first, as EditHistory::hunks gives them; each hunk's document read through
// `sources.resolve` and `sources.read`). None when no recent hunk renames a defined
// identifier or changes a parameter list, or when nothing is left to change (every use
// already renamed: the user accepted them all, or did them by hand). `now_ms` on the
// history's clock.
std::optional<IndexNextEdits> index_next_edits(const std::vector<EditHunk>& history,
                                               const NextEditCursor& cursor, int64_t now_ms,
                                               const NextEditSources& sources,
                                               const NextEditLimits& limits = {});

}  // namespace latent::agent
