// PromptLibrary: the chat's named prompts ("/explain", "/tests", a team's own) — the
// built-ins and the workspace folders' `.latent/prompts/*.md` files with a small front
// matter — listed and rendered with the context each one asks for. Not the chat (agent.h),
// not the model's chat template (engine/prompt_format.h), not the gathering of the context
// it asks for (mentions.h).
//
// A workspace file:
//   ---
//   name: my-prompt            (optional; default: the file name without .md)
//   description: One line
//   context: [selection, file]   (or "context: selection, file"; known: selection, file,
//   ---                           codebase; others are ignored)
//   template body: {{input}} {{selection}} {{file}} {{path}} {{language}} {{codebase}}
//   (and {{diff}}: the working tree's diff against HEAD, which the built-in "review" uses)
//
// Rules, decided here:
//   - Names are [a-z0-9_-]{1,64}; a file whose name is not is skipped (logged).
//   - A workspace prompt overrides the built-in of the same name (as VS Code's prompt
//     files do: the team's "/review" is the one they want); between folders, the first
//     folder wins; within a folder, the first file by file name.
//   - Limits (a repository is untrusted input): files over 64 KiB and files past the first
//     100 (by name) are skipped; a malformed file (no front matter, no body, a bad name)
//     is skipped with a log line and never fails the list.
//   - Only files inside the folder are read: the real path of the prompts folder and of
//     each file must lie in the real path of the workspace folder (a symlinked .md, or a
//     symlinked .latent, pointing outside is skipped).
//   - A placeholder the inputs leave empty becomes ""; unknown {{words}} stay as written.
//     Substituted text is never scanned again (a selection holding "{{input}}" stays so).
//   - A template without {{input}} gets the user's input appended after a blank line,
//     so what the user typed after /name is never lost.
//
// Thread-safety: every method may be called from any thread (one mutex). list() re-reads a
// folder's prompts only when the prompts folder's or a file's mtime (or the file set)
// changed since the last read, so calling it per request is cheap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "engine/expected.h"

namespace latent::agent {

// What a prompt wants gathered before it is rendered.
enum class PromptContext { kSelection, kFile, kCodebase };
// "selection" | "file" | "codebase" (the protocol's spelling).
const char* prompt_context_name(PromptContext c);

struct PromptInfo {
    std::string name;
    std::string description;
    std::vector<PromptContext> context;  // in the order written, each once
    bool workspace = false;              // protocol source: false "builtin", true "workspace"
    std::string path;                    // workspace: the .md file's real path; else ""
    friend bool operator==(const PromptInfo&, const PromptInfo&) = default;
};

// The text put in place of each placeholder.
struct PromptInputs {
    std::string input;      // what the user typed after /name
    std::string selection;  // the selected text
    std::string file;       // the whole file's text
    std::string path;       // the file's workspace-relative path
    std::string language;   // its language id ("cpp", "python")
    std::string codebase;   // the @codebase context block (mentions.h GatheredContext::text)
    std::string diff;       // {{diff}}: the working tree's diff against HEAD (for "review")
};

struct PromptLibraryOptions {
    // Skipped files and other problems, one line each. Default: none.
    std::function<void(const std::string&)> log;
};

class PromptLibrary {
public:
    static constexpr size_t kMaxFileBytes = 64 * 1024;  // a prompt, not a document
    static constexpr size_t kMaxFiles = 100;            // per folder
    static constexpr size_t kMaxNameBytes = 64;

    explicit PromptLibrary(PromptLibraryOptions options = {});

    // The workspace folders (absolute paths; real paths are taken here), in order.
    void set_folders(std::vector<std::string> folders);

    // Built-ins and workspace prompts, sorted by name; a workspace prompt replaces the
    // built-in of its name. Re-reads folders whose prompts changed.
    std::vector<PromptInfo> list();
    // The prompt named `name` as list() would give it; nullopt when none.
    std::optional<PromptInfo> find(std::string_view name);
    // The prompt's template with the inputs in place; an error when no prompt has the name.
    engine::Expected<std::string> render(std::string_view name, const PromptInputs& inputs);

private:
    struct Prompt {
        PromptInfo info;
        std::string body;
    };
    struct Folder {
        std::string root;  // real path
        // What the last read saw: each .md file's (name, mtime, size); equal on the next
        // list() means nothing to read again.
        std::vector<std::tuple<std::string, int64_t, uintmax_t>> stamp;
        bool read = false;
        std::vector<Prompt> prompts;
    };
    void refresh(Folder& f);                              // with mu_ held
    std::map<std::string, Prompt, std::less<>> merged();  // with mu_ held
    void log(const std::string& line) const;

    PromptLibraryOptions options_;
    std::mutex mu_;
    std::vector<Folder> folders_;
};

// Parses one prompt file (exposed for tests). `file_stem` names it when the front matter
// has no name. An error says why the file is skipped.
engine::Expected<PromptInfo> parse_prompt_file(std::string_view text, std::string_view file_stem,
                                               std::string* body);
// Fills a template's placeholders (see the rules above).
std::string render_template(std::string_view body, const PromptInputs& inputs);
// The built-in prompts, in name order.
const std::vector<std::pair<PromptInfo, std::string>>& builtin_prompts();

}  // namespace latent::agent
