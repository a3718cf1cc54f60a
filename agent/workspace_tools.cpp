// WorkspaceTools (see workspace_tools.h).
#include "agent/workspace_tools.h"

#include <sys/stat.h>

#include <algorithm>
#include <set>

#include "agent/glob.h"
#include "agent/text_files.h"
#include "agent/text_lines.h"

namespace latent::agent {

using json = nlohmann::json;
using Status = ToolOutcome::Status;

namespace {

// The tools as the model sees them. Descriptions say what each returns and its limits,
// so the model can plan (paths are relative to a workspace folder).
json make_definitions() {
    auto fn = [](const char* name, const char* description, json properties,
                 std::vector<std::string> required) {
        return json{{"type", "function"},
                    {"function",
                     {{"name", name},
                      {"description", description},
                      {"parameters",
                       {{"type", "object"},
                        {"properties", std::move(properties)},
                        {"required", std::move(required)},
                        {"additionalProperties", false}}}}}};
    };
    const json str = {{"type", "string"}};
    const json integer = {{"type", "integer"}, {"minimum", 1}};
    return json::array({
        fn("search_code",
           "Search the workspace's code for the words of a query (identifiers, terms). Returns "
           "the best matching code chunks with their paths and line numbers.",
           {{"query", str}}, {"query"}),
        fn("find_definition",
           "Find where a function, class, type, method or variable is defined, by its exact "
           "name. Returns each definition's path, lines and code.",
           {{"name", str}}, {"name"}),
        fn("find_references",
           "Find the places that use an identifier, by its exact name. Returns path:line and "
           "the line's text for each.",
           {{"name", str}}, {"name"}),
        fn("read_file",
           "Read lines of a file (1-based, inclusive; at most 200 lines per call). Paths are "
           "relative to a workspace folder. Proposed edits are included.",
           {{"path", str}, {"start_line", integer}, {"end_line", integer}}, {"path"}),
        fn("list_files",
           "List the workspace's files matching a glob such as \"src/**/*.ts\" or \"**/*.py\".",
           {{"glob", str}}, {"glob"}),
        fn("edit_file",
           "Propose replacing old_text, which must occur exactly once in the file (copy it "
           "exactly, with enough surrounding lines to be unique), by new_text. The user "
           "reviews every proposed edit; nothing is written until they accept.",
           {{"path", str}, {"old_text", str}, {"new_text", str}}, {"path", "old_text", "new_text"}),
        fn("create_file", "Propose a new file with the given text (it must not exist yet).",
           {{"path", str}, {"text", str}}, {"path", "text"}),
    });
}

ToolOutcome refused(std::string why, std::string title) {
    return {Status::kRefused, std::move(why), std::move(title), {}};
}

// A string argument; absent or not a string: nullopt.
std::optional<std::string> str_arg(const json& args, const char* key) {
    const auto it = args.find(key);
    if (it == args.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
}

// Cuts `text` to `cap` bytes at a line end (or a UTF-8 boundary) and says so.
std::string capped(std::string text, size_t cap) {
    if (text.size() <= cap) return text;
    size_t cut = text.rfind('\n', cap);
    if (cut == std::string::npos || cut < cap / 2) {
        cut = cap;
        while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    }
    text.resize(cut);
    text += "\n… (cut: the answer was longer than " + std::to_string(cap) + " bytes)";
    return text;
}

size_t count_lines(std::string_view text) {
    if (text.empty()) return 0;
    return static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) +
           (text.back() == '\n' ? 0 : 1);
}

std::string_view line_text(std::string_view text, size_t line) {
    const size_t a = line_start(text, line);
    if (a >= text.size()) return {};
    size_t e = text.find('\n', a);
    if (e == std::string_view::npos) e = text.size();
    return text.substr(a, e - a);
}

size_t occurrences(std::string_view text, std::string_view needle, size_t* first) {
    size_t n = 0;
    for (size_t at = text.find(needle); at != std::string_view::npos;
         at = text.find(needle, at + 1)) {
        if (n == 0) *first = at;
        ++n;
    }
    return n;
}

std::string crlf(std::string_view text) {
    std::string out;
    out.reserve(text.size() + text.size() / 16);
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out += '\r';
        out += text[i];
    }
    return out;
}

}  // namespace

const char* status_name(ToolOutcome::Status s) {
    switch (s) {
        case Status::kDone:
            return "done";
        case Status::kRefused:
            return "refused";
        case Status::kFailed:
            return "failed";
    }
    return "failed";
}

