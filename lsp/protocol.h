// LSP message types: plain structs spelled like the specification (3.17, plus
// textDocument/inlineCompletion from 3.18), each followed by its from_json/to_json.
// Only the subset Latent speaks; no behaviour lives here (no dispatch, no documents).
//
// from_json is strict about the fields it knows (a wrong type, a missing required field or
// an out-of-range integer throws ProtocolError, which the dispatcher answers with -32602
// Invalid params) and lenient about fields it does not know (ignored, as clients send many).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace latent::lsp {

using json = nlohmann::json;

// Bad params: a wrong type, a missing field, a value out of range. what() names the field.
class ProtocolError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// `integer | string`: the spec's request ids and progress tokens. Integers are kept as
// int64 (JSON-RPC allows any number; LSP narrows it to int32, we are lenient) and strings
// as themselves, so an id goes back to the client exactly as it came.
struct IntOrString {
    std::variant<int64_t, std::string> value;

    IntOrString() : value(int64_t{0}) {}
    IntOrString(int64_t v) : value(v) {}
    IntOrString(int v) : value(int64_t{v}) {}  // so that IntOrString(0) is not a char*
    IntOrString(std::string v) : value(std::move(v)) {}
    IntOrString(const char* v) : value(std::string(v)) {}
    bool is_int() const { return value.index() == 0; }
    friend bool operator==(const IntOrString&, const IntOrString&) = default;
    friend auto operator<=>(const IntOrString&, const IntOrString&) = default;
};
void to_json(json& j, const IntOrString& v);
void from_json(const json& j, IntOrString& v);
std::string to_string(const IntOrString& v);  // for logs: 7 or "abc"

using ProgressToken = IntOrString;
using DocumentUri = std::string;

// Zero-based line and character offset. `character` counts in the negotiated position
// encoding (UTF-16 code units unless the client and server agreed otherwise); converting
// to byte offsets is the document store's business, not this file's.
struct Position {
    uint32_t line = 0;
    uint32_t character = 0;
    friend bool operator==(const Position&, const Position&) = default;
    friend auto operator<=>(const Position&, const Position&) = default;
};
void to_json(json& j, const Position& v);
void from_json(const json& j, Position& v);

// [start, end): end is exclusive, as the spec says.
struct Range {
    Position start;
    Position end;
    friend bool operator==(const Range&, const Range&) = default;
};
void to_json(json& j, const Range& v);
void from_json(const json& j, Range& v);

struct Location {
    DocumentUri uri;
    Range range;
    friend bool operator==(const Location&, const Location&) = default;
};
void to_json(json& j, const Location& v);
void from_json(const json& j, Location& v);

struct TextDocumentIdentifier {
    DocumentUri uri;
    friend bool operator==(const TextDocumentIdentifier&, const TextDocumentIdentifier&) = default;
};
void to_json(json& j, const TextDocumentIdentifier& v);
void from_json(const json& j, TextDocumentIdentifier& v);

struct VersionedTextDocumentIdentifier {
    DocumentUri uri;
    int32_t version = 0;
    friend bool operator==(const VersionedTextDocumentIdentifier&,
                           const VersionedTextDocumentIdentifier&) = default;
};
void to_json(json& j, const VersionedTextDocumentIdentifier& v);
void from_json(const json& j, VersionedTextDocumentIdentifier& v);

struct TextDocumentItem {
    DocumentUri uri;
    std::string languageId;
    int32_t version = 0;
    std::string text;
    friend bool operator==(const TextDocumentItem&, const TextDocumentItem&) = default;
};
void to_json(json& j, const TextDocumentItem& v);
void from_json(const json& j, TextDocumentItem& v);

// Incremental when `range` is set (replace that range by `text`), full otherwise.
// `rangeLength` is deprecated in the spec; it is read and kept but should not be trusted.
struct TextDocumentContentChangeEvent {
    std::optional<Range> range;
    std::optional<uint32_t> rangeLength;
    std::string text;
    friend bool operator==(const TextDocumentContentChangeEvent&,
                           const TextDocumentContentChangeEvent&) = default;
};
void to_json(json& j, const TextDocumentContentChangeEvent& v);
void from_json(const json& j, TextDocumentContentChangeEvent& v);

