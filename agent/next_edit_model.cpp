// Model-driven next edits: the prompt and the parse of the answer (see next_edit_model.h).
#include "agent/next_edit_model.h"

#include "agent/text_lines.h"

#include <algorithm>
#include <climits>
#include <optional>
#include <set>
#include <tuple>

namespace latent::agent {
namespace {

// Lines of the file shown around the region: context for the model, cheap next to the
// definitions. The first shown line is rounded down to a multiple of kExcerptAlign so that
// the excerpt's opening lines stay put (and cached) while the cursor moves down a few lines.
constexpr uint32_t kExcerptLinesAbove = 30;
constexpr uint32_t kExcerptLinesBelow = 30;
constexpr uint32_t kExcerptAlign = 8;
// The answer is diffed line by line against the region (a table of region × answer lines).
constexpr uint32_t kMaxRegionLines = 256;
// A rewrite longer than this many times the region (+ kRunawaySlack bytes) is a model that
// ran on (repeating itself, rewriting the file), not a next edit.
constexpr size_t kRunawayFactor = 4;
constexpr size_t kRunawaySlack = 1024;

constexpr std::string_view kStartOfFile = "<|start_of_file|>";
constexpr std::string_view kEndOfFile = "<|end_of_file|>";

// Fixed: the first part of every prompt, so it is always in the prefix cache.
constexpr std::string_view kSystemPrompt =
    "You predict the next edit a programmer makes in their code. You are shown code they "
    "looked at recently, definitions of names near their cursor, their recent edits as "
    "unified diffs (oldest first), and an excerpt of the file they are editing. In the "
    "excerpt, the editable region lies between <|editable_region_start|> and "
    "<|editable_region_end|>, and <|user_cursor|> marks the cursor.\n"
    "\n"
    "Rewrite the editable region as it reads after the programmer's next edit:\n"
    "- Carry on what the recent edits began: finish a rename, follow a changed signature, "
    "apply a change made to some lines to the similar lines that do not have it yet, complete "
    "the code being typed at the cursor.\n"
    "- Change only what that edit needs. Keep every other line, and the formatting, exactly "
    "as it is.\n"
    "- Never revert the recent edits.\n"
    "- When no edit clearly comes next, give the region back unchanged.\n"
    "\n"
    "Answer with the rewritten region only: <|editable_region_start|> on a line of its own, "
    "the region's new text, then <|editable_region_end|> on a line of its own. Leave out the "
    "<|user_cursor|> marker and any explanation.\n";

constexpr std::string_view kReminder =
    "Rewrite the editable region as it reads after the next edit. Answer with the region only, "
    "between <|editable_region_start|> and <|editable_region_end|>, without <|user_cursor|>.\n";

// Where each line starts; a text that ends in '\n' (or is empty) has a last, empty line.
std::vector<size_t> line_starts(std::string_view text) {
    std::vector<size_t> starts{0};
    for (size_t i = 0; i < text.size(); ++i)
        if (text[i] == '\n') starts.push_back(i + 1);
    return starts;
}

bool is_blank(std::string_view s) {
    return s.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos;
}

std::string_view trim(std::string_view s) {
    const size_t a = s.find_first_not_of(" \t\r\n\f\v");
    if (a == std::string_view::npos) return {};
    const size_t b = s.find_last_not_of(" \t\r\n\f\v");
    return s.substr(a, b - a + 1);
}

void append_block(std::string& out, const ContextBlock& b) {
    out += "```" + b.path + ":" + std::to_string(b.start_line + 1) + "\n";
    out += b.text;
    if (b.text.back() != '\n') out += '\n';
    out += "```\n";
}

// Definitions first (the names in the region), then recent snippets, while they fit.
// Returns the chosen ones of each kind, each in a stable order.
std::pair<std::vector<ContextBlock>, std::vector<ContextBlock>> choose_context(
    const NextEditModelInput& in, uint32_t excerpt_first, uint32_t excerpt_last) {
    auto by_place = [](const ContextBlock& a, const ContextBlock& b) {
        return std::tie(a.path, a.start_line, a.end_line, a.text) <
               std::tie(b.path, b.start_line, b.end_line, b.text);
    };
    std::vector<ContextBlock> chosen_defs, chosen_recent;
    std::set<std::pair<std::string, uint32_t>> seen;
    size_t left = in.context_bytes;
    auto choose = [&](std::vector<ContextBlock> blocks, std::vector<ContextBlock>& out) {
        std::sort(blocks.begin(), blocks.end(), by_place);
        for (auto& b : blocks) {
            if (is_blank(b.text)) continue;
            // The excerpt already shows this file's lines around the region.
            if (b.path == in.path && b.start_line < excerpt_last && b.end_line >= excerpt_first)
                continue;
            const size_t size = b.path.size() + b.text.size() + 24;  // with the fence lines
            if (size > left) continue;
            // The same place once (a definition the user also looked at: as a definition).
            if (!seen.insert({b.path, b.start_line}).second) continue;
            left -= size;
            out.push_back(std::move(b));
        }
    };
    choose(in.definitions, chosen_defs);
    choose(in.recent, chosen_recent);
    return {std::move(chosen_defs), std::move(chosen_recent)};
}

// The newest hunks' diffs that fit, oldest first.
std::vector<std::string> choose_history(const NextEditModelInput& in) {
    std::vector<std::string> picked;
    size_t total = 0;
    for (auto it = in.history.rbegin();
         it != in.history.rend() && picked.size() < in.max_history_hunks; ++it) {
        std::string diff = unified_diff(it->second, it->first);
        if (picked.empty()) {
            // The newest edit is the one the next edit follows: kept even over the cap.
            if (diff.size() > 4 * in.history_bytes) continue;
        } else if (total + diff.size() > in.history_bytes) {
            break;
        }
        total += diff.size();
        picked.push_back(std::move(diff));
    }
    std::reverse(picked.begin(), picked.end());
    return picked;
}

// --- The answer ---

bool starts_with_word(std::string_view s, std::string_view word) {
    if (!s.starts_with(word)) return false;
    if (s.size() == word.size()) return false;
    const char c = s[word.size()];
    return c == ' ' || c == '\t' || c == '{' || c == '(' || c == '"' || c == '\'' || c == '*';
}

// An import of another file or module, in the languages we see most.
bool is_import_line(std::string_view line) {
    const std::string_view t = trim(line);
    if (t.starts_with("#include") || t.starts_with("#import")) return true;  // C, C++, ObjC
    if (starts_with_word(t, "import")) return true;  // Python, JS/TS, Go, Java
    if (starts_with_word(t, "from") && t.find(" import ") != std::string_view::npos)
        return true;  // Python
    if (starts_with_word(t, "use") || t.starts_with("pub use ") ||
        t.starts_with("pub(crate) use ") || t.starts_with("extern crate "))
        return true;  // Rust
    if (starts_with_word(t, "using") && t.find('=') == std::string_view::npos) return true;
    if (t.find("require(") != std::string_view::npos &&
        (t.starts_with("const ") || t.starts_with("let ") || t.starts_with("var ") ||
         t.starts_with("require(")))
        return true;  // CommonJS
    // A Go import block's entry: "path", alias "path", _ "path", . "path".
    const size_t q = t.find('"');
    if (q != std::string_view::npos && q + 1 < t.size() && t.back() == '"') {
        const std::string_view alias = trim(t.substr(0, q));
        const std::string_view path = t.substr(q + 1, t.size() - q - 2);
        const bool alias_ok = std::all_of(alias.begin(), alias.end(), [](char c) {
            return c == '_' || c == '.' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                   (c >= '0' && c <= '9');
        });
        if (alias_ok && path.find('"') == std::string_view::npos) return true;
    }
    return false;
}

std::vector<std::string_view> split_lines(std::string_view s) {
    std::vector<std::string_view> lines;
    size_t at = 0;
    while (at < s.size()) {
        size_t nl = s.find('\n', at);
        nl = nl == std::string_view::npos ? s.size() : nl + 1;
        lines.push_back(s.substr(at, nl - at));
        at = nl;
    }
    return lines;
}

// A run of changed lines: bytes [old_begin, old_end) of the region became
// [new_begin, new_end) of the rewrite.
struct LineHunk {
    size_t old_begin = 0, old_end = 0, new_begin = 0, new_end = 0;
};

// The line diff (longest common subsequence of lines) of the region and its rewrite.
std::vector<LineHunk> diff_lines(std::string_view old_text, std::string_view new_text) {
    const auto a = split_lines(old_text), b = split_lines(new_text);
    // Common leading and trailing lines first: the table then covers the changed middle.
    size_t head = 0;
    while (head < a.size() && head < b.size() && a[head] == b[head]) ++head;
    size_t tail = 0;
    while (tail < a.size() - head && tail < b.size() - head &&
           a[a.size() - 1 - tail] == b[b.size() - 1 - tail])
        ++tail;
    const size_t n = a.size() - head - tail, m = b.size() - head - tail;
    // lcs[i][j]: common lines of a[head + i ..] and b[head + j ..] (middles only).
    std::vector<uint32_t> lcs((n + 1) * (m + 1), 0);
    auto at = [&](size_t i, size_t j) -> uint32_t& { return lcs[i * (m + 1) + j]; };
    for (size_t i = n; i-- > 0;)
        for (size_t j = m; j-- > 0;)
            at(i, j) = a[head + i] == b[head + j] ? at(i + 1, j + 1) + 1
                                                  : std::max(at(i + 1, j), at(i, j + 1));

    std::vector<size_t> a_off(a.size() + 1, 0), b_off(b.size() + 1, 0);
    for (size_t i = 0; i < a.size(); ++i) a_off[i + 1] = a_off[i] + a[i].size();
    for (size_t j = 0; j < b.size(); ++j) b_off[j + 1] = b_off[j] + b[j].size();

    std::vector<LineHunk> hunks;
    size_t i = 0, j = 0;
    std::optional<std::pair<size_t, size_t>> open;  // where the current run began
    auto close = [&]() {
        if (!open) return;
        hunks.push_back({a_off[head + open->first], a_off[head + i], b_off[head + open->second],
                         b_off[head + j]});
        open.reset();
    };
    while (i < n || j < m) {
        if (i < n && j < m && a[head + i] == b[head + j]) {
            close();
            ++i, ++j;
            continue;
        }
        if (!open) open = std::pair{i, j};
        if (j == m || (i < n && at(i + 1, j) >= at(i, j + 1)))
            ++i;
        else
            ++j;
    }
    close();
    return hunks;
}

bool same_but_whitespace(std::string_view x, std::string_view y) {
    auto next = [](std::string_view s, size_t& k) {
        while (k < s.size() && std::string_view(" \t\r\n\f\v").find(s[k]) != std::string_view::npos)
            ++k;
    };
    size_t p = 0, q = 0;
    for (;;) {
        next(x, p), next(y, q);
        if (p == x.size() || q == y.size()) return p == x.size() && q == y.size();
        if (x[p++] != y[q++]) return false;
    }
}

bool only_imports(std::string_view old_lines, std::string_view new_lines) {
    for (std::string_view s : {old_lines, new_lines})
        for (std::string_view line : split_lines(s))
            if (!is_blank(line) && !is_import_line(line)) return false;
    return true;
}

void remove_all(std::string& s, std::string_view what) {
    for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at))
        s.erase(at, what.size());
}

