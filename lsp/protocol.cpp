// from_json/to_json for the LSP structs in protocol.h. The readers below are strict about
// types and ranges so that a bad message becomes -32602, never a silently wrong value.
#include "lsp/protocol.h"

#include <limits>

namespace latent::lsp {
namespace {

const char* type_name(const json& j) {
    switch (j.type()) {
        case json::value_t::null:
            return "null";
        case json::value_t::object:
            return "object";
        case json::value_t::array:
            return "array";
        case json::value_t::string:
            return "string";
        case json::value_t::boolean:
            return "boolean";
        case json::value_t::number_integer:
        case json::value_t::number_unsigned:
            return "integer";
        case json::value_t::number_float:
            return "number";
        default:
            return "value";
    }
}

[[noreturn]] void fail(const char* field, const char* expected, const json& got) {
    throw ProtocolError(std::string(field) + ": expected " + expected + ", got " + type_name(got));
}

void require_object(const json& j, const char* what) {
    if (!j.is_object()) fail(what, "object", j);
}

// The member `key`, or nullptr when it is absent. `null` counts as absent for optional
// fields: clients send `"rootUri": null` and mean "none".
const json* member(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return nullptr;
    return &*it;
}

const json& required(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end()) throw ProtocolError(std::string(key) + ": missing");
    return *it;
}

int64_t read_int(const json& j, const char* field, int64_t lo, int64_t hi) {
    if (j.is_number_unsigned()) {
        const uint64_t u = j.get<uint64_t>();
        if (u > static_cast<uint64_t>(hi))
            throw ProtocolError(std::string(field) + ": out of range");
        return static_cast<int64_t>(u);
    }
    if (!j.is_number_integer()) fail(field, "integer", j);
    const int64_t v = j.get<int64_t>();
    if (v < lo || v > hi) throw ProtocolError(std::string(field) + ": out of range");
    return v;
}

// LSP `uinteger`: 0 .. 2^31 - 1. `integer`: -2^31 .. 2^31 - 1.
constexpr int64_t kUIntegerMax = std::numeric_limits<int32_t>::max();
constexpr int64_t kIntegerMin = std::numeric_limits<int32_t>::min();

uint32_t read_uinteger(const json& j, const char* field) {
    return static_cast<uint32_t>(read_int(j, field, 0, kUIntegerMax));
}
int32_t read_integer(const json& j, const char* field) {
    return static_cast<int32_t>(read_int(j, field, kIntegerMin, kUIntegerMax));
}
std::string read_string(const json& j, const char* field) {
    if (!j.is_string()) fail(field, "string", j);
    return j.get<std::string>();
}
bool read_bool(const json& j, const char* field) {
    if (!j.is_boolean()) fail(field, "boolean", j);
    return j.get<bool>();
}

// Reads a struct member, prefixing errors with the member's name ("range.start.line: ...").
template <class T>
T read_struct(const json& j, const char* field) {
    try {
        return j.get<T>();
    } catch (const ProtocolError& e) {
        throw ProtocolError(std::string(field) + "." + e.what());
    }
}

template <class T>
std::vector<T> read_array(const json& j, const char* field) {
    if (!j.is_array()) fail(field, "array", j);
    std::vector<T> out;
    out.reserve(j.size());
    for (size_t i = 0; i < j.size(); ++i)
        out.push_back(
            read_struct<T>(j[i], (std::string(field) + "[" + std::to_string(i) + "]").c_str()));
    return out;
}

std::vector<std::string> read_string_array(const json& j, const char* field) {
    if (!j.is_array()) fail(field, "array", j);
    std::vector<std::string> out;
    for (const auto& e : j) out.push_back(read_string(e, field));
    return out;
}

std::optional<std::string> opt_string(const json& j, const char* key) {
    const json* m = member(j, key);
    if (!m) return std::nullopt;
    return read_string(*m, key);
}
std::optional<bool> opt_bool(const json& j, const char* key) {
    const json* m = member(j, key);
    if (!m) return std::nullopt;
    return read_bool(*m, key);
}
std::optional<uint32_t> opt_uinteger(const json& j, const char* key) {
    const json* m = member(j, key);
    if (!m) return std::nullopt;
    return read_uinteger(*m, key);
}
template <class T>
std::optional<T> opt_struct(const json& j, const char* key) {
    const json* m = member(j, key);
    if (!m) return std::nullopt;
    return read_struct<T>(*m, key);
}

template <class T>
void put_opt(json& j, const char* key, const std::optional<T>& v) {
    if (v) j[key] = *v;
}

void check_kind(const json& j, const char* expected) {
    if (read_string(required(j, "kind"), "kind") != expected)
        throw ProtocolError(std::string("kind: expected \"") + expected + "\"");
}

}  // namespace