struct DidOpenTextDocumentParams {
    TextDocumentItem textDocument;
    friend bool operator==(const DidOpenTextDocumentParams&,
                           const DidOpenTextDocumentParams&) = default;
};
void to_json(json& j, const DidOpenTextDocumentParams& v);
void from_json(const json& j, DidOpenTextDocumentParams& v);

struct DidChangeTextDocumentParams {
    VersionedTextDocumentIdentifier textDocument;
    std::vector<TextDocumentContentChangeEvent> contentChanges;  // applied in order
    friend bool operator==(const DidChangeTextDocumentParams&,
                           const DidChangeTextDocumentParams&) = default;
};
void to_json(json& j, const DidChangeTextDocumentParams& v);
void from_json(const json& j, DidChangeTextDocumentParams& v);

struct DidCloseTextDocumentParams {
    TextDocumentIdentifier textDocument;
    friend bool operator==(const DidCloseTextDocumentParams&,
                           const DidCloseTextDocumentParams&) = default;
};
void to_json(json& j, const DidCloseTextDocumentParams& v);
void from_json(const json& j, DidCloseTextDocumentParams& v);

struct WorkspaceFolder {
    DocumentUri uri;
    std::string name;
    friend bool operator==(const WorkspaceFolder&, const WorkspaceFolder&) = default;
};
void to_json(json& j, const WorkspaceFolder& v);
void from_json(const json& j, WorkspaceFolder& v);

// Position encodings: "utf-8", "utf-16" (the default and mandatory one), "utf-32".
using PositionEncodingKind = std::string;

struct GeneralClientCapabilities {
    std::optional<std::vector<PositionEncodingKind>> positionEncodings;
    friend bool operator==(const GeneralClientCapabilities&,
                           const GeneralClientCapabilities&) = default;
};
void to_json(json& j, const GeneralClientCapabilities& v);
void from_json(const json& j, GeneralClientCapabilities& v);

struct WindowClientCapabilities {
    std::optional<bool> workDoneProgress;  // client accepts window/workDoneProgress/create
    friend bool operator==(const WindowClientCapabilities&,
                           const WindowClientCapabilities&) = default;
};
void to_json(json& j, const WindowClientCapabilities& v);
void from_json(const json& j, WindowClientCapabilities& v);

// The subset we read; the rest of the client's capabilities are ignored.
struct ClientCapabilities {
    std::optional<GeneralClientCapabilities> general;
    std::optional<WindowClientCapabilities> window;
    friend bool operator==(const ClientCapabilities&, const ClientCapabilities&) = default;
};
void to_json(json& j, const ClientCapabilities& v);
void from_json(const json& j, ClientCapabilities& v);

struct InitializeParams {
    std::optional<int64_t> processId;    // `integer | null`; absent is read as null
    std::optional<DocumentUri> rootUri;  // `DocumentUri | null`
    std::optional<std::vector<WorkspaceFolder>> workspaceFolders;  // `WorkspaceFolder[] | null`
    ClientCapabilities capabilities;                               // required
    json initializationOptions;  // the server's own settings, kept raw (null when absent)
    std::optional<ProgressToken> workDoneToken;
    friend bool operator==(const InitializeParams&, const InitializeParams&) = default;
};
void to_json(json& j, const InitializeParams& v);
void from_json(const json& j, InitializeParams& v);

// TextDocumentSyncKind: 0 None, 1 Full, 2 Incremental.
enum class TextDocumentSyncKind : int { None = 0, Full = 1, Incremental = 2 };

struct TextDocumentSyncOptions {
    std::optional<bool> openClose;
    std::optional<TextDocumentSyncKind> change;
    friend bool operator==(const TextDocumentSyncOptions&,
                           const TextDocumentSyncOptions&) = default;
};
void to_json(json& j, const TextDocumentSyncOptions& v);
void from_json(const json& j, TextDocumentSyncOptions& v);