// The first line (from `from`) that opens or closes a fence: its start, or npos.
size_t find_fence_line(std::string_view s, size_t from) {
    for (size_t at = from; at < s.size();) {
        size_t nl = s.find('\n', at);
        if (nl == std::string_view::npos) nl = s.size();
        if (trim(s.substr(at, nl - at)).starts_with("```")) return at;
        at = nl + 1;
    }
    return std::string_view::npos;
}

size_t after_line(std::string_view s, size_t at) {
    const size_t nl = s.find('\n', at);
    return nl == std::string_view::npos ? s.size() : nl + 1;
}

// The rewritten region out of the answer, or nullopt with *why.
std::optional<std::string> extract_rewrite(std::string_view answer, std::string* why) {
    auto fail = [why](const char* reason) -> std::optional<std::string> {
        if (why) *why = reason;
        return std::nullopt;
    };
    if (is_blank(answer)) return fail("empty answer");
    const size_t start = answer.find(kRegionStartMarker);
    const size_t end = answer.find(kRegionEndMarker, start == std::string_view::npos ? 0 : start);
    std::string_view body;
    bool marked = false;
    if (start != std::string_view::npos) {
        if (end == std::string_view::npos)
            return fail("unparseable answer: the region is not closed (cut off?)");
        body = answer.substr(start + kRegionStartMarker.size(),
                             end - start - kRegionStartMarker.size());
        marked = true;
    } else if (end != std::string_view::npos) {
        // Only the end marker: the region is what comes before it (after a fence, if any).
        body = answer.substr(0, end);
        const size_t fence = find_fence_line(body, 0);
        if (fence != std::string_view::npos) body = body.substr(after_line(body, fence));
        marked = true;
    } else {
        const size_t open = find_fence_line(answer, 0);
        if (open != std::string_view::npos) {
            const size_t from = after_line(answer, open);
            // The last fence line closes it (a fence inside the region stays its text).
            size_t close = std::string_view::npos;
            for (size_t f = find_fence_line(answer, from); f != std::string_view::npos;
                 f = find_fence_line(answer, after_line(answer, f)))
                close = f;
            if (close == std::string_view::npos)
                return fail("unparseable answer: the fence is not closed (cut off?)");
            body = answer.substr(from, close - from);
        } else {
            body = answer;
        }
    }
    if (body.find(kRegionStartMarker) != std::string_view::npos ||
        body.find(kRegionEndMarker) != std::string_view::npos)
        return fail("unparseable answer: more than one region");
    // The markers stand on lines of their own: the newline after the start marker is not
    // the region's.
    if (marked && body.starts_with("\r\n"))
        body.remove_prefix(2);
    else if (marked && body.starts_with('\n'))
        body.remove_prefix(1);
    std::string rewrite(body);
    remove_all(rewrite, kCursorMarker);
    return rewrite;
}

}  // namespace

