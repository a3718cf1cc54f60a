// EditHistory (see edit_history.h).
#include "agent/edit_history.h"

#include <algorithm>

#include "agent/text_lines.h"

namespace latent::agent {

namespace {

// Lines [first, first + count) of `text`, each with its '\n'.
std::string lines(std::string_view text, uint32_t first, uint32_t count) {
    const size_t a = line_start(text, first);
    const size_t e = line_start(text, first + count);
    return std::string(text.substr(a, e - a));
}

bool at_line_start(std::string_view text, size_t offset) {
    return offset == 0 || (offset <= text.size() && text[offset - 1] == '\n');
}

}  // namespace

EditHistory::EditHistory(EditHistoryOptions options) : options_(options) {}

void EditHistory::record(const std::string& uri, std::string_view after, size_t start,
                         std::string_view removed, size_t new_end, int64_t now_ms) {
    start = std::min(start, after.size());
    new_end = std::clamp(new_end, start, after.size());
    if (removed == after.substr(start, new_end - start)) return;
    // The change's whole lines: [first, b_end) of the document before it became
    // [first, a_end) of `after`. They end with the line holding the rest of the text after
    // the change, which is the same in both — unless the change ends at a line start in
    // both, when that line is not touched at all (a line inserted or deleted whole).
    const uint32_t first = line_of(after, start);
    const size_t first_at = line_start(after, first);
    // Where the change ends in the document before: at a line start when what precedes it
    // there (the removed text, else the line's text before `start`) ends with '\n'.
    const bool b_ends_line = removed.empty() ? at_line_start(after, start) : removed.back() == '\n';
    const uint32_t removed_lines =
        static_cast<uint32_t>(std::count(removed.begin(), removed.end(), '\n'));
    uint32_t b_end = first + removed_lines + 1, a_end = line_of(after, new_end) + 1;
    if (b_ends_line && at_line_start(after, new_end)) {
        --b_end;
        --a_end;
    }
    // The changed lines as they were: the line's start, the removed text, the rest of the
    // last line (when it is part of them).
    std::string region(after.substr(first_at, start - first_at));
    region += removed;
    const size_t rest_end = line_start(after, a_end);
    if (new_end < rest_end) region += after.substr(new_end, rest_end - new_end);
    // Lines [a, a + n) of the document before the change.
    auto before_lines = [&](uint32_t a, uint32_t n) {
        std::string out;
        for (uint32_t k = a; k < a + n; ++k) {
            if (k < first) {
                out += lines(after, k, 1);
            } else if (k < b_end) {
                out += lines(region, k - first, 1);
            } else {
                out += lines(after, k - b_end + a_end, 1);
            }
        }
        return out;
    };
    uint32_t cur_first = first, cur_count = b_end - first;  // in the document before
    uint32_t new_count = a_end - first;                     // in `after`
    EditHunk h;
    h.uri = uri;
    h.first_ms = now_ms;
    const int32_t delta = static_cast<int32_t>(new_count) - static_cast<int32_t>(cur_count);
    EditHunk* last = hunks_.empty() ? nullptr : &hunks_.back();
    const bool joins = last && last->uri == uri && now_ms - last->last_ms <= options_.join_ms &&
                       first <= last->new_first + last->new_count + options_.join_lines &&
                       b_end + options_.join_lines >= last->new_first;
    if (joins) {
        // The union of the hunk's lines (as they are in `before`) and the change's, and the
        // same lines in the document the hunk started from: lines outside the hunk are as
        // they were there, shifted by what the hunk added.
        const uint32_t u_first = std::min(first, last->new_first);
        const uint32_t u_end = std::max(b_end, last->new_first + last->new_count);
        const uint32_t above = last->new_first - u_first;
        const uint32_t below = u_end - (last->new_first + last->new_count);
        h.old_first = last->old_first - above;
        h.old_count = above + last->old_count + below;
        h.before = before_lines(u_first, above) + last->before +
                   before_lines(last->new_first + last->new_count, below);
        h.first_ms = last->first_ms;
        cur_first = u_first;
        cur_count = u_end - u_first;
        new_count = static_cast<uint32_t>(static_cast<int32_t>(cur_count) + delta);
        hunks_.pop_back();
    } else {
        h.old_first = cur_first;
        h.old_count = cur_count;
        h.before = before_lines(cur_first, cur_count);
    }
    h.new_first = cur_first;
    h.new_count = new_count;
    h.after = lines(after, cur_first, new_count);
    h.last_ms = now_ms;
    if (h.before == h.after) return;  // back to what it was: no edit
    if (h.before.size() + h.after.size() > options_.max_hunk_bytes) return;
    hunks_.push_back(std::move(h));
    while (hunks_.size() > options_.max_hunks) hunks_.pop_front();
}

void EditHistory::forget(const std::string& uri) {
    hunks_.erase(std::remove_if(hunks_.begin(), hunks_.end(),
                                [&](const EditHunk& h) { return h.uri == uri; }),
                 hunks_.end());
}

std::vector<EditHunk> EditHistory::hunks(std::optional<std::string_view> uri) const {
    std::vector<EditHunk> out;
    for (const auto& h : hunks_)
        if (!uri || h.uri == *uri) out.push_back(h);
    return out;
}

std::string unified_diff(const EditHunk& h, std::string_view path) {
    // Unified diffs count from 1; an empty side names the line before it.
    auto range = [](uint32_t first, uint32_t count) {
        return std::to_string(count == 0 ? first : first + 1) + "," + std::to_string(count);
    };
    std::string out = "--- a/" + std::string(path) + "\n+++ b/" + std::string(path) + "\n@@ -" +
                      range(h.old_first, h.old_count) + " +" + range(h.new_first, h.new_count) +
                      " @@\n";
    auto emit = [&out](std::string_view text, char mark) {
        size_t at = 0;
        while (at < text.size()) {
            size_t nl = text.find('\n', at);
            const bool last = nl == std::string_view::npos;
            if (last) nl = text.size();
            out += mark;
            out.append(text.substr(at, nl - at));
            out += '\n';
            if (last) out += "\\ No newline at end of file\n";
            at = nl + 1;
        }
    };
    emit(h.before, '-');
    emit(h.after, '+');
    return out;
}

}  // namespace latent::agent