void to_json(json& j, const IntOrString& v) {
    if (v.is_int())
        j = std::get<int64_t>(v.value);
    else
        j = std::get<std::string>(v.value);
}
void from_json(const json& j, IntOrString& v) {
    if (j.is_string())
        v.value = j.get<std::string>();
    else if (j.is_number_integer())
        v.value = read_int(j, "id", std::numeric_limits<int64_t>::min(),
                           std::numeric_limits<int64_t>::max());
    else
        fail("id", "integer or string", j);
}
std::string to_string(const IntOrString& v) { return json(v).dump(); }

void to_json(json& j, const Position& v) { j = json{{"line", v.line}, {"character", v.character}}; }
void from_json(const json& j, Position& v) {
    require_object(j, "Position");
    v.line = read_uinteger(required(j, "line"), "line");
    v.character = read_uinteger(required(j, "character"), "character");
}

void to_json(json& j, const Range& v) { j = json{{"start", v.start}, {"end", v.end}}; }
void from_json(const json& j, Range& v) {
    require_object(j, "Range");
    v.start = read_struct<Position>(required(j, "start"), "start");
    v.end = read_struct<Position>(required(j, "end"), "end");
}

void to_json(json& j, const Location& v) { j = json{{"uri", v.uri}, {"range", v.range}}; }
void from_json(const json& j, Location& v) {
    require_object(j, "Location");
    v.uri = read_string(required(j, "uri"), "uri");
    v.range = read_struct<Range>(required(j, "range"), "range");
}

void to_json(json& j, const TextDocumentIdentifier& v) { j = json{{"uri", v.uri}}; }
void from_json(const json& j, TextDocumentIdentifier& v) {
    require_object(j, "TextDocumentIdentifier");
    v.uri = read_string(required(j, "uri"), "uri");
}

void to_json(json& j, const VersionedTextDocumentIdentifier& v) {
    j = json{{"uri", v.uri}, {"version", v.version}};
}
void from_json(const json& j, VersionedTextDocumentIdentifier& v) {
    require_object(j, "VersionedTextDocumentIdentifier");
    v.uri = read_string(required(j, "uri"), "uri");
    v.version = read_integer(required(j, "version"), "version");
}

void to_json(json& j, const TextDocumentItem& v) {
    j = json{
        {"uri", v.uri}, {"languageId", v.languageId}, {"version", v.version}, {"text", v.text}};
}
void from_json(const json& j, TextDocumentItem& v) {
    require_object(j, "TextDocumentItem");
    v.uri = read_string(required(j, "uri"), "uri");
    v.languageId = read_string(required(j, "languageId"), "languageId");
    v.version = read_integer(required(j, "version"), "version");
    v.text = read_string(required(j, "text"), "text");
}

void to_json(json& j, const TextDocumentContentChangeEvent& v) {
    j = json{{"text", v.text}};
    put_opt(j, "range", v.range);
    put_opt(j, "rangeLength", v.rangeLength);
}
void from_json(const json& j, TextDocumentContentChangeEvent& v) {
    require_object(j, "TextDocumentContentChangeEvent");
    v.range = opt_struct<Range>(j, "range");
    v.rangeLength = opt_uinteger(j, "rangeLength");
    v.text = read_string(required(j, "text"), "text");
}