WorkspaceTools::WorkspaceTools(const Workspaces& workspaces, const DocumentStore& documents,
                               ToolLimits limits)
    : workspaces_(workspaces), documents_(documents), limits_(limits) {}

const json& WorkspaceTools::definitions() {
    static const json defs = make_definitions();
    return defs;
}

ToolOutcome WorkspaceTools::call(const std::string& name, const std::string& arguments) {
    json args = json::parse(arguments.empty() ? std::string("{}") : arguments, nullptr,
                            /*allow_exceptions=*/false);
    if (args.is_discarded() || !args.is_object())
        return refused("The arguments are not a JSON object: " + capped(arguments, 200),
                       name + ": arguments are not JSON");
    ToolOutcome out;
    try {
        if (name == "search_code")
            out = search_code(args);
        else if (name == "find_definition")
            out = find_definition(args);
        else if (name == "find_references")
            out = find_references(args);
        else if (name == "read_file")
            out = read_file(args);
        else if (name == "list_files")
            out = list_files(args);
        else if (name == "edit_file")
            out = edit_file(args);
        else if (name == "create_file")
            out = create_file(args);
        else
            return refused("There is no tool named \"" + capped(name, 100) +
                               "\". The tools are search_code, find_definition, "
                               "find_references, read_file, list_files, edit_file, create_file.",
                           "Unknown tool " + capped(name, 100));
    } catch (const std::exception& e) {
        // The index's SQLite errors and the like: the model hears about it, the run goes on.
        return {Status::kFailed, std::string("The tool failed: ") + e.what(), name + " failed", {}};
    }
    out.result = capped(std::move(out.result), limits_.result_bytes);
    return out;
}

// ---- paths and text ----

std::string WorkspaceTools::resolve(const std::string& path, bool for_create,
                                    std::string* why) const {
    const auto folders = workspaces_.folders();
    if (path.empty() || path.find('\0') != std::string::npos) {
        *why = "The path is empty.";
        return "";
    }
    if (folders.empty()) {
        *why = "No workspace folder is open.";
        return "";
    }
    std::vector<std::string> candidates;
    if (path.front() == '/') {
        candidates.push_back(path);
    } else {
        for (const auto& f : folders) candidates.push_back(f + "/" + path);
        // "folder/x" with several folders: the folder named like its first component.
        const size_t slash = path.find('/');
        if (slash != std::string::npos)
            for (const auto& f : folders)
                if (f.substr(f.rfind('/') + 1) == path.substr(0, slash))
                    candidates.insert(candidates.begin(), f + path.substr(slash));
    }
    for (const auto& c : candidates) {
        const std::string real = workspaces_.resolve(path_to_uri(c));
        if (real.empty()) continue;
        struct stat st {};
        if (::stat(real.c_str(), &st) == 0 || edits_.text(real)) {
            if (S_ISDIR(st.st_mode)) {
                *why = "\"" + path + "\" is a folder, not a file.";
                return "";
            }
            return real;
        }
    }
    {
        // A new file, maybe in new folders: the nearest folder that exists must resolve
        // inside the workspace, and the rest must be plain names.
        for (const auto& c : candidates) {
            std::string head = c, tail;
            while (true) {
                const size_t slash = head.rfind('/');
                if (slash == std::string::npos || slash == 0) break;
                const std::string name = head.substr(slash + 1);
                if (name.empty() || name == "." || name == "..") break;
                tail = tail.empty() ? name : name + "/" + tail;
                head.resize(slash);
                struct stat st {};
                if (::stat(head.c_str(), &st) == 0) {
                    if (!S_ISDIR(st.st_mode)) break;
                    const std::string real = workspaces_.resolve(path_to_uri(head));
                    if (real.empty()) break;
                    const std::string out = real + "/" + tail;
                    // Only create_file names files that do not exist, or files it proposed.
                    if (for_create || edits_.text(out)) return out;
                    break;
                }
            }
        }
    }
    *why = for_create ? "\"" + path + "\" is not inside a workspace folder."
                      : "\"" + path +
                            "\" is not a file inside a workspace folder (paths are relative to "
                            "a workspace folder; list_files shows them).";
    return "";
}

bool WorkspaceTools::current_text(const std::string& real, std::string* text,
                                  std::string* why) const {
    if (auto t = edits_.text(real)) {
        *text = std::move(*t);
        return true;
    }
    if (auto doc = documents_.get(path_to_uri(real))) {
        *text = std::move(doc->text);
        return true;
    }
    auto t = read_text_file(real, limits_.file_bytes, why);
    if (!t) return false;
    *text = std::move(*t);
    return true;
}

