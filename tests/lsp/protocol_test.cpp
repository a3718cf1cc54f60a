// Protocol structs: the JSON shapes the spec defines, round trips, and rejection of bad
// params with a ProtocolError that names the field.
#include "lsp/protocol.h"

#include <string>

#include <gtest/gtest.h>

namespace latent::lsp {
namespace {

template <class T>
void expect_round_trip(const T& value) {
    const json j = value;
    EXPECT_EQ(j.get<T>(), value) << j.dump();
    // Through text too, as it travels.
    EXPECT_EQ(json::parse(j.dump()).get<T>(), value) << j.dump();
}

// Expects from_json to throw a ProtocolError whose message mentions `field`.
template <class T>
void expect_rejected(const json& j, const std::string& field) {
    try {
        (void)j.get<T>();
        ADD_FAILURE() << "accepted: " << j.dump();
    } catch (const ProtocolError& e) {
        EXPECT_NE(std::string(e.what()).find(field), std::string::npos)
            << "message '" << e.what() << "' does not name " << field;
    }
}

TEST(Protocol, PositionAndRangeShapes) {
    EXPECT_EQ(json(Position{3, 14}), (json{{"line", 3}, {"character", 14}}));
    EXPECT_EQ(json(Range{{1, 0}, {2, 5}}),
              json::parse(R"({"start":{"line":1,"character":0},"end":{"line":2,"character":5}})"));
    expect_round_trip(Position{2147483647u, 0});
    expect_round_trip(Location{"file:///x.py", Range{{0, 1}, {0, 4}}});
}

TEST(Protocol, PositionRejectsBadValues) {
    expect_rejected<Position>(json{{"line", "1"}, {"character", 0}}, "line");
    expect_rejected<Position>(json{{"line", 1.5}, {"character", 0}}, "line");
    expect_rejected<Position>(json{{"line", -1}, {"character", 0}}, "line");
    expect_rejected<Position>(json{{"line", 2147483648LL}, {"character", 0}}, "line");
    expect_rejected<Position>(json{{"line", 1}}, "character");
    expect_rejected<Position>(json{{"line", 1}, {"character", nullptr}}, "character");
    expect_rejected<Position>(json::array({1, 2}), "Position");
    expect_rejected<Range>(json{{"start", {{"line", 0}, {"character", 0}}},
                                {"end", {{"line", true}, {"character", 0}}}},
                           "end.line");
}

TEST(Protocol, TextDocumentStructs) {
    expect_round_trip(TextDocumentItem{"file:///a.cpp", "cpp", 3, "int main() {}\n"});
    expect_round_trip(VersionedTextDocumentIdentifier{"file:///a.cpp", -1});
    expect_round_trip(DidOpenTextDocumentParams{{"file:///a.cpp", "cpp", 1, "x"}});
    expect_round_trip(DidCloseTextDocumentParams{{"file:///a.cpp"}});
    DidChangeTextDocumentParams change;
    change.textDocument = {"file:///a.cpp", 4};
    change.contentChanges.push_back({Range{{0, 0}, {0, 3}}, 3u, "abc"});          // incremental
    change.contentChanges.push_back({std::nullopt, std::nullopt, "whole text"});  // full
    expect_round_trip(change);
    const json j = change;
    EXPECT_FALSE(j["contentChanges"][1].contains("range"));

    expect_rejected<TextDocumentItem>(json{{"uri", "u"}, {"languageId", "c"}, {"version", 1}},
                                      "text");
    expect_rejected<DidChangeTextDocumentParams>(
        json{{"textDocument", {{"uri", "u"}, {"version", 1}}}, {"contentChanges", "x"}},
        "contentChanges");
    expect_rejected<DidChangeTextDocumentParams>(
        json{{"textDocument", {{"uri", "u"}, {"version", 1}}},
             {"contentChanges", json::array({{{"text", 5}}})}},
        "contentChanges[0].text");
    expect_rejected<DidOpenTextDocumentParams>(json{{"textDocument", {{"uri", 1}}}},
                                               "textDocument.uri");
}

TEST(Protocol, InitializeParamsFromAVsCodeLikeMessage) {
    const json j = json::parse(R"({
        "processId": 1234,
        "clientInfo": {"name": "Visual Studio Code", "version": "1.95.0"},
        "rootUri": null,
        "workspaceFolders": [{"uri": "file:///ws", "name": "ws"}],
        "capabilities": {
            "general": {"positionEncodings": ["utf-16"], "markdown": {}},
            "window": {"workDoneProgress": true, "showMessage": {}},
            "textDocument": {"inlineCompletion": {"dynamicRegistration": true}}
        },
        "initializationOptions": {"model": "/m.gguf", "n": [1, 2]},
        "trace": "off"
    })");
    const auto p = j.get<InitializeParams>();
    EXPECT_EQ(p.processId, 1234);
    EXPECT_FALSE(p.rootUri);
    ASSERT_TRUE(p.workspaceFolders);
    EXPECT_EQ((*p.workspaceFolders)[0].name, "ws");
    ASSERT_TRUE(p.capabilities.general && p.capabilities.general->positionEncodings);
    EXPECT_EQ(*p.capabilities.general->positionEncodings, std::vector<std::string>{"utf-16"});
    EXPECT_EQ(p.capabilities.window->workDoneProgress, true);
    EXPECT_EQ(p.initializationOptions, (json{{"model", "/m.gguf"}, {"n", {1, 2}}}));
    expect_round_trip(p);

    const auto minimal =
        json::parse(R"({"processId": null, "capabilities": {}})").get<InitializeParams>();
    EXPECT_FALSE(minimal.processId);
    EXPECT_TRUE(minimal.initializationOptions.is_null());