void to_json(json& j, const DidOpenTextDocumentParams& v) {
    j = json{{"textDocument", v.textDocument}};
}
void from_json(const json& j, DidOpenTextDocumentParams& v) {
    require_object(j, "DidOpenTextDocumentParams");
    v.textDocument = read_struct<TextDocumentItem>(required(j, "textDocument"), "textDocument");
}

void to_json(json& j, const DidChangeTextDocumentParams& v) {
    j = json{{"textDocument", v.textDocument}, {"contentChanges", v.contentChanges}};
}
void from_json(const json& j, DidChangeTextDocumentParams& v) {
    require_object(j, "DidChangeTextDocumentParams");
    v.textDocument =
        read_struct<VersionedTextDocumentIdentifier>(required(j, "textDocument"), "textDocument");
    v.contentChanges =
        read_array<TextDocumentContentChangeEvent>(required(j, "contentChanges"), "contentChanges");
}

void to_json(json& j, const DidCloseTextDocumentParams& v) {
    j = json{{"textDocument", v.textDocument}};
}
void from_json(const json& j, DidCloseTextDocumentParams& v) {
    require_object(j, "DidCloseTextDocumentParams");
    v.textDocument =
        read_struct<TextDocumentIdentifier>(required(j, "textDocument"), "textDocument");
}

void to_json(json& j, const WorkspaceFolder& v) { j = json{{"uri", v.uri}, {"name", v.name}}; }
void from_json(const json& j, WorkspaceFolder& v) {
    require_object(j, "WorkspaceFolder");
    v.uri = read_string(required(j, "uri"), "uri");
    v.name = read_string(required(j, "name"), "name");
}

void to_json(json& j, const GeneralClientCapabilities& v) {
    j = json::object();
    put_opt(j, "positionEncodings", v.positionEncodings);
}
void from_json(const json& j, GeneralClientCapabilities& v) {
    require_object(j, "GeneralClientCapabilities");
    if (const json* m = member(j, "positionEncodings"))
        v.positionEncodings = read_string_array(*m, "positionEncodings");
}

void to_json(json& j, const WindowClientCapabilities& v) {
    j = json::object();
    put_opt(j, "workDoneProgress", v.workDoneProgress);
}
void from_json(const json& j, WindowClientCapabilities& v) {
    require_object(j, "WindowClientCapabilities");
    v.workDoneProgress = opt_bool(j, "workDoneProgress");
}

void to_json(json& j, const ClientCapabilities& v) {
    j = json::object();
    put_opt(j, "general", v.general);
    put_opt(j, "window", v.window);
}
void from_json(const json& j, ClientCapabilities& v) {
    require_object(j, "ClientCapabilities");
    v.general = opt_struct<GeneralClientCapabilities>(j, "general");
    v.window = opt_struct<WindowClientCapabilities>(j, "window");
}

void to_json(json& j, const InitializeParams& v) {
    j = json{{"processId", v.processId ? json(*v.processId) : json(nullptr)},
             {"rootUri", v.rootUri ? json(*v.rootUri) : json(nullptr)},
             {"capabilities", v.capabilities}};
    put_opt(j, "workspaceFolders", v.workspaceFolders);
    if (!v.initializationOptions.is_null()) j["initializationOptions"] = v.initializationOptions;
    put_opt(j, "workDoneToken", v.workDoneToken);
}
void from_json(const json& j, InitializeParams& v) {
    require_object(j, "InitializeParams");
    v.processId.reset();
    if (const json* m = member(j, "processId"))
        v.processId = read_int(*m, "processId", std::numeric_limits<int64_t>::min(),
                               std::numeric_limits<int64_t>::max());
    v.rootUri = opt_string(j, "rootUri");
    v.workspaceFolders.reset();
    if (const json* m = member(j, "workspaceFolders"))
        v.workspaceFolders = read_array<WorkspaceFolder>(*m, "workspaceFolders");
    v.capabilities = read_struct<ClientCapabilities>(required(j, "capabilities"), "capabilities");
    auto it = j.find("initializationOptions");
    v.initializationOptions = it == j.end() ? json() : *it;
    v.workDoneToken = opt_struct<ProgressToken>(j, "workDoneToken");
}