Source WorkspaceTools::source(const std::string& real, uint32_t first_line, uint32_t last_line,
                              std::string why) const {
    return {path_to_uri(real),
            workspaces_.shown_path(real),
            {{first_line, 0}, {last_line + 1, 0}},
            std::move(why)};
}

// ---- the tools ----

ToolOutcome WorkspaceTools::search_code(const json& args) {
    const auto query = str_arg(args, "query");
    if (!query || query->empty()) return refused("search_code needs a query.", "Search: no query");
    const std::string q = query->substr(0, 512);
    ToolOutcome out{Status::kDone, "", "Searched \u201c" + capped(q, 80) + "\u201d", {}};
    struct Hit {
        std::string root;
        index::ChunkHit hit;
    };
    std::vector<Hit> hits;
    for (const auto& ix : workspaces_.indexes())
        for (auto& h : ix->search(q, limits_.search_results))
            hits.push_back({ix->root(), std::move(h)});
    std::stable_sort(hits.begin(), hits.end(),
                     [](const Hit& a, const Hit& b) { return a.hit.score < b.hit.score; });
    if (hits.size() > limits_.search_results) hits.resize(limits_.search_results);
    if (hits.empty()) {
        out.result = "No code matches \"" + q + "\".";
        return out;
    }
    const size_t per_hit = limits_.result_bytes / (hits.size() + 1);
    for (const auto& [root, h] : hits) {
        const std::string real = root + "/" + h.path;
        const std::string shown = workspaces_.shown_path(real);
        out.result += shown + " lines " + std::to_string(h.start_line + 1) + "-" +
                      std::to_string(h.end_line + 1) +
                      (h.name.empty() ? "" : " (" + h.kind + " " + h.name + ")") + ":\n" +
                      capped(h.text, per_hit) + "\n\n";
        out.sources.push_back(source(real, h.start_line, h.end_line, "search: " + capped(q, 80)));
    }
    return out;
}

ToolOutcome WorkspaceTools::find_definition(const json& args) {
    const auto name = str_arg(args, "name");
    if (!name || name->empty() || name->size() > 256)
        return refused("find_definition needs the name of a symbol.", "Definition: no name");
    ToolOutcome out{Status::kDone, "", "Looked up the definition of " + *name, {}};
    size_t n = 0;
    for (const auto& ix : workspaces_.indexes()) {
        for (const auto& h : ix->definitions(*name, limits_.definitions)) {
            if (n++ >= limits_.definitions) break;
            const std::string real = ix->root() + "/" + h.path;
            const auto& d = h.definition;
            std::string text, why;
            std::string body = d.signature;
            if (current_text(real, &text, &why)) {
                const size_t a = line_start(text, d.range.start.line);
                const size_t e = line_start(text, static_cast<size_t>(d.range.end.line) + 1);
                if (a < e) body = text.substr(a, e - a);
            }
            out.result += workspaces_.shown_path(real) + " lines " +
                          std::to_string(d.range.start.line + 1) + "-" +
                          std::to_string(d.range.end.line + 1) + " (" + d.kind + " " + d.name +
                          "):\n" + capped(body, limits_.result_bytes / 2) + "\n\n";
            out.sources.push_back(
                source(real, d.range.start.line, d.range.end.line, "definition of " + *name));
        }
    }
    if (n == 0) out.result = "No definition of \"" + *name + "\" is in the index.";
    return out;
}

ToolOutcome WorkspaceTools::find_references(const json& args) {
    const auto name = str_arg(args, "name");
    if (!name || name->empty() || name->size() > 256)
        return refused("find_references needs an identifier.", "References: no name");
    ToolOutcome out{Status::kDone, "", "Found the references to " + *name, {}};
    size_t n = 0;
    for (const auto& ix : workspaces_.indexes()) {
        std::string last_real, text;
        bool readable = false;
        for (const auto& r : ix->references(*name, limits_.references)) {
            if (n++ >= limits_.references) break;
            const std::string real = ix->root() + "/" + r.path;
            if (real != last_real) {
                std::string why;
                readable = current_text(real, &text, &why);
                last_real = real;
            }
            out.result += workspaces_.shown_path(real) + ":" + std::to_string(r.line + 1) + ": " +
                          (readable ? std::string(line_text(text, r.line).substr(0, 200)) : "") +
                          "\n";
            out.sources.push_back(source(real, r.line, r.line, "reference to " + *name));
        }
    }
    if (n == 0) out.result = "No references to \"" + *name + "\" are in the index.";
    out.title = "Found " + std::to_string(n) + " reference" + (n == 1 ? "" : "s") + " to " + *name;
    return out;
}

