// WorkspaceTools over a real indexed folder: what each tool answers, its caps, and
// containment — ".." and symlinks out are refused as answers the model can read, edits
// are proposed on top of each other and never written.
#include "agent/workspace_tools.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/index/temp_workspace.h"

namespace latent::agent {
namespace {

using index::testing::TempDir;
using nlohmann::json;
namespace fs = std::filesystem;
using Status = ToolOutcome::Status;

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct ToolsFixture : ::testing::Test {
    TempDir ws, outside, db;
    DocumentStore docs;
    std::unique_ptr<Workspaces> workspaces;

    void SetUp() override {
        ws.write(
            "src/config.py",
            "import os\n\n\ndef parse_config(path):\n    \"\"\"Reads the settings file.\"\"\"\n"
            "    with open(path) as f:\n        return dict(line.split('=') for line in f)\n");
        ws.write(
            "src/main.py",
            "from config import parse_config\n\n\ndef main():\n    cfg = parse_config('a.cfg')\n"
            "    print(cfg)\n");
        ws.write("docs/notes.txt", "nothing here\n");
        ws.write("crlf.py", "def f():\r\n    return 1\r\n");
        outside.write("secret.txt", "the secret\n");
        fs::create_directory_symlink(outside.path(), ws / "link");
        workspaces = std::make_unique<Workspaces>(WorkspacesOptions{});
        Settings s;
        s.index_db = db / "i.sqlite";
        workspaces->set_settings(s);
        workspaces->set_folders({path_to_uri(ws.path())});
        workspaces->start_indexing();
        auto ix = workspaces->index_for(real_path(ws.path()) + "/x");
        ASSERT_TRUE(ix);
        ix->block_until_idle_for_test();
    }
    ToolOutcome call(WorkspaceTools& t, const std::string& name, const json& args) {
        return t.call(name, args.dump());
    }
};

TEST_F(ToolsFixture, SearchDefinitionReferencesAndListFindTheCode) {
    WorkspaceTools t(*workspaces, docs);
    auto s = call(t, "search_code", {{"query", "parse config"}});
    EXPECT_EQ(s.status, Status::kDone);
    EXPECT_NE(s.result.find("src/config.py"), std::string::npos) << s.result;
    ASSERT_FALSE(s.sources.empty());

    auto d = call(t, "find_definition", {{"name", "parse_config"}});
    EXPECT_NE(d.result.find("src/config.py lines 4-7"), std::string::npos) << d.result;
    EXPECT_NE(d.result.find("return dict("), std::string::npos) << d.result;  // the body

    auto r = call(t, "find_references", {{"name", "parse_config"}});
    EXPECT_NE(r.result.find("src/main.py:5:     cfg = parse_config('a.cfg')"), std::string::npos)
        << r.result;

    auto l = call(t, "list_files", {{"glob", "src/**/*.py"}});
    EXPECT_NE(l.result.find("src/config.py\n"), std::string::npos) << l.result;
    EXPECT_NE(l.result.find("src/main.py\n"), std::string::npos);
    EXPECT_EQ(l.result.find("notes.txt"), std::string::npos);
    EXPECT_EQ(l.result.find("secret"), std::string::npos);

    EXPECT_NE(call(t, "find_definition", {{"name", "no_such_thing"}}).result.find("No definition"),
              std::string::npos);
}

TEST_F(ToolsFixture, ReadFileNumbersLinesAndCapsThem) {
    ToolLimits limits;
    limits.read_lines = 3;
    WorkspaceTools t(*workspaces, docs, limits);
    auto r = call(t, "read_file", {{"path", "src/config.py"}, {"start_line", 4}, {"end_line", 40}});
    EXPECT_EQ(r.status, Status::kDone);
    EXPECT_NE(r.result.find("4: def parse_config(path):\n5:"), std::string::npos) << r.result;
    EXPECT_EQ(r.result.find("7: "), std::string::npos) << "3 lines at most";
    EXPECT_NE(r.result.find("read_file with start_line 7"), std::string::npos);
    ASSERT_EQ(r.sources.size(), 1u);
    EXPECT_EQ(r.sources[0].range.start.line, 3u);
    EXPECT_EQ(r.sources[0].range.end.line, 6u);
    // An open document's text wins over the disk's.
    docs.open({path_to_uri(real_path(ws / "src/main.py")), "python", 1, "unsaved = 1\n"});
    EXPECT_NE(call(t, "read_file", {{"path", "src/main.py"}}).result.find("1: unsaved = 1"),
              std::string::npos);
}

TEST_F(ToolsFixture, PathsOutsideTheFoldersAreRefusedAsAnswers) {
    WorkspaceTools t(*workspaces, docs);
    const std::string name = fs::path(outside.path()).filename().string();
    const std::vector<std::string> hostile = {"../../etc/passwd",     "/etc/passwd",
                                              "link/secret.txt",      "../" + name + "/secret.txt",
                                              outside / "secret.txt", "src/../../x"};
    for (const std::string& p : hostile) {
        auto r = call(t, "read_file", {{"path", p}});
        EXPECT_EQ(r.status, Status::kRefused) << p;
        EXPECT_EQ(r.result.find("the secret"), std::string::npos) << p;
        EXPECT_NE(r.result.find("not a file inside a workspace folder"), std::string::npos)
            << r.result;
        auto e = call(t, "edit_file", {{"path", p}, {"old_text", "the"}, {"new_text", "a"}});
        EXPECT_EQ(e.status, Status::kRefused) << p;
        auto c = call(t, "create_file", {{"path", p + ".new"}, {"text", "x"}});
        EXPECT_EQ(c.status, Status::kRefused) << p;
    }
    EXPECT_EQ(call(t, "create_file", {{"path", "link/new.txt"}, {"text", "x"}}).status,
              Status::kRefused);
    EXPECT_EQ(call(t, "edit_file", {{"path", ".git/config"}, {"old_text", "a"}, {"new_text", "b"}})
                  .status,
              Status::kRefused);
    EXPECT_TRUE(t.proposal().empty());
    EXPECT_EQ(slurp(outside / "secret.txt"), "the secret\n");
}

TEST_F(ToolsFixture, EditsAreProposedOnTopOfEachOtherAndNeverWritten) {
    WorkspaceTools t(*workspaces, docs);
    const std::string before = slurp(ws / "src/config.py");
    // Not there, not unique: refused with a reason the model can act on.
    auto missing = call(t, "edit_file",
                        {{"path", "src/config.py"}, {"old_text", "def nope"}, {"new_text", "x"}});
    EXPECT_EQ(missing.status, Status::kRefused);
    EXPECT_NE(missing.result.find("does not occur"), std::string::npos);
    auto twice =
        call(t, "edit_file", {{"path", "src/config.py"}, {"old_text", "path"}, {"new_text", "p"}});
    EXPECT_EQ(twice.status, Status::kRefused);
    EXPECT_NE(twice.result.find("occurs 2 times"), std::string::npos) << twice.result;

    auto e1 = call(t, "edit_file",
                   {{"path", "src/config.py"},
                    {"old_text", "def parse_config(path):"},
                    {"new_text", "def load_config(path):"}});
    EXPECT_EQ(e1.status, Status::kDone) << e1.result;
    // The second edit sees the first.
    EXPECT_NE(call(t, "read_file", {{"path", "src/config.py"}}).result.find("4: def load_config"),
              std::string::npos);
    auto e2 = call(t, "edit_file",
                   {{"path", "src/config.py"},
                    {"old_text", "def load_config(path):"},
                    {"new_text", "def load_config(path, strict=False):"}});
    EXPECT_EQ(e2.status, Status::kDone);
    auto c =
        call(t, "create_file", {{"path", "tests/new/test_config.py"}, {"text", "import config\n"}});
    EXPECT_EQ(c.status, Status::kDone) << c.result;
    EXPECT_EQ(call(t, "create_file", {{"path", "src/main.py"}, {"text", "x"}}).status,
              Status::kRefused);
    // CRLF files are matched with the model's LF quote and keep their line ends.
    auto crlf = call(t, "edit_file",
                     {{"path", "crlf.py"},
                      {"old_text", "def f():\n    return 1"},
                      {"new_text", "def f():\n    return 2"}});
    EXPECT_EQ(crlf.status, Status::kDone) << crlf.result;

    const auto files = t.proposal().files();
    ASSERT_EQ(files.size(), 3u);
    EXPECT_EQ(files[0].path, "src/config.py");
    EXPECT_FALSE(files[0].created);
    EXPECT_EQ(files[0].old_text, before);
    EXPECT_NE(files[0].new_text.find("def load_config(path, strict=False):"), std::string::npos);
    EXPECT_EQ(files[1].path, "tests/new/test_config.py");
    EXPECT_TRUE(files[1].created);
    EXPECT_EQ(files[2].new_text, "def f():\r\n    return 2\r\n");
    // Nothing was written.
    EXPECT_EQ(slurp(ws / "src/config.py"), before);
    EXPECT_FALSE(fs::exists(ws / "tests"));
}

TEST_F(ToolsFixture, BadCallsAreAnsweredNotThrown) {
    ToolLimits limits;
    limits.edit_bytes = 16;
    limits.result_bytes = 64;
    WorkspaceTools t(*workspaces, docs, limits);
    EXPECT_EQ(t.call("read_file", "{not json").status, Status::kRefused);
    EXPECT_EQ(t.call("read_file", "[1,2]").status, Status::kRefused);
    EXPECT_EQ(t.call("rm_rf", "{}").status, Status::kRefused);
    EXPECT_EQ(t.call("read_file", R"({"path": 3})").status, Status::kRefused);
    EXPECT_EQ(call(t, "edit_file",
                   {{"path", "src/main.py"}, {"old_text", std::string(17, 'x')}, {"new_text", ""}})
                  .status,
              Status::kRefused);
    // Answers are capped.
    auto r = call(t, "read_file", {{"path", "src/config.py"}});
    EXPECT_LE(r.result.size(), 64u + 80u);
    EXPECT_NE(r.result.find("(cut:"), std::string::npos);
    // Every tool the model is told about exists.
    for (const auto& d : WorkspaceTools::definitions()) {
        const std::string name = d["function"]["name"];
        auto out = t.call(name, "{}");
        EXPECT_EQ(out.result.find("There is no tool"), std::string::npos) << name;
    }
}

}  // namespace
}  // namespace latent::agent