void to_json(json& j, const TextDocumentSyncOptions& v) {
    j = json::object();
    put_opt(j, "openClose", v.openClose);
    if (v.change) j["change"] = static_cast<int>(*v.change);
}
void from_json(const json& j, TextDocumentSyncOptions& v) {
    require_object(j, "TextDocumentSyncOptions");
    v.openClose = opt_bool(j, "openClose");
    v.change.reset();
    if (const json* m = member(j, "change"))
        v.change = static_cast<TextDocumentSyncKind>(read_int(*m, "change", 0, 2));
}

void to_json(json& j, const ExecuteCommandOptions& v) { j = json{{"commands", v.commands}}; }
void from_json(const json& j, ExecuteCommandOptions& v) {
    require_object(j, "ExecuteCommandOptions");
    v.commands = read_string_array(required(j, "commands"), "commands");
}

void to_json(json& j, const ServerCapabilities& v) {
    j = json::object();
    put_opt(j, "positionEncoding", v.positionEncoding);
    put_opt(j, "textDocumentSync", v.textDocumentSync);
    put_opt(j, "inlineCompletionProvider", v.inlineCompletionProvider);
    put_opt(j, "executeCommandProvider", v.executeCommandProvider);
    if (!v.experimental.is_null()) j["experimental"] = v.experimental;
}
void from_json(const json& j, ServerCapabilities& v) {
    require_object(j, "ServerCapabilities");
    v.positionEncoding = opt_string(j, "positionEncoding");
    v.textDocumentSync = opt_struct<TextDocumentSyncOptions>(j, "textDocumentSync");
    v.inlineCompletionProvider = opt_bool(j, "inlineCompletionProvider");
    v.executeCommandProvider = opt_struct<ExecuteCommandOptions>(j, "executeCommandProvider");
    auto it = j.find("experimental");
    v.experimental = it == j.end() ? json() : *it;
}

void to_json(json& j, const ServerInfo& v) {
    j = json{{"name", v.name}};
    put_opt(j, "version", v.version);
}
void from_json(const json& j, ServerInfo& v) {
    require_object(j, "ServerInfo");
    v.name = read_string(required(j, "name"), "name");
    v.version = opt_string(j, "version");
}

void to_json(json& j, const InitializeResult& v) {
    j = json{{"capabilities", v.capabilities}};
    put_opt(j, "serverInfo", v.serverInfo);
}
void from_json(const json& j, InitializeResult& v) {
    require_object(j, "InitializeResult");
    v.capabilities = read_struct<ServerCapabilities>(required(j, "capabilities"), "capabilities");
    v.serverInfo = opt_struct<ServerInfo>(j, "serverInfo");
}

void to_json(json& j, const SelectedCompletionInfo& v) {
    j = json{{"range", v.range}, {"text", v.text}};
}
void from_json(const json& j, SelectedCompletionInfo& v) {
    require_object(j, "SelectedCompletionInfo");
    v.range = read_struct<Range>(required(j, "range"), "range");
    v.text = read_string(required(j, "text"), "text");
}