ToolOutcome WorkspaceTools::read_file(const json& args) {
    const auto path = str_arg(args, "path");
    if (!path) return refused("read_file needs a path.", "Read: no path");
    std::string why, text;
    const std::string real = resolve(*path, false, &why);
    if (real.empty()) return refused(why, "Refused to read " + capped(*path, 120));
    if (!current_text(real, &text, &why)) return refused(why, "Could not read " + *path);
    auto line_arg = [&](const char* key, size_t fallback) {
        const auto it = args.find(key);
        if (it == args.end() || !it->is_number_integer() || it->get<int64_t>() < 1) return fallback;
        return static_cast<size_t>(it->get<int64_t>());
    };
    const size_t total = count_lines(text);
    const size_t first = std::min(line_arg("start_line", 1), std::max<size_t>(total, 1));
    size_t last = std::min(line_arg("end_line", first + limits_.read_lines - 1), total);
    last = std::min(last, first + limits_.read_lines - 1);
    if (last < first) last = first;
    const std::string shown = workspaces_.shown_path(real);
    ToolOutcome out{Status::kDone, "", "", {}};
    std::string body;
    size_t line = first;
    for (; line <= last && line <= total; ++line) {
        std::string row =
            std::to_string(line) + ": " + std::string(line_text(text, line - 1)) + "\n";
        if (body.size() + row.size() > limits_.read_bytes) break;
        body += row;
    }
    const size_t shown_last = line > first ? line - 1 : first;
    out.result = shown + " (" + std::to_string(total) + " lines), lines " + std::to_string(first) +
                 "-" + std::to_string(shown_last) + ":\n" + body;
    if (shown_last < total)
        out.result += "(more: read_file with start_line " + std::to_string(shown_last + 1) + ")\n";
    out.title =
        "Read " + shown + " lines " + std::to_string(first) + "\u2013" + std::to_string(shown_last);
    out.sources.push_back(source(real, static_cast<uint32_t>(first - 1),
                                 static_cast<uint32_t>(shown_last - 1), "read"));
    return out;
}

ToolOutcome WorkspaceTools::list_files(const json& args) {
    const auto glob = str_arg(args, "glob");
    const std::string g = glob && !glob->empty() ? glob->substr(0, 512) : "**";
    ToolOutcome out{Status::kDone, "", "Listed files matching " + capped(g, 80), {}};
    std::set<std::string> seen;
    size_t n = 0, more = 0;
    const auto folders = workspaces_.folders();
    for (const auto& ix : workspaces_.indexes()) {
        // Patterns may name the folder: "folder/src/*.ts" with several folders.
        const std::string folder_name = ix->root().substr(ix->root().rfind('/') + 1);
        for (const auto& rel : ix->files("", 100000)) {
            if (!glob_match(g, rel) &&
                !(folders.size() > 1 && glob_match(g, folder_name + "/" + rel)))
                continue;
            const std::string shown = workspaces_.shown_path(ix->root() + "/" + rel);
            if (!seen.insert(shown).second) continue;
            if (n >= limits_.listed_files) {
                ++more;
                continue;
            }
            ++n;
            out.result += shown + "\n";
        }
    }
    for (const auto& f : edits_.files())
        if (f.created && (glob_match(g, f.path)) && seen.insert(f.path).second) {
            out.result += f.path + " (proposed)\n";
            ++n;
        }
    if (n == 0) out.result = "No indexed file matches \"" + g + "\".";
    if (more) out.result += "… and " + std::to_string(more) + " more; use a narrower glob.\n";
    return out;
}