struct ExecuteCommandOptions {
    std::vector<std::string> commands;
    friend bool operator==(const ExecuteCommandOptions&, const ExecuteCommandOptions&) = default;
};
void to_json(json& j, const ExecuteCommandOptions& v);
void from_json(const json& j, ExecuteCommandOptions& v);

// The subset Latent announces. `experimental` carries custom capabilities verbatim.
struct ServerCapabilities {
    std::optional<PositionEncodingKind> positionEncoding;
    std::optional<TextDocumentSyncOptions> textDocumentSync;
    std::optional<bool> inlineCompletionProvider;  // LSP 3.18; options form not used
    std::optional<ExecuteCommandOptions> executeCommandProvider;
    json experimental;  // null when absent
    friend bool operator==(const ServerCapabilities&, const ServerCapabilities&) = default;
};
void to_json(json& j, const ServerCapabilities& v);
void from_json(const json& j, ServerCapabilities& v);

struct ServerInfo {
    std::string name;
    std::optional<std::string> version;
    friend bool operator==(const ServerInfo&, const ServerInfo&) = default;
};
void to_json(json& j, const ServerInfo& v);
void from_json(const json& j, ServerInfo& v);

struct InitializeResult {
    ServerCapabilities capabilities;
    std::optional<ServerInfo> serverInfo;
    friend bool operator==(const InitializeResult&, const InitializeResult&) = default;
};
void to_json(json& j, const InitializeResult& v);
void from_json(const json& j, InitializeResult& v);

// InlineCompletionTriggerKind: 1 Invoked (explicitly asked), 2 Automatic (while typing).
enum class InlineCompletionTriggerKind : int { Invoked = 1, Automatic = 2 };

struct SelectedCompletionInfo {
    Range range;
    std::string text;
    friend bool operator==(const SelectedCompletionInfo&, const SelectedCompletionInfo&) = default;
};
void to_json(json& j, const SelectedCompletionInfo& v);
void from_json(const json& j, SelectedCompletionInfo& v);

struct InlineCompletionContext {
    InlineCompletionTriggerKind triggerKind = InlineCompletionTriggerKind::Automatic;
    std::optional<SelectedCompletionInfo> selectedCompletionInfo;
    friend bool operator==(const InlineCompletionContext&,
                           const InlineCompletionContext&) = default;
};
void to_json(json& j, const InlineCompletionContext& v);
void from_json(const json& j, InlineCompletionContext& v);

struct InlineCompletionParams {
    TextDocumentIdentifier textDocument;
    Position position;
    InlineCompletionContext context;
    std::optional<ProgressToken> workDoneToken;
    friend bool operator==(const InlineCompletionParams&, const InlineCompletionParams&) = default;
};
void to_json(json& j, const InlineCompletionParams& v);
void from_json(const json& j, InlineCompletionParams& v);

struct Command {
    std::string title;
    std::string command;
    std::optional<json> arguments;  // an array when present
    friend bool operator==(const Command&, const Command&) = default;
};
void to_json(json& j, const Command& v);
void from_json(const json& j, Command& v);

// insertText is the plain-string form; the spec's StringValue (snippet) form is not used
// by Latent and is rejected by from_json.
struct InlineCompletionItem {
    std::string insertText;
    std::optional<std::string> filterText;
    std::optional<Range> range;
    std::optional<Command> command;
    friend bool operator==(const InlineCompletionItem&, const InlineCompletionItem&) = default;
};
void to_json(json& j, const InlineCompletionItem& v);
void from_json(const json& j, InlineCompletionItem& v);

struct InlineCompletionList {
    std::vector<InlineCompletionItem> items;
    friend bool operator==(const InlineCompletionList&, const InlineCompletionList&) = default;
};
void to_json(json& j, const InlineCompletionList& v);
void from_json(const json& j, InlineCompletionList& v);

struct TextEdit {
    Range range;
    std::string newText;
    friend bool operator==(const TextEdit&, const TextEdit&) = default;
};
void to_json(json& j, const TextEdit& v);
void from_json(const json& j, TextEdit& v);