void to_json(json& j, const InlineCompletionContext& v) {
    j = json{{"triggerKind", static_cast<int>(v.triggerKind)}};
    put_opt(j, "selectedCompletionInfo", v.selectedCompletionInfo);
}
void from_json(const json& j, InlineCompletionContext& v) {
    require_object(j, "InlineCompletionContext");
    v.triggerKind = static_cast<InlineCompletionTriggerKind>(
        read_int(required(j, "triggerKind"), "triggerKind", 1, 2));
    v.selectedCompletionInfo = opt_struct<SelectedCompletionInfo>(j, "selectedCompletionInfo");
}

void to_json(json& j, const InlineCompletionParams& v) {
    j = json{{"textDocument", v.textDocument}, {"position", v.position}, {"context", v.context}};
    put_opt(j, "workDoneToken", v.workDoneToken);
}
void from_json(const json& j, InlineCompletionParams& v) {
    require_object(j, "InlineCompletionParams");
    v.textDocument =
        read_struct<TextDocumentIdentifier>(required(j, "textDocument"), "textDocument");
    v.position = read_struct<Position>(required(j, "position"), "position");
    v.context = read_struct<InlineCompletionContext>(required(j, "context"), "context");
    v.workDoneToken = opt_struct<ProgressToken>(j, "workDoneToken");
}

void to_json(json& j, const Command& v) {
    j = json{{"title", v.title}, {"command", v.command}};
    put_opt(j, "arguments", v.arguments);
}
void from_json(const json& j, Command& v) {
    require_object(j, "Command");
    v.title = read_string(required(j, "title"), "title");
    v.command = read_string(required(j, "command"), "command");
    v.arguments.reset();
    if (const json* m = member(j, "arguments")) {
        if (!m->is_array()) fail("arguments", "array", *m);
        v.arguments = *m;
    }
}

void to_json(json& j, const InlineCompletionItem& v) {
    j = json{{"insertText", v.insertText}};
    put_opt(j, "filterText", v.filterText);
    put_opt(j, "range", v.range);
    put_opt(j, "command", v.command);
}
void from_json(const json& j, InlineCompletionItem& v) {
    require_object(j, "InlineCompletionItem");
    v.insertText = read_string(required(j, "insertText"), "insertText");
    v.filterText = opt_string(j, "filterText");
    v.range = opt_struct<Range>(j, "range");
    v.command = opt_struct<Command>(j, "command");
}

void to_json(json& j, const InlineCompletionList& v) { j = json{{"items", v.items}}; }
void from_json(const json& j, InlineCompletionList& v) {
    require_object(j, "InlineCompletionList");
    v.items = read_array<InlineCompletionItem>(required(j, "items"), "items");
}

void to_json(json& j, const TextEdit& v) { j = json{{"range", v.range}, {"newText", v.newText}}; }
void from_json(const json& j, TextEdit& v) {
    require_object(j, "TextEdit");
    v.range = read_struct<Range>(required(j, "range"), "range");
    v.newText = read_string(required(j, "newText"), "newText");
}

void to_json(json& j, const WorkspaceEdit& v) {
    j = json::object();
    json changes = json::object();
    for (const auto& [uri, edits] : v.changes) changes[uri] = edits;
    j["changes"] = std::move(changes);
}
void from_json(const json& j, WorkspaceEdit& v) {
    require_object(j, "WorkspaceEdit");
    v.changes.clear();
    if (const json* m = member(j, "changes")) {
        if (!m->is_object()) fail("changes", "object", *m);
        for (const auto& [uri, edits] : m->items())
            v.changes[uri] = read_array<TextEdit>(edits, "changes");
    }
}

void to_json(json& j, const ApplyWorkspaceEditParams& v) {
    j = json{{"edit", v.edit}};
    put_opt(j, "label", v.label);
}
void from_json(const json& j, ApplyWorkspaceEditParams& v) {
    require_object(j, "ApplyWorkspaceEditParams");
    v.label = opt_string(j, "label");
    v.edit = read_struct<WorkspaceEdit>(required(j, "edit"), "edit");
}

