// Model-driven next edits: the prompt that asks a chat model to rewrite the editable region
// around the cursor (after the user's recent edits), and the parse of its answer into the
// edits to suggest, with the filters that drop answers not worth showing. Pure functions on
// texts; asking the model (remote or local engine) and offering the edits are the caller's.
//
// The prompt (the shape of Zed's Zeta and of Copilot's next-edit prompt, in our own words),
// laid out for the prefix cache, stablest first:
//   system: fixed instructions (never changes);
//   user:   recently viewed snippets, definitions of names in the region, the edit history as
//           unified diffs (oldest first), then the file excerpt — up to ~30 lines above the
//           region, the region between <|editable_region_start|> / <|editable_region_end|>
//           with <|user_cursor|> at the cursor, up to 30 lines below — and a fixed reminder of
//           the answer's form: the rewritten region only, between the same markers, without
//           the cursor marker.
#pragma once

#include "agent/completion.h"
#include "agent/edit_history.h"
#include "agent/generator.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace latent::agent {

inline constexpr std::string_view kRegionStartMarker = "<|editable_region_start|>";
inline constexpr std::string_view kRegionEndMarker = "<|editable_region_end|>";
inline constexpr std::string_view kCursorMarker = "<|user_cursor|>";

struct NextEditModelInput {
    std::string path;       // as the prompt shows the file (workspace-relative)
    std::string_view text;  // the document's current text (borrowed)
    size_t cursor = 0;      // byte offset of the cursor in text (clamped to its size)
    // Lines of the editable region: a third above the cursor line, the rest below, shifted
    // to stay inside the document. Clamped to 1..256 (the answer is diffed line by line).
    uint32_t region_lines = 16;
    // (shown path, hunk), oldest first. The newest matter most: the prompt keeps the newest
    // max_history_hunks whose diffs fit history_bytes together (the newest one always, when
    // its diff alone is under 4 × history_bytes).
    std::vector<std::pair<std::string, EditHunk>> history;
    size_t max_history_hunks = 8;
    size_t history_bytes = 2048;
    std::vector<ContextBlock> definitions;  // index definitions of names in the region
    std::vector<ContextBlock> recent;       // recently viewed snippets (elsewhere)
    // Cap for definitions + recent together (definitions chosen first); a block that does
    // not fit whole is left out. Blocks of this file that overlap the excerpt are left out
    // (the excerpt shows them).
    size_t context_bytes = 8192;
};

struct NextEditPrompt {
    std::vector<ChatMessage> messages;        // system + user
    size_t region_start = 0, region_end = 0;  // bytes of text: whole lines
    std::string region;                       // text[region_start, region_end)
    // Enough for the region rewritten, half as much again for insertions (3 bytes a token)
    // and 64 for the markers and a fence.
    int32_t max_tokens = 0;
};

// Deterministic: the same input gives the same prompt.
NextEditPrompt build_next_edit_prompt(const NextEditModelInput& in);

struct RegionEdit {
    size_t start = 0, end = 0;  // bytes of the text the prompt was built on
    std::string new_text;
    bool operator==(const RegionEdit&) const = default;
};

// The model's answer → the edits, in order, each a changed run of lines of the region with
// its common prefix and suffix trimmed. The answer may be fenced (```), with or without the
// region markers; a cursor marker left in is removed. Do not stop the model at the end
// marker (or put it back): an answer that opens the region and never closes it is taken for
// cut off. Empty, with *why set (when given), when the answer is dropped: empty or
// unparseable, absurdly larger than the region (> 4 × + 1 KiB: the model ran away), no
// change, whitespace only, import/include/use lines only, or only the undo of `last_hunk`
// (the newest hunk of this document, when given).
std::vector<RegionEdit> parse_next_edit_answer(const NextEditPrompt& prompt, std::string_view text,
                                               std::string_view answer, const EditHunk* last_hunk,
                                               std::string* why);

}  // namespace latent::agent