// The `changes` form only (uri -> edits); `documentChanges` is not used by Latent.
struct WorkspaceEdit {
    std::map<DocumentUri, std::vector<TextEdit>> changes;
    friend bool operator==(const WorkspaceEdit&, const WorkspaceEdit&) = default;
};
void to_json(json& j, const WorkspaceEdit& v);
void from_json(const json& j, WorkspaceEdit& v);

// workspace/applyEdit (server -> client) and its result.
struct ApplyWorkspaceEditParams {
    std::optional<std::string> label;
    WorkspaceEdit edit;
    friend bool operator==(const ApplyWorkspaceEditParams&,
                           const ApplyWorkspaceEditParams&) = default;
};
void to_json(json& j, const ApplyWorkspaceEditParams& v);
void from_json(const json& j, ApplyWorkspaceEditParams& v);

struct ApplyWorkspaceEditResult {
    bool applied = false;
    std::optional<std::string> failureReason;
    friend bool operator==(const ApplyWorkspaceEditResult&,
                           const ApplyWorkspaceEditResult&) = default;
};
void to_json(json& j, const ApplyWorkspaceEditResult& v);
void from_json(const json& j, ApplyWorkspaceEditResult& v);

// client/registerCapability (server -> client).
struct Registration {
    std::string id;
    std::string method;
    json registerOptions;  // null when absent
    friend bool operator==(const Registration&, const Registration&) = default;
};
void to_json(json& j, const Registration& v);
void from_json(const json& j, Registration& v);

struct RegistrationParams {
    std::vector<Registration> registrations;
    friend bool operator==(const RegistrationParams&, const RegistrationParams&) = default;
};
void to_json(json& j, const RegistrationParams& v);
void from_json(const json& j, RegistrationParams& v);

// $/progress: `value` is a WorkDoneProgress{Begin,Report,End} or a partial result.
struct ProgressParams {
    ProgressToken token;
    json value;
    friend bool operator==(const ProgressParams&, const ProgressParams&) = default;
};
void to_json(json& j, const ProgressParams& v);
void from_json(const json& j, ProgressParams& v);

// window/workDoneProgress/create (server -> client).
struct WorkDoneProgressCreateParams {
    ProgressToken token;
    friend bool operator==(const WorkDoneProgressCreateParams&,
                           const WorkDoneProgressCreateParams&) = default;
};
void to_json(json& j, const WorkDoneProgressCreateParams& v);
void from_json(const json& j, WorkDoneProgressCreateParams& v);

// The three values of work-done progress; `kind` is written by to_json and checked by
// from_json. percentage is 0..100.
struct WorkDoneProgressBegin {
    std::string title;
    std::optional<bool> cancellable;
    std::optional<std::string> message;
    std::optional<uint32_t> percentage;
    friend bool operator==(const WorkDoneProgressBegin&, const WorkDoneProgressBegin&) = default;
};
void to_json(json& j, const WorkDoneProgressBegin& v);
void from_json(const json& j, WorkDoneProgressBegin& v);

struct WorkDoneProgressReport {
    std::optional<bool> cancellable;
    std::optional<std::string> message;
    std::optional<uint32_t> percentage;
    friend bool operator==(const WorkDoneProgressReport&, const WorkDoneProgressReport&) = default;
};
void to_json(json& j, const WorkDoneProgressReport& v);
void from_json(const json& j, WorkDoneProgressReport& v);

struct WorkDoneProgressEnd {
    std::optional<std::string> message;
    friend bool operator==(const WorkDoneProgressEnd&, const WorkDoneProgressEnd&) = default;
};
void to_json(json& j, const WorkDoneProgressEnd& v);
void from_json(const json& j, WorkDoneProgressEnd& v);

// $/cancelRequest.
struct CancelParams {
    IntOrString id;
    friend bool operator==(const CancelParams&, const CancelParams&) = default;
};
void to_json(json& j, const CancelParams& v);
void from_json(const json& j, CancelParams& v);

}  // namespace latent::lsp