void to_json(json& j, const ApplyWorkspaceEditResult& v) {
    j = json{{"applied", v.applied}};
    put_opt(j, "failureReason", v.failureReason);
}
void from_json(const json& j, ApplyWorkspaceEditResult& v) {
    require_object(j, "ApplyWorkspaceEditResult");
    v.applied = read_bool(required(j, "applied"), "applied");
    v.failureReason = opt_string(j, "failureReason");
}

void to_json(json& j, const Registration& v) {
    j = json{{"id", v.id}, {"method", v.method}};
    if (!v.registerOptions.is_null()) j["registerOptions"] = v.registerOptions;
}
void from_json(const json& j, Registration& v) {
    require_object(j, "Registration");
    v.id = read_string(required(j, "id"), "id");
    v.method = read_string(required(j, "method"), "method");
    auto it = j.find("registerOptions");
    v.registerOptions = it == j.end() ? json() : *it;
}

void to_json(json& j, const RegistrationParams& v) { j = json{{"registrations", v.registrations}}; }
void from_json(const json& j, RegistrationParams& v) {
    require_object(j, "RegistrationParams");
    v.registrations = read_array<Registration>(required(j, "registrations"), "registrations");
}

void to_json(json& j, const ProgressParams& v) { j = json{{"token", v.token}, {"value", v.value}}; }
void from_json(const json& j, ProgressParams& v) {
    require_object(j, "ProgressParams");
    v.token = read_struct<ProgressToken>(required(j, "token"), "token");
    v.value = required(j, "value");
}

void to_json(json& j, const WorkDoneProgressCreateParams& v) { j = json{{"token", v.token}}; }
void from_json(const json& j, WorkDoneProgressCreateParams& v) {
    require_object(j, "WorkDoneProgressCreateParams");
    v.token = read_struct<ProgressToken>(required(j, "token"), "token");
}

namespace {
std::optional<uint32_t> opt_percentage(const json& j) {
    const json* m = member(j, "percentage");
    if (!m) return std::nullopt;
    return static_cast<uint32_t>(read_int(*m, "percentage", 0, 100));
}
}  // namespace

void to_json(json& j, const WorkDoneProgressBegin& v) {
    j = json{{"kind", "begin"}, {"title", v.title}};
    put_opt(j, "cancellable", v.cancellable);
    put_opt(j, "message", v.message);
    put_opt(j, "percentage", v.percentage);
}
void from_json(const json& j, WorkDoneProgressBegin& v) {
    require_object(j, "WorkDoneProgressBegin");
    check_kind(j, "begin");
    v.title = read_string(required(j, "title"), "title");
    v.cancellable = opt_bool(j, "cancellable");
    v.message = opt_string(j, "message");
    v.percentage = opt_percentage(j);
}

void to_json(json& j, const WorkDoneProgressReport& v) {
    j = json{{"kind", "report"}};
    put_opt(j, "cancellable", v.cancellable);
    put_opt(j, "message", v.message);
    put_opt(j, "percentage", v.percentage);
}
void from_json(const json& j, WorkDoneProgressReport& v) {
    require_object(j, "WorkDoneProgressReport");
    check_kind(j, "report");
    v.cancellable = opt_bool(j, "cancellable");
    v.message = opt_string(j, "message");
    v.percentage = opt_percentage(j);
}

void to_json(json& j, const WorkDoneProgressEnd& v) {
    j = json{{"kind", "end"}};
    put_opt(j, "message", v.message);
}
void from_json(const json& j, WorkDoneProgressEnd& v) {
    require_object(j, "WorkDoneProgressEnd");
    check_kind(j, "end");
    v.message = opt_string(j, "message");
}

void to_json(json& j, const CancelParams& v) { j = json{{"id", v.id}}; }
void from_json(const json& j, CancelParams& v) {
    require_object(j, "CancelParams");
    v.id = read_struct<IntOrString>(required(j, "id"), "id");
}

}  // namespace latent::lsp
