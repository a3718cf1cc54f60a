// The inline-completion pipeline's pure parts: laying out the FIM prompt for the prefix
// cache, post-processing what the model wrote, and the "typed through the suggestion"
// cache. No threads, no protocol, no model: server.cpp wires these to documents, the
// index and a Generator.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/generator.h"

namespace latent::agent {

// A retrieved or recently touched piece of the workspace, shown to the model ahead of
// the file.
struct ContextBlock {
    std::string path;  // workspace-relative when known
    uint32_t start_line = 0, end_line = 0;
    std::string text;
};

struct PromptBudget {
    // Estimated tokens (4 bytes a token, as the index estimates) for each part.
    size_t context_tokens = 1024;
    size_t prefix_tokens = 1536;
    // The suffix comes after the prefix in the FIM order, so it is recomputed whenever the
    // prefix changes: when the cursor moves elsewhere or into the next block of
    // middle_lines (what is typed goes into the middle, after it). 128 tokens (10-15
    // lines) keep the lines that matter for where the middle ends.
    size_t suffix_tokens = 128;
    // The prefix starts at a multiple of this many lines, so it does not move while the
    // user types (and the cached prompt prefix survives keystrokes).
    uint32_t stride_lines = 32;
    // The prefix ends at a multiple of this many lines (or at its start, if later), and
    // the lines from there to the cursor begin the middle: typing down through a block
    // keeps prefix and suffix, so a new line recomputes its own tokens, not the suffix.
    uint32_t middle_lines = 8;
};

// Smaller budgets, largest first, for a prompt that must arrive within a latency target
// when `full`'s would not: each rung halves the one before — the retrieved context first
// goes (none below 128 tokens: `latent bench context` shows recall at 256 already two
// thirds of 2,048's), the prefix down to 16 tokens, the suffix to 8 — and starts its
// prefix at a multiple of middle_lines, so that keystrokes in a block keep its tokens.
std::vector<PromptBudget> smaller_budgets(const PromptBudget& full);

struct FimLayout {
    FimPrompt prompt;
    uint32_t first_line = 0;  // first line of the file in `prompt.prefix`
};

// The comment marker for a file's language, guessed from its extension ("//" or "#").
std::string comment_marker(std::string_view path);

// Lays out a FIM prompt for a cursor at byte `cursor` of `text` (the file at `path`).
// Context blocks are sorted by (path, start line), de-duplicated, the cursor's own file
// excluded, and kept while they fit; each is headed "<marker> <path>:<line>". Then
// "<marker> <path>\n"; the prefix is the file from the stable first line to the start of
// the last line at a multiple of budget.middle_lines at or before the cursor's (or the
// first line, if later), the middle from there to the cursor, the suffix whole lines from the
// cursor on (the cursor's line always, then while the budget allows).
FimLayout layout_fim_prompt(std::string_view text, size_t cursor, std::string_view path,
                            std::vector<ContextBlock> context, const PromptBudget& budget);

// What the post-processor knows about the cursor.
struct CursorText {
    std::string line_prefix;  // the cursor's line before the cursor
    std::string line_suffix;  // the cursor's line after the cursor (no line break)
    std::string after;        // the lines after the cursor's line (up to a few KB)
};
CursorText cursor_text(std::string_view text, size_t cursor);

// Cleans up a raw completion, in this order: mid-line cursors get one line; the text
// stops where it starts repeating what follows the cursor (the rest of the line, or the
// next non-blank line); it is cut at the first line indented less than the cursor's
// block; a closing bracket that the completion did not open and that the rest of the line
// already has (or that mismatches) ends it; a multi-line completion left with unclosed
// brackets is cut back to its last balanced line end; trailing blank space is dropped.
// Returns "" when nothing but whitespace is left.
std::string postprocess(std::string_view completion, const CursorText& at);

// Remembers recent suggestions so that typing the first characters of one returns the
// rest without asking the model (and without the latency).
//
// Thread safety: every method locks.
class SuggestionCache {
public:
    static constexpr size_t kEntries = 16;
    // `before` is the document text before the cursor, `after` the text after it.
    void put(const std::string& uri, std::string_view before, std::string_view after,
             std::string suggestion);
    // The rest of a suggestion whose prefix the user has typed since (non-empty), or the
    // whole suggestion when asked again at the same place.
    std::optional<std::string> get(const std::string& uri, std::string_view before,
                                   std::string_view after);
    void forget(const std::string& uri);
    uint64_t hits() const;

private:
    struct Entry {
        std::string uri;
        size_t before_len = 0;
        uint64_t before_hash = 0, after_hash = 0;
        std::string suggestion;
    };
    mutable std::mutex mu_;
    std::deque<Entry> entries_;  // newest first
    uint64_t hits_ = 0;
};

uint64_t text_hash(std::string_view s);

// The time limit of an inline completion (the rule of llama.cpp's t_max_predict_ms): once
// `limit` has passed since the first text and the text holds a line break, the
// completion has enough — at least one whole line — and stops. A zero limit never stops.
// With a deadline too (the latency target): at the deadline it stops whatever the text
// holds, and past_deadline() says so (the caller then keeps the partial line: better
// than nothing, or than being late).
class GenerationTimeLimit {
public:
    explicit GenerationTimeLimit(
        std::chrono::milliseconds limit,
        std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt)
        : limit_(limit), deadline_(deadline) {}
    // Called with all the text so far each time it grows; the first call starts the clock.
    bool operator()(std::string_view text, std::chrono::steady_clock::time_point now);
    bool past_deadline() const { return past_deadline_; }

private:
    std::chrono::milliseconds limit_;
    std::optional<std::chrono::steady_clock::time_point> deadline_;
    std::optional<std::chrono::steady_clock::time_point> first_;
    bool past_deadline_ = false;
};

// `text` up to its last line break (not included); all of it when it has none.
std::string_view whole_lines(std::string_view text);

}  // namespace latent::agent
