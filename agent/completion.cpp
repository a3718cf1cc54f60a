// Prompt layout, post-processing and the suggestion cache (see completion.h).
#include "agent/completion.h"

#include <algorithm>
#include <tuple>

namespace latent::agent {

namespace {

constexpr size_t kBytesPerToken = 4;

bool is_blank(std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

// Columns of leading whitespace (a tab counts 4: mixed files compare sensibly enough).
size_t indent_of(std::string_view line) {
    size_t n = 0;
    for (char c : line) {
        if (c == ' ')
            n += 1;
        else if (c == '\t')
            n += 4;
        else
            break;
    }
    return n;
}

std::vector<std::string_view> split_lines(std::string_view s) {
    std::vector<std::string_view> out;
    size_t pos = 0;
    while (true) {
        const size_t nl = s.find('\n', pos);
        if (nl == std::string_view::npos) {
            out.push_back(s.substr(pos));
            return out;
        }
        out.push_back(s.substr(pos, nl - pos));
        pos = nl + 1;
    }
}

char closer_of(char open) { return open == '(' ? ')' : open == '[' ? ']' : '}'; }

}  // namespace

std::string comment_marker(std::string_view path) {
    const size_t dot = path.rfind('.');
    const std::string_view ext = dot == std::string_view::npos ? "" : path.substr(dot + 1);
    for (const char* e : {"py", "sh", "bash", "rb", "pl", "yaml", "yml", "toml", "r", "cmake"})
        if (ext == e) return "#";
    if (path.size() >= 14 && path.substr(path.size() - 14) == "CMakeLists.txt") return "#";
    return "//";
}

std::vector<PromptBudget> smaller_budgets(const PromptBudget& full) {
    std::vector<PromptBudget> out;
    PromptBudget b = full;
    for (;;) {
        PromptBudget next = b;
        next.context_tokens = b.context_tokens / 2 >= 128 ? b.context_tokens / 2 : 0;
        next.prefix_tokens = std::max<size_t>(16, b.prefix_tokens / 2);
        next.suffix_tokens = std::max<size_t>(8, b.suffix_tokens / 2);
        next.stride_lines = std::max<uint32_t>(1, full.middle_lines);
        if (next.context_tokens == b.context_tokens && next.prefix_tokens == b.prefix_tokens &&
            next.suffix_tokens == b.suffix_tokens)
            break;
        out.push_back(next);
        b = next;
    }
    return out;
}

FimLayout layout_fim_prompt(std::string_view text, size_t cursor, std::string_view path,
                            std::vector<ContextBlock> context, const PromptBudget& budget) {
    cursor = std::min(cursor, text.size());
    FimLayout out;
    const std::string marker = comment_marker(path);

    // Line starts up to the cursor.
    std::vector<size_t> starts = {0};
    for (size_t i = 0; i < cursor; ++i)
        if (text[i] == '\n') starts.push_back(i + 1);
    const auto cursor_line = static_cast<uint32_t>(starts.size() - 1);
    const size_t prefix_bytes = budget.prefix_tokens * kBytesPerToken;
    const uint32_t stride = std::max<uint32_t>(1, budget.stride_lines);
    // The earliest stride-aligned line whose text up to the cursor fits the budget. When
    // even the cursor's own stride block is too long, fall back to the latest line that fits.
    uint32_t first = cursor_line - cursor_line % stride;
    for (uint32_t l = 0; l <= cursor_line; l += stride) {
        if (cursor - starts[l] <= prefix_bytes) {
            first = l;
            break;
        }
    }
    while (first < cursor_line && cursor - starts[first] > prefix_bytes) ++first;
    out.first_line = first;

    // Context: stable order, the current file's own lines are already in the prompt.
    std::sort(context.begin(), context.end(), [](const ContextBlock& a, const ContextBlock& b) {
        return std::tie(a.path, a.start_line, a.end_line) <
               std::tie(b.path, b.start_line, b.end_line);
    });
    size_t context_left = budget.context_tokens * kBytesPerToken;
    const ContextBlock* prev = nullptr;
    for (const auto& b : context) {
        if (b.path == path || is_blank(b.text)) continue;
        if (prev && prev->path == b.path && b.start_line <= prev->end_line) continue;  // overlap
        std::string block =
            marker + " " + b.path + ":" + std::to_string(b.start_line + 1) + "\n" + b.text;
        if (block.back() != '\n') block += '\n';
        if (block.size() > context_left) continue;
        context_left -= block.size();
        out.prompt.context += block;
        prev = &b;
    }
    out.prompt.context += marker + " " + std::string(path) + "\n";

    const uint32_t block = std::max<uint32_t>(1, budget.middle_lines);
    const uint32_t anchor = std::max(first, cursor_line - cursor_line % block);
    out.prompt.prefix = std::string(text.substr(starts[first], starts[anchor] - starts[first]));
    // The middle: from the anchor line to the cursor, its last prefix_bytes at most (a
    // minified line), cut at the start of a UTF-8 character.
    size_t middle_start = starts[anchor];
    if (cursor - middle_start > prefix_bytes) {
        middle_start = cursor - prefix_bytes;
        while (middle_start < cursor &&
               (static_cast<unsigned char>(text[middle_start]) & 0xC0) == 0x80)
            ++middle_start;
    }
    out.prompt.middle = std::string(text.substr(middle_start, cursor - middle_start));

    // Suffix: whole lines while they fit (the cursor's line always, up to the budget).
    const size_t suffix_bytes = budget.suffix_tokens * kBytesPerToken;
    size_t end = std::min(text.size(), cursor + suffix_bytes);
    if (end < text.size()) {
        const size_t nl = text.rfind('\n', end);
        const size_t line_end = text.find('\n', cursor);
        if (nl != std::string_view::npos && nl >= cursor && nl > line_end)
            end = nl + 1;
        else if (line_end != std::string_view::npos)
            end = std::min(end, line_end + 1);
    }
    out.prompt.suffix = std::string(text.substr(cursor, end - cursor));
    return out;
}

CursorText cursor_text(std::string_view text, size_t cursor) {
    cursor = std::min(cursor, text.size());
    CursorText c;
    const size_t ls = text.rfind('\n', cursor == 0 ? std::string_view::npos : cursor - 1);
    const size_t line_start = (ls == std::string_view::npos || cursor == 0) ? 0 : ls + 1;
    size_t line_end = text.find('\n', cursor);
    if (line_end == std::string_view::npos) line_end = text.size();
    c.line_prefix = std::string(text.substr(line_start, cursor - line_start));
    std::string_view rest = text.substr(cursor, line_end - cursor);
    if (!rest.empty() && rest.back() == '\r') rest.remove_suffix(1);
    c.line_suffix = std::string(rest);
    // A few KB after the line are enough to find the next non-blank line.
    if (line_end < text.size())
        c.after = std::string(text.substr(line_end + 1, std::min<size_t>(4096, text.size())));
    return c;
}

std::string postprocess(std::string_view completion, const CursorText& at) {
    std::string out(completion);
    // 1. Mid-line: one line only.
    const bool mid_line = !is_blank(at.line_suffix);
    if (mid_line) {
        const size_t nl = out.find('\n');
        if (nl != std::string::npos) out.resize(nl);
    }
    // 2. Repeating what follows the cursor: the rest of the line re-typed at the end...
    const std::string_view line_suffix = trim(at.line_suffix);
    if (!line_suffix.empty()) {
        std::string_view o = out;
        while (!o.empty() && (o.back() == ' ' || o.back() == '\t' || o.back() == '\n'))
            o.remove_suffix(1);
        if (o.size() >= line_suffix.size() &&
            o.substr(o.size() - line_suffix.size()) == line_suffix)
            out.resize(o.size() - line_suffix.size());
    }
    // ... or the next non-blank line written again.
    std::string_view next_line;
    for (std::string_view l : split_lines(at.after)) {
        if (!is_blank(l)) {
            next_line = trim(l);
            break;
        }
    }
    {
        const auto lines = split_lines(out);
        size_t offset = 0;
        for (size_t i = 0; i < lines.size(); ++i) {
            // Line 0 continues the cursor's line, so it cannot be "the next line" again.
            if (i > 0 && !next_line.empty() && trim(lines[i]) == next_line &&
                next_line.size() > 1) {
                out.resize(offset > 0 ? offset - 1 : 0);
                break;
            }
            offset += lines[i].size() + 1;
        }
    }
    // 3. Dedent below the cursor's block. When the cursor's line opens a block ("...:" or
    // "...{"), the completion is its body: a line back at the opener's indent ends it (a
    // closing "}" there is kept). Otherwise a line indented less than the cursor's ends it.
    {
        const size_t base = indent_of(at.line_prefix);
        const std::string_view lp = trim(at.line_prefix);
        const bool opens = !lp.empty() && (lp.back() == ':' || lp.back() == '{');
        const auto lines = split_lines(out);
        size_t offset = lines.empty() ? 0 : lines[0].size() + 1;
        for (size_t i = 1; i < lines.size(); ++i) {
            const size_t end = offset + lines[i].size();
            if (!is_blank(lines[i])) {
                const size_t ind = indent_of(lines[i]);
                if (opens && ind <= base) {
                    const bool closes = lp.back() == '{' && trim(lines[i]).front() == '}';
                    out.resize(closes ? end : offset - 1);
                    break;
                }
                if (!opens && ind < base) {
                    out.resize(offset - 1);
                    break;
                }
            }
            offset = end + 1;
        }
    }
    // 4. Brackets.
    {
        std::vector<char> stack;
        char quote = 0;
        size_t last_balanced_eol = std::string::npos;
        const std::string_view rest = trim(at.line_suffix);
        for (size_t i = 0; i < out.size(); ++i) {
            const char ch = out[i];
            if (quote) {
                if (ch == '\\')
                    ++i;
                else if (ch == quote || ch == '\n')
                    quote = 0;
                continue;
            }
            if (ch == '"' || ch == '\'' || ch == '`') {
                quote = ch;
            } else if (ch == '(' || ch == '[' || ch == '{') {
                stack.push_back(ch);
            } else if (ch == ')' || ch == ']' || ch == '}') {
                if (!stack.empty()) {
                    if (closer_of(stack.back()) != ch) {  // mismatched: stop before it
                        out.resize(i);
                        break;
                    }
                    stack.pop_back();
                } else if (!rest.empty() && rest.front() == ch) {
                    // Closes a bracket from before the cursor that the line already closes.
                    out.resize(i);
                    break;
                }
            } else if (ch == '\n' && stack.empty()) {
                last_balanced_eol = i;
            }
        }
        if (!stack.empty() && out.find('\n') != std::string::npos &&
            last_balanced_eol != std::string::npos)
            out.resize(last_balanced_eol);
    }
    // 5. Trailing blank space (a trailing newline would add an empty line in the editor).
    while (!out.empty() &&
           (out.back() == ' ' || out.back() == '\t' || out.back() == '\n' || out.back() == '\r'))
        out.pop_back();
    if (is_blank(out)) return "";
    return out;
}

uint64_t text_hash(std::string_view s) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}

void SuggestionCache::put(const std::string& uri, std::string_view before, std::string_view after,
                          std::string suggestion) {
    if (suggestion.empty()) return;
    std::lock_guard<std::mutex> lock(mu_);
    entries_.push_front(
        {uri, before.size(), text_hash(before), text_hash(after), std::move(suggestion)});
    if (entries_.size() > kEntries) entries_.pop_back();
}

std::optional<std::string> SuggestionCache::get(const std::string& uri, std::string_view before,
                                                std::string_view after) {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t ah = text_hash(after);
    for (const auto& e : entries_) {
        if (e.uri != uri || e.after_hash != ah || before.size() < e.before_len) continue;
        const std::string_view typed = before.substr(e.before_len);
        if (typed.size() >= e.suggestion.size()) continue;
        if (e.suggestion.compare(0, typed.size(), typed) != 0) continue;
        if (text_hash(before.substr(0, e.before_len)) != e.before_hash) continue;
        ++hits_;
        return e.suggestion.substr(typed.size());
    }
    return std::nullopt;
}

void SuggestionCache::forget(const std::string& uri) {
    std::lock_guard<std::mutex> lock(mu_);
    std::erase_if(entries_, [&](const Entry& e) { return e.uri == uri; });
}

uint64_t SuggestionCache::hits() const {
    std::lock_guard<std::mutex> lock(mu_);
    return hits_;
}

bool GenerationTimeLimit::operator()(std::string_view text,
                                     std::chrono::steady_clock::time_point now) {
    if (text.empty()) return false;
    if (deadline_ && now >= *deadline_) {
        past_deadline_ = true;
        return true;
    }
    if (limit_.count() <= 0) return false;
    if (!first_) first_ = now;
    return now - *first_ >= limit_ && text.find('\n') != std::string_view::npos;
}

std::string_view whole_lines(std::string_view text) {
    const size_t nl = text.rfind('\n');
    return nl == std::string_view::npos ? text : text.substr(0, nl);
}

}  // namespace latent::agent
