// Glob matching (see glob.h). Braces are expanded first; then a pattern is matched segment
// by segment, "**" by trying every number of segments and any other segment by libc's
// fnmatch(3) (no FNM_PATHNAME needed: a segment holds no '/'; no FNM_PERIOD: VS Code's "*"
// matches dotfiles too).
#include "agent/glob.h"

#include <fnmatch.h>

namespace latent::agent {

namespace {

// A pattern expands to at most this many alternatives: "{a,b}{c,d}..." grows as a
// product, and patterns come from settings.
constexpr size_t kMaxAlternatives = 256;

// Every alternative of the first brace group at or after `from`, recursively.
void expand(const std::string& pattern, std::vector<std::string>& out) {
    if (out.size() >= kMaxAlternatives) return;
    size_t open = std::string::npos;
    int depth = 0;
    std::vector<size_t> commas;
    for (size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) {
            ++i;
        } else if (c == '{') {
            if (depth++ == 0) {
                open = i;
                commas.clear();
            }
        } else if (c == ',' && depth == 1) {
            commas.push_back(i);
        } else if (c == '}' && depth > 0 && --depth == 0) {
            const std::string head = pattern.substr(0, open), tail = pattern.substr(i + 1);
            size_t start = open + 1;
            commas.push_back(i);
            for (size_t end : commas) {
                expand(head + pattern.substr(start, end - start) + tail, out);
                start = end + 1;
            }
            return;
        }
    }
    out.push_back(pattern);  // no (balanced) group left
}

std::vector<std::string_view> segments(std::string_view s) {
    std::vector<std::string_view> out;
    size_t start = 0;
    for (size_t i = 0; i <= s.size(); ++i) {
        if (i == s.size() || s[i] == '/') {
            if (i > start) out.push_back(s.substr(start, i - start));  // "a//b" = "a/b"
            start = i + 1;
        }
    }
    return out;
}

bool match_segments(const std::vector<std::string_view>& pat, size_t p,
                    const std::vector<std::string_view>& path, size_t q) {
    while (p < pat.size()) {
        if (pat[p] == "**") {
            while (p + 1 < pat.size() && pat[p + 1] == "**") ++p;  // "**/**" = "**"
            for (size_t k = q; k <= path.size(); ++k)
                if (match_segments(pat, p + 1, path, k)) return true;
            return false;
        }
        if (q >= path.size()) return false;
        const std::string sp(pat[p]), sq(path[q]);
        if (fnmatch(sp.c_str(), sq.c_str(), 0) != 0) return false;
        ++p;
        ++q;
    }
    return q == path.size();
}

}  // namespace

bool glob_match(std::string_view glob, std::string_view path) {
    std::vector<std::string> alternatives;
    expand(std::string(glob), alternatives);
    const auto path_segments = segments(path);
    for (const auto& a : alternatives) {
        std::string_view g = a;
        if (g.substr(0, 2) == "./") g.remove_prefix(2);  // "./src/**": relative to the folder
        if (match_segments(segments(g), 0, path_segments, 0)) return true;
    }
    return false;
}

bool glob_excludes(const std::vector<std::string>& globs, std::string_view path) {
    for (const auto& g : globs) {
        if (g.empty()) continue;
        // The path, then each folder it lies in: "dist/a.js", "dist".
        for (size_t end = path.size(); end != std::string_view::npos && end > 0;
             end = path.rfind('/', end - 1)) {
            if (glob_match(g, path.substr(0, end))) return true;
            if (end == 0) break;
        }
    }
    return false;
}

}  // namespace latent::agent
