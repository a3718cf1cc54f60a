// PromptLibrary (see prompt_library.h): the built-in prompts, reading and checking the
// workspace's prompt files, and filling templates.
#include "agent/prompt_library.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "agent/workspaces.h"

namespace latent::agent {
namespace {

namespace fs = std::filesystem;

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

std::string_view unquote(std::string_view s) {
    s = trim(s);
    if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front())
        s = s.substr(1, s.size() - 2);
    return s;
}

bool valid_name(std::string_view n) {
    if (n.empty() || n.size() > PromptLibrary::kMaxNameBytes) return false;
    for (char c : n)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    return true;
}

std::optional<PromptContext> context_of(std::string_view s) {
    if (s == "selection") return PromptContext::kSelection;
    if (s == "file") return PromptContext::kFile;
    if (s == "codebase") return PromptContext::kCodebase;
    return std::nullopt;
}

// The language tag of a fence is the language id, so the model sees "```cpp".
constexpr const char* kSelectionBlock = "From {{path}}:\n\n```{{language}}\n{{selection}}\n```\n";

}  // namespace

const char* prompt_context_name(PromptContext c) {
    switch (c) {
        case PromptContext::kSelection:
            return "selection";
        case PromptContext::kFile:
            return "file";
        case PromptContext::kCodebase:
            return "codebase";
    }
    return "";
}

const std::vector<std::pair<PromptInfo, std::string>>& builtin_prompts() {
    using C = PromptContext;
    static const std::vector<std::pair<PromptInfo, std::string>> prompts = [] {
        std::vector<std::pair<PromptInfo, std::string>> p = {
            {{"docs",
              "Add documentation comments to the selected code",
              {C::kSelection},
              false,
              ""},
             std::string("Write documentation comments for the following code, in the style "
                         "the language and this codebase use. Return the code with the "
                         "comments added and nothing else changed.\n\n") +
                 kSelectionBlock + "\n{{input}}"},
            {{"explain", "Explain the selected code", {C::kSelection, C::kFile}, false, ""},
             std::string("Explain what the following code does and how, briefly, then "
                         "anything surprising in it.\n\n") +
                 kSelectionBlock + "\n{{input}}"},
            {{"fix",
              "Find and fix a bug in the selected code",
              {C::kSelection, C::kFile},
              false,
              ""},
             std::string("Find the bug in the following code and fix it. Say in one or two "
                         "sentences what was wrong, then give the corrected code.\n\n") +
                 kSelectionBlock + "\nThe problem as the user sees it: {{input}}"},
            {{"refactor",
              "Rewrite the selected code as asked",
              {C::kSelection, C::kFile},
              false,
              ""},
             std::string("Refactor the following code as asked, keeping its behaviour. Give "
                         "the new code, then say briefly what changed and why.\n\n") +
                 kSelectionBlock + "\nAsked: {{input}}"},
            {{"review", "Review the working tree's changes against HEAD", {}, false, ""},
             "Review this diff of the working tree against HEAD as a careful senior engineer: "
             "bugs first, then risks (error handling, limits, concurrency, security), then "
             "readability. Quote the lines you mean. Say plainly when it looks good.\n\n"
             "```diff\n{{diff}}\n```\n\n{{input}}"},
            {{"tests",
              "Write unit tests for the selected code",
              {C::kSelection, C::kFile},
              false,
              ""},
             std::string("Write unit tests for the following code with the test framework "
                         "this project uses: the main behaviour, the edge cases and the "
                         "errors. Give only the test code.\n\n") +
                 kSelectionBlock + "\n{{input}}"},
        };
        return p;
    }();
    return prompts;
}