    expect_rejected<InitializeParams>(json{{"processId", 1}}, "capabilities");
    expect_rejected<InitializeParams>(json{{"processId", "1"}, {"capabilities", json::object()}},
                                      "processId");
    expect_rejected<InitializeParams>(
        json{{"capabilities", {{"general", {{"positionEncodings", "utf-8"}}}}}},
        "capabilities.general.positionEncodings");
}

TEST(Protocol, InitializeResultAndCapabilities) {
    InitializeResult r;
    r.capabilities.positionEncoding = "utf-16";
    r.capabilities.textDocumentSync =
        TextDocumentSyncOptions{true, TextDocumentSyncKind::Incremental};
    r.capabilities.inlineCompletionProvider = true;
    r.capabilities.executeCommandProvider = ExecuteCommandOptions{{"latent.explain"}};
    r.capabilities.experimental = json{{"latentChat", true}};
    r.serverInfo = ServerInfo{"latent", "0.1.0"};
    expect_round_trip(r);
    const json j = r;
    EXPECT_EQ(j["capabilities"]["textDocumentSync"]["change"], 2);
    EXPECT_EQ(j["capabilities"]["inlineCompletionProvider"], true);
    expect_round_trip(InitializeResult{});
    EXPECT_EQ(json(InitializeResult{}), (json{{"capabilities", json::object()}}));
    expect_rejected<TextDocumentSyncOptions>(json{{"change", 3}}, "change");
}

TEST(Protocol, InlineCompletion) {
    InlineCompletionParams p;
    p.textDocument = {"file:///a.py"};
    p.position = {10, 4};
    p.context.triggerKind = InlineCompletionTriggerKind::Invoked;
    p.context.selectedCompletionInfo = SelectedCompletionInfo{Range{{10, 0}, {10, 4}}, "prin"};
    p.workDoneToken = ProgressToken("t1");
    expect_round_trip(p);
    EXPECT_EQ(json(p)["context"]["triggerKind"], 1);

    InlineCompletionList list;
    list.items.push_back({"t(x)", std::nullopt, Range{{10, 4}, {10, 4}}, std::nullopt});
    list.items.push_back(
        {"other", "o", std::nullopt, Command{"Accept", "latent.accepted", json::array({1})}});
    expect_round_trip(list);

    expect_rejected<InlineCompletionContext>(json{{"triggerKind", 3}}, "triggerKind");
    expect_rejected<InlineCompletionItem>(
        json{{"insertText", {{"kind", "snippet"}, {"value", "x"}}}}, "insertText");
    expect_rejected<InlineCompletionParams>(
        json{{"textDocument", {{"uri", "u"}}}, {"position", {{"line", 0}, {"character", 0}}}},
        "context");
}

TEST(Protocol, WorkspaceEditAndServerRequests) {
    WorkspaceEdit edit;
    edit.changes["file:///a"] = {TextEdit{Range{{0, 0}, {0, 1}}, "x"},
                                 TextEdit{Range{{2, 0}, {3, 0}}, ""}};
    edit.changes["file:///b"] = {};
    expect_round_trip(edit);
    expect_round_trip(ApplyWorkspaceEditParams{"Fix", edit});
    expect_round_trip(ApplyWorkspaceEditResult{false, "user declined"});
    expect_round_trip(RegistrationParams{
        {Registration{"1", "workspace/didChangeConfiguration", json{{"section", "latent"}}}}});
    expect_rejected<WorkspaceEdit>(json{{"changes", {{"file:///a", {{{"newText", "x"}}}}}}},
                                   "range");
    expect_rejected<ApplyWorkspaceEditResult>(json{{"applied", "yes"}}, "applied");
}

TEST(Protocol, ProgressValuesAndTokens) {
    expect_round_trip(ProgressParams{ProgressToken(5), json{{"kind", "end"}}});
    expect_round_trip(ProgressParams{ProgressToken("abc"), json::array({1, 2})});
    EXPECT_EQ(json(ProgressToken(5)), json(5));
    EXPECT_EQ(json(ProgressToken("5")), json("5"));
    EXPECT_EQ(json(5).get<ProgressToken>(), ProgressToken(5));
    EXPECT_NE(json("5").get<ProgressToken>(), ProgressToken(5));

    expect_round_trip(WorkDoneProgressBegin{"Indexing", true, "3/10 files", 30});
    expect_round_trip(WorkDoneProgressReport{false, "7/10", 70});
    expect_round_trip(WorkDoneProgressEnd{"done"});
    expect_round_trip(WorkDoneProgressCreateParams{ProgressToken("x")});
    EXPECT_EQ(json(WorkDoneProgressBegin{"T", std::nullopt, std::nullopt, std::nullopt}),
              (json{{"kind", "begin"}, {"title", "T"}}));
    EXPECT_EQ(json(WorkDoneProgressEnd{}), (json{{"kind", "end"}}));

    expect_rejected<WorkDoneProgressBegin>(json{{"kind", "report"}, {"title", "T"}}, "kind");
    expect_rejected<WorkDoneProgressReport>(json{{"kind", "report"}, {"percentage", 101}},
                                            "percentage");
    expect_rejected<ProgressParams>(json{{"token", 1.5}, {"value", 1}}, "token");
    expect_rejected<ProgressParams>(json{{"token", 1}}, "value");
}

TEST(Protocol, CancelParams) {
    expect_round_trip(CancelParams{IntOrString(3)});
    expect_round_trip(CancelParams{IntOrString(0)});
    expect_round_trip(CancelParams{IntOrString("r-3")});
    expect_rejected<CancelParams>(json{{"id", nullptr}}, "id");
    expect_rejected<CancelParams>(json::object(), "id");
}

}  // namespace
}  // namespace latent::lsp