ToolOutcome WorkspaceTools::edit_file(const json& args) {
    const auto path = str_arg(args, "path");
    auto old_text = str_arg(args, "old_text");
    auto new_text = str_arg(args, "new_text");
    if (!path || !old_text || !new_text)
        return refused("edit_file needs path, old_text and new_text (strings).",
                       "Edit: bad arguments");
    if (old_text->empty())
        return refused(
            "old_text is empty: quote the lines to replace (create_file makes new files).",
            "Edit: empty old_text");
    if (old_text->size() > limits_.edit_bytes || new_text->size() > limits_.edit_bytes)
        return refused("old_text and new_text may each be at most " +
                           std::to_string(limits_.edit_bytes >> 10) +
                           " KiB; edit in smaller parts.",
                       "Edit: too large");
    std::string why, text;
    const std::string real = resolve(*path, false, &why);
    if (real.empty()) return refused(why, "Refused to edit " + capped(*path, 120));
    const std::string shown = workspaces_.shown_path(real);
    if (shown == ".git" || shown.rfind(".git/", 0) == 0 ||
        shown.find("/.git/") != std::string::npos)
        return refused("Files under .git are not edited.", "Refused to edit " + shown);
    if (!current_text(real, &text, &why)) return refused(why, "Could not read " + shown);
    if (!edits_.text(real) && edits_.touched() >= limits_.proposed_files)
        return refused("At most " + std::to_string(limits_.proposed_files) +
                           " files may be changed in one proposal.",
                       "Edit refused: too many files");
    // A file with CRLF line ends: the model quotes it with LF.
    if (text.find("\r\n") != std::string::npos && old_text->find("\r\n") == std::string::npos) {
        *old_text = crlf(*old_text);
        *new_text = crlf(*new_text);
    }
    size_t at = 0;
    const size_t n = occurrences(text, *old_text, &at);
    if (n == 0)
        return refused("old_text does not occur in " + shown +
                           ". Read the file and copy the lines exactly, whitespace included.",
                       "Edit of " + shown + " refused: text not found");
    if (n > 1)
        return refused("old_text occurs " + std::to_string(n) + " times in " + shown +
                           "; include more surrounding lines so it occurs once.",
                       "Edit of " + shown + " refused: text not unique");
    const uint32_t first = static_cast<uint32_t>(std::count(text.begin(), text.begin() + at, '\n'));
    std::string updated = text.substr(0, at) + *new_text + text.substr(at + old_text->size());
    if (updated.size() > limits_.file_bytes)
        return refused("The file would grow too large.", "Edit refused");
    const size_t removed = count_lines(*old_text), added = count_lines(*new_text);
    // (A file this run created stays `created`: set() keeps the first call's flag.)
    edits_.set(real, path_to_uri(real), shown, false, text, std::move(updated));
    ToolOutcome out{Status::kDone,
                    "Proposed: " + shown + " line " + std::to_string(first + 1) + ", -" +
                        std::to_string(removed) + " +" + std::to_string(added) +
                        " lines. The user will review it.",
                    "Proposed an edit to " + shown + " (-" + std::to_string(removed) + " +" +
                        std::to_string(added) + ")",
                    {}};
    out.sources.push_back(source(
        real, first, first + static_cast<uint32_t>(std::max<size_t>(added, 1)) - 1, "edited"));
    return out;
}

ToolOutcome WorkspaceTools::create_file(const json& args) {
    const auto path = str_arg(args, "path");
    const auto text = str_arg(args, "text");
    if (!path || !text)
        return refused("create_file needs path and text (strings).", "Create: bad arguments");
    if (text->size() > limits_.create_bytes)
        return refused(
            "A new file may be at most " + std::to_string(limits_.create_bytes >> 10) + " KiB.",
            "Create refused: too large");
    std::string why;
    const std::string real = resolve(*path, true, &why);
    if (real.empty()) return refused(why, "Refused to create " + capped(*path, 120));
    struct stat st {};
    if (::stat(real.c_str(), &st) == 0 || edits_.text(real))
        return refused("\"" + *path + "\" exists already: use edit_file to change it.",
                       "Create refused: " + *path + " exists");
    const std::string shown = workspaces_.shown_path(real);
    if (shown == ".git" || shown.rfind(".git/", 0) == 0 ||
        shown.find("/.git/") != std::string::npos)
        return refused("Files under .git are not created.", "Refused to create " + shown);
    if (edits_.touched() >= limits_.proposed_files)
        return refused("At most " + std::to_string(limits_.proposed_files) +
                           " files may be changed in one proposal.",
                       "Create refused: too many files");
    const size_t lines = count_lines(*text);
    edits_.set(real, path_to_uri(real), shown, true, "", *text);
    ToolOutcome out{Status::kDone,
                    "Proposed a new file " + shown + " (" + std::to_string(lines) +
                        " lines). The user will review it.",
                    "Proposed a new file " + shown + " (+" + std::to_string(lines) + ")",
                    {}};
    out.sources.push_back(
        source(real, 0, static_cast<uint32_t>(lines > 0 ? lines - 1 : 0), "created"));
    return out;
}

}  // namespace latent::agent