engine::Expected<PromptInfo> parse_prompt_file(std::string_view text, std::string_view file_stem,
                                               std::string* body) {
    if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // a UTF-8 BOM
    auto next_line = [&](std::string_view& rest) {
        const size_t e = rest.find('\n');
        std::string_view line = rest.substr(0, e);
        rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        return line;
    };
    std::string_view rest = text;
    if (trim(next_line(rest)) != "---") return engine::make_error("no front matter (--- first)");
    PromptInfo info;
    std::string name = std::string(file_stem);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bool closed = false;
    while (!rest.empty()) {
        const std::string_view line = next_line(rest);
        if (trim(line) == "---") {
            closed = true;
            break;
        }
        if (trim(line).empty() || trim(line).front() == '#') continue;
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos)
            return engine::make_error("front matter line without ':': " +
                                      std::string(line.substr(0, 80)));
        const std::string_view key = trim(line.substr(0, colon));
        std::string_view value = trim(line.substr(colon + 1));
        if (key == "name") {
            name = std::string(unquote(value));
        } else if (key == "description") {
            info.description = std::string(unquote(value));
        } else if (key == "context") {
            if (value.size() >= 2 && value.front() == '[' && value.back() == ']')
                value = value.substr(1, value.size() - 2);
            while (!value.empty()) {
                const size_t comma = value.find(',');
                const std::string_view item = unquote(value.substr(0, comma));
                value =
                    comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
                if (auto c = context_of(item);
                    c &&
                    std::find(info.context.begin(), info.context.end(), *c) == info.context.end())
                    info.context.push_back(*c);
            }
        }  // other keys: ignored (a newer Latent's, or the user's notes)
    }
    if (!closed) return engine::make_error("front matter not closed by ---");
    if (!valid_name(name))
        return engine::make_error("bad name \"" + name.substr(0, 80) +
                                  "\" (want [a-z0-9_-], at most 64)");
    while (!rest.empty() && (rest.front() == '\n' || rest.front() == '\r')) rest.remove_prefix(1);
    if (rest.find_first_not_of(" \t\r\n") == std::string_view::npos)
        return engine::make_error("empty template");
    info.name = std::move(name);
    if (body) *body = std::string(rest);
    return info;
}

std::string render_template(std::string_view body, const PromptInputs& in) {
    std::string out;
    bool has_input = false;
    size_t i = 0;
    while (i < body.size()) {
        const size_t open = body.find("{{", i);
        if (open == std::string_view::npos) break;
        const size_t close = body.find("}}", open + 2);
        if (close == std::string_view::npos) break;
        out.append(body.substr(i, open - i));
        const std::string_view key = trim(body.substr(open + 2, close - open - 2));
        const std::string* value = key == "input"       ? &in.input
                                   : key == "selection" ? &in.selection
                                   : key == "file"      ? &in.file
                                   : key == "path"      ? &in.path
                                   : key == "language"  ? &in.language
                                   : key == "codebase"  ? &in.codebase
                                   : key == "diff"      ? &in.diff
                                                        : nullptr;
        if (value) {
            out += *value;
            has_input = has_input || key == "input";
        } else {
            out.append(body.substr(open, close + 2 - open));  // not ours: as written
        }
        i = close + 2;
    }
    out.append(body.substr(std::min(i, body.size())));
    if (!has_input && !in.input.empty()) {
        while (!out.empty() && out.back() == '\n') out.pop_back();
        out += "\n\n" + in.input;
    }
    return out;
}

PromptLibrary::PromptLibrary(PromptLibraryOptions options) : options_(std::move(options)) {}

void PromptLibrary::log(const std::string& line) const {
    if (options_.log) options_.log(line);
}

void PromptLibrary::set_folders(std::vector<std::string> folders) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Folder> next;
    for (const auto& f : folders) {
        const std::string root = real_path(f);
        if (root.empty()) continue;
        // Keep what was read for a folder still there.
        auto it = std::find_if(folders_.begin(), folders_.end(),
                               [&](const Folder& x) { return x.root == root; });
        if (it != folders_.end()) {
            next.push_back(std::move(*it));
        } else {
            Folder x;
            x.root = root;
            next.push_back(std::move(x));
        }
    }
    folders_ = std::move(next);
}

