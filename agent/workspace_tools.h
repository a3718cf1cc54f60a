// WorkspaceTools: the functions agent mode lets the model call — search_code,
// find_definition, find_references, read_file, list_files, edit_file, create_file — run
// over the workspace folders. Edits are only proposed (ProposedEdits): nothing is ever
// written. Every path the model names is resolved to its real path and must lie inside a
// workspace folder (Workspaces' containment: "..", symlinks out and absolute paths
// elsewhere are refused); every argument and every answer is capped. A refusal is an
// answer like any other: its text goes back to the model as the tool's result, so the
// model can correct itself.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/documents.h"
#include "agent/proposed_edits.h"
#include "agent/source.h"
#include "agent/workspaces.h"

namespace latent::agent {

struct ToolLimits {
    size_t result_bytes = 8192;    // what one tool call sends back to the model
    size_t read_lines = 200;       // read_file: lines per call
    size_t read_bytes = 16384;     // read_file: bytes per call
    size_t file_bytes = 4u << 20;  // a file larger than this is not read or edited
    size_t edit_bytes = 65536;     // edit_file: old_text and new_text each
    size_t create_bytes = 262144;  // create_file: the new file
    size_t proposed_files = 32;    // files one run may propose to change
    size_t search_results = 8;     // search_code
    size_t definitions = 5;        // find_definition
    size_t references = 60;        // find_references
    size_t listed_files = 200;     // list_files
};

struct ToolOutcome {
    enum class Status { kDone, kRefused, kFailed };
    Status status = Status::kDone;
    std::string result;  // sent back to the model as the tool's answer
    std::string title;   // one line for the user: "Read src/a.ts lines 10–40"
    std::vector<Source> sources;
};
const char* status_name(ToolOutcome::Status s);  // "done" | "refused" | "failed"

// Thread safety: none; one agent run owns one. `workspaces` and `documents` must outlive
// it (they are thread-safe themselves).
class WorkspaceTools {
public:
    WorkspaceTools(const Workspaces& workspaces, const DocumentStore& documents,
                   ToolLimits limits = {});

    // The tools in OpenAI's shape: [{type: "function", function: {name, description,
    // parameters}}].
    static const nlohmann::json& definitions();
    // Runs one call; `arguments` is the model's JSON text (unchecked).
    ToolOutcome call(const std::string& name, const std::string& arguments);

    const ProposedEdits& proposal() const { return edits_; }

private:
    ToolOutcome search_code(const nlohmann::json& args);
    ToolOutcome find_definition(const nlohmann::json& args);
    ToolOutcome find_references(const nlohmann::json& args);
    ToolOutcome read_file(const nlohmann::json& args);
    ToolOutcome list_files(const nlohmann::json& args);
    ToolOutcome edit_file(const nlohmann::json& args);
    ToolOutcome create_file(const nlohmann::json& args);

    // A path the model named: its real path inside a folder, or "" with `why` set.
    // `for_create`: the file need not exist, nor its folder (nearest existing one counts).
    std::string resolve(const std::string& path, bool for_create, std::string* why) const;
    // The file's current text as the agent sees it: proposed, else the open document,
    // else the disk. False with `why` when it cannot be read (missing, too large, binary).
    bool current_text(const std::string& real, std::string* text, std::string* why) const;
    Source source(const std::string& real, uint32_t first_line, uint32_t last_line,
                  std::string why) const;

    const Workspaces& workspaces_;
    const DocumentStore& documents_;
    ToolLimits limits_;
    ProposedEdits edits_;
};

}  // namespace latent::agent