NextEditPrompt build_next_edit_prompt(const NextEditModelInput& in) {
    const std::string_view text = in.text;
    const size_t cursor = std::min(in.cursor, text.size());
    const std::vector<size_t> starts = line_starts(text);
    const auto count = static_cast<uint32_t>(starts.size());
    auto offset = [&](uint32_t line) { return line < count ? starts[line] : text.size(); };
    const auto cursor_line = static_cast<uint32_t>(
        std::upper_bound(starts.begin(), starts.end(), cursor) - starts.begin() - 1);

    // The region: a third of its lines above the cursor's, shifted back inside the document.
    const uint32_t n = std::clamp<uint32_t>(in.region_lines, 1, kMaxRegionLines);
    const uint32_t above = n / 3;
    uint32_t first = cursor_line >= above ? cursor_line - above : 0;
    const uint32_t last = std::min(first + n, count);
    first = last >= n ? last - n : 0;

    NextEditPrompt out;
    out.region_start = offset(first);
    out.region_end = offset(last);
    out.region = std::string(text.substr(out.region_start, out.region_end - out.region_start));
    const size_t tokens = out.region.size() / 2 + 64;
    out.max_tokens = static_cast<int32_t>(std::min<size_t>(tokens, INT32_MAX));

    uint32_t shown_first = first > kExcerptLinesAbove ? first - kExcerptLinesAbove : 0;
    shown_first -= shown_first % kExcerptAlign;
    const uint32_t shown_last = std::min(last + kExcerptLinesBelow, count);

    std::string user;
    const auto [defs, recent] = choose_context(in, shown_first, shown_last);
    if (!recent.empty()) {
        user += "Code the programmer looked at recently:\n";
        for (const auto& b : recent) append_block(user, b);
        user += '\n';
    }
    if (!defs.empty()) {
        user += "Definitions of names in the editable region:\n";
        for (const auto& b : defs) append_block(user, b);
        user += '\n';
    }
    const std::vector<std::string> diffs = choose_history(in);
    if (!diffs.empty()) {
        user += "The programmer's recent edits, oldest first:\n```diff\n";
        for (const auto& d : diffs) user += d;
        user += "```\n\n";
    }

    user += "The file being edited, " + in.path + ":\n```\n";
    if (shown_first == 0) user += std::string(kStartOfFile) + "\n";
    user += text.substr(offset(shown_first), out.region_start - offset(shown_first));
    user += std::string(kRegionStartMarker) + "\n";
    user += text.substr(out.region_start, cursor - out.region_start);
    user += kCursorMarker;
    user += text.substr(cursor, out.region_end - cursor);
    if (out.region.empty() || out.region.back() != '\n') user += '\n';
    user += std::string(kRegionEndMarker) + "\n";
    const std::string_view below = text.substr(out.region_end, offset(shown_last) - out.region_end);
    user += below;
    if (!below.empty() && below.back() != '\n') user += '\n';
    if (shown_last == count) user += std::string(kEndOfFile) + "\n";
    user += "```\n\n";
    user += kReminder;

    out.messages.push_back(ChatMessage{.role = "system", .content = std::string(kSystemPrompt)});
    out.messages.push_back(ChatMessage{.role = "user", .content = std::move(user)});
    return out;
}