void PromptLibrary::refresh(Folder& f) {
    const fs::path dir = fs::path(f.root) / ".latent" / "prompts";
    std::error_code ec;
    // The prompts folder itself must be inside (".latent" may be a symlink out).
    const std::string real_dir = real_path(dir.string());
    std::vector<std::tuple<std::string, int64_t, uintmax_t>> stamp;
    std::vector<std::string> names;
    if (!real_dir.empty() && path_within(f.root, real_dir) && fs::is_directory(real_dir, ec)) {
        // A folder of a million files must not stall the list: at most 10 000 entries seen.
        size_t seen = 0;
        for (fs::directory_iterator it(real_dir, ec), end; !ec && it != end && seen < 10'000;
             it.increment(ec), ++seen) {
            const std::string name = it->path().filename().string();
            if (name.size() > 3 && name.compare(name.size() - 3, 3, ".md") == 0)
                names.push_back(name);
        }
        std::sort(names.begin(), names.end());
        if (names.size() > kMaxFiles) {
            log("warning: prompts: " + real_dir + " holds " + std::to_string(names.size()) +
                " files; only the first " + std::to_string(kMaxFiles) + " are read");
            names.resize(kMaxFiles);
        }
        for (const auto& n : names) {
            const fs::path p = fs::path(real_dir) / n;
            std::error_code e1, e2;
            const auto t = fs::last_write_time(p, e1);  // of the target, for a symlink
            const auto size = fs::file_size(p, e2);
            stamp.emplace_back(n, e1 ? 0 : static_cast<int64_t>(t.time_since_epoch().count()),
                               e2 ? 0 : size);
        }
    } else if (!real_dir.empty() && !path_within(f.root, real_dir)) {
        log("warning: prompts: " + dir.string() + " leads outside the folder; skipped");
    }
    if (f.read && stamp == f.stamp) return;
    f.read = true;
    f.stamp = stamp;
    f.prompts.clear();
    std::set<std::string> taken;
    for (const auto& n : names) {
        const std::string file = (fs::path(real_dir) / n).string();
        const std::string real = real_path(file);
        if (real.empty() || !path_within(f.root, real)) {
            log("warning: prompts: " + file + " leads outside the folder; skipped");
            continue;
        }
        std::error_code e;
        if (!fs::is_regular_file(real, e)) continue;
        const auto size = fs::file_size(real, e);
        if (e || size > kMaxFileBytes) {
            log("warning: prompts: " + file + " is over " + std::to_string(kMaxFileBytes) +
                " bytes; skipped");
            continue;
        }
        std::ifstream in(real, std::ios::binary);
        std::string text(kMaxFileBytes + 1, '\0');
        in.read(text.data(), static_cast<std::streamsize>(text.size()));
        text.resize(static_cast<size_t>(in.gcount()));
        if (text.size() > kMaxFileBytes) {  // grew since the stat
            log("warning: prompts: " + file + " is over " + std::to_string(kMaxFileBytes) +
                " bytes; skipped");
            continue;
        }
        std::string body;
        auto info = parse_prompt_file(text, n.substr(0, n.size() - 3), &body);
        if (!info) {
            log("warning: prompts: " + file + ": " + info.error().message + "; skipped");
            continue;
        }
        if (!taken.insert(info->name).second) {
            log("warning: prompts: " + file + ": a prompt named \"" + info->name +
                "\" came earlier in this folder; skipped");
            continue;
        }
        info->workspace = true;
        info->path = real;
        f.prompts.push_back({std::move(*info), std::move(body)});
    }
}

std::map<std::string, PromptLibrary::Prompt, std::less<>> PromptLibrary::merged() {
    std::map<std::string, Prompt, std::less<>> all;
    for (const auto& [info, body] : builtin_prompts()) all[info.name] = {info, body};
    std::set<std::string> from_folders;
    for (auto& f : folders_) {
        refresh(f);
        for (const auto& p : f.prompts)
            if (from_folders.insert(p.info.name).second) all[p.info.name] = p;
    }
    return all;
}

std::vector<PromptInfo> PromptLibrary::list() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<PromptInfo> out;
    for (auto& [name, p] : merged()) out.push_back(std::move(p.info));
    return out;
}

std::optional<PromptInfo> PromptLibrary::find(std::string_view name) {
    std::lock_guard<std::mutex> lock(mu_);
    auto all = merged();
    if (auto it = all.find(name); it != all.end()) return it->second.info;
    return std::nullopt;
}

engine::Expected<std::string> PromptLibrary::render(std::string_view name,
                                                    const PromptInputs& inputs) {
    std::string body;
    {
        std::lock_guard<std::mutex> lock(mu_);
        auto all = merged();
        auto it = all.find(name);
        if (it == all.end())
            return engine::make_error("no prompt named \"" + std::string(name.substr(0, 80)) +
                                      "\"");
        body = std::move(it->second.body);
    }
    return render_template(body, inputs);
}

}  // namespace latent::agent