std::vector<RegionEdit> parse_next_edit_answer(const NextEditPrompt& prompt, std::string_view text,
                                               std::string_view answer, const EditHunk* last_hunk,
                                               std::string* why) {
    auto drop = [why](const char* reason) {
        if (why) *why = reason;
        return std::vector<RegionEdit>{};
    };
    const std::string_view region = prompt.region;
    if (prompt.region_start > prompt.region_end || prompt.region_end > text.size() ||
        text.substr(prompt.region_start, region.size()) != region)
        return drop("the text is not the one the prompt was built on");

    std::optional<std::string> rewrite = extract_rewrite(answer, why);
    if (!rewrite) return {};
    // A CRLF file answered with bare newlines (models mostly write '\n'): its line ends back,
    // or every line would look changed.
    if (region.find("\r\n") != std::string_view::npos && rewrite->find('\r') == std::string::npos) {
        std::string crlf;
        for (const char ch : *rewrite) {
            if (ch == '\n') crlf += '\r';
            crlf += ch;
        }
        *rewrite = std::move(crlf);
    }
    // The region's last line keeps (or lacks) its newline whatever the answer did with it.
    const bool region_nl = !region.empty() && region.back() == '\n';
    if (region_nl && !rewrite->empty() && rewrite->back() != '\n') *rewrite += '\n';
    if (!region_nl && !rewrite->empty() && rewrite->back() == '\n') {
        rewrite->pop_back();
        if (!rewrite->empty() && rewrite->back() == '\r') rewrite->pop_back();
    }
    if (is_blank(*rewrite)) return drop("empty rewrite");
    if (rewrite->size() > kRunawayFactor * region.size() + kRunawaySlack)
        return drop("the rewrite is far larger than the region (the model ran on)");
    if (*rewrite == region) return drop("no change");

    const std::vector<LineHunk> hunks = diff_lines(region, *rewrite);
    if (hunks.empty()) return drop("no change");
    bool all_whitespace = true, all_imports = true;
    for (const auto& h : hunks) {
        const std::string_view o = region.substr(h.old_begin, h.old_end - h.old_begin);
        const std::string_view w =
            std::string_view(*rewrite).substr(h.new_begin, h.new_end - h.new_begin);
        all_whitespace = all_whitespace && same_but_whitespace(o, w);
        all_imports = all_imports && only_imports(o, w);
    }
    if (all_whitespace) return drop("whitespace only");
    if (all_imports) return drop("imports only");

    // Each hunk as the smallest edit: a hunk that keeps its number of lines is taken line by
    // line (a word changed on two adjacent lines is two edits), and each edit loses the
    // prefix and suffix its old and new text share.
    std::vector<RegionEdit> edits;
    auto add = [&](size_t old_at, std::string_view o, std::string_view w) {
        size_t p = 0;
        while (p < o.size() && p < w.size() && o[p] == w[p]) ++p;
        size_t s = 0;
        while (s < o.size() - p && s < w.size() - p && o[o.size() - 1 - s] == w[w.size() - 1 - s])
            ++s;
        if (p == o.size() && p == w.size()) return;
        edits.push_back({prompt.region_start + old_at + p,
                         prompt.region_start + old_at + o.size() - s,
                         std::string(w.substr(p, w.size() - p - s))});
    };
    for (const auto& h : hunks) {
        const std::string_view o = region.substr(h.old_begin, h.old_end - h.old_begin);
        const std::string_view w =
            std::string_view(*rewrite).substr(h.new_begin, h.new_end - h.new_begin);
        const auto ol = split_lines(o), wl = split_lines(w);
        if (ol.size() != wl.size()) {
            add(h.old_begin, o, w);
            continue;
        }
        size_t at = h.old_begin;
        for (size_t k = 0; k < ol.size(); ++k) {
            add(at, ol[k], wl[k]);
            at += ol[k].size();
        }
    }

    // Only the undo of the newest edit: the text after these edits is the text before it.
    if (last_hunk) {
        const size_t a = line_start(text, last_hunk->new_first);
        const size_t b = line_start(text, size_t{last_hunk->new_first} + last_hunk->new_count);
        if (text.substr(a, b - a) == last_hunk->after) {
            std::string undone(text);
            undone.replace(a, b - a, last_hunk->before);
            std::string edited(text);
            for (auto it = edits.rbegin(); it != edits.rend(); ++it)
                edited.replace(it->start, it->end - it->start, it->new_text);
            if (edited == undone) return drop("it only undoes the last edit");
        }
    }
    return edits;
}

}  // namespace latent::agent
