// PromptLibrary: built-ins, workspace prompt files (front matter, overrides, the first
// folder winning), skipped files (malformed, too big, past the cap, symlinked out), reload
// on change, and rendering.
#include "agent/prompt_library.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "agent/workspaces.h"
#include "tests/index/temp_workspace.h"

namespace latent::agent {
namespace {

using index::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

std::vector<std::string> names(const std::vector<PromptInfo>& ps) {
    std::vector<std::string> out;
    for (const auto& p : ps) out.push_back(p.name + (p.workspace ? "*" : ""));
    return out;
}

TEST(PromptLibrary, BuiltinsAreListedInNameOrder) {
    PromptLibrary lib;
    const auto all = lib.list();
    EXPECT_THAT(names(all), ElementsAre("docs", "explain", "fix", "refactor", "review", "tests"));
    const auto explain = lib.find("explain");
    ASSERT_TRUE(explain);
    EXPECT_FALSE(explain->workspace);
    EXPECT_THAT(explain->context, ElementsAre(PromptContext::kSelection, PromptContext::kFile));
    PromptInputs in;
    in.selection = "int f() { return 1; }";
    in.path = "src/f.cpp";
    in.language = "cpp";
    in.input = "why 1?";
    auto r = lib.render("explain", in);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_THAT(*r, HasSubstr("From src/f.cpp:\n\n```cpp\nint f() { return 1; }\n```"));
    EXPECT_THAT(*r, HasSubstr("why 1?"));
    in.diff = "+new line";
    EXPECT_THAT(*lib.render("review", in), HasSubstr("```diff\n+new line\n```"));
    EXPECT_FALSE(lib.render("nope", in));
}

TEST(PromptLibrary, ParsesFrontMatter) {
    std::string body;
    auto p = parse_prompt_file(
        "---\nname: my-prompt\ndescription: \"One line\"\ncontext: [selection, codebase, bogus]\n"
        "---\n\nDo {{input}}.\n",
        "file", &body);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->name, "my-prompt");
    EXPECT_EQ(p->description, "One line");
    EXPECT_THAT(p->context, ElementsAre(PromptContext::kSelection, PromptContext::kCodebase));
    EXPECT_EQ(body, "Do {{input}}.\n");
    // The name from the file, CRLF lines, "context: a, b".
    p = parse_prompt_file("---\r\ncontext: file, selection, file\r\n---\r\nBody\r\n", "Stem_1",
                          &body);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->name, "stem_1");
    EXPECT_THAT(p->context, ElementsAre(PromptContext::kFile, PromptContext::kSelection));
    for (const char* bad : {"no front matter\n", "---\nname: x\n", "---\nname: Bad Name\n---\nb\n",
                            "---\nname: x\n---\n\n  \n", "---\njust words\n---\nb\n"})
        EXPECT_FALSE(parse_prompt_file(bad, "ok", &body)) << bad;
}

TEST(PromptLibrary, RendersPlaceholdersOnce) {
    PromptInputs in;
    in.input = "X";
    in.selection = "{{input}}";  // substituted text is not scanned again
    EXPECT_EQ(render_template("a {{ selection }} {{input}} {{unknown}} {{file", in),
              "a {{input}} X {{unknown}} {{file");
    // No {{input}}: what the user typed is appended.
    EXPECT_EQ(render_template("Summarize {{path}}.\n", in), "Summarize .\n\nX");
    in.input.clear();
    EXPECT_EQ(render_template("Summarize.\n", in), "Summarize.\n");
}

class PromptFolder : public ::testing::Test {
protected:
    void prompt(const TempDir& ws, const std::string& file, const std::string& text) {
        ws.write(".latent/prompts/" + file, text);
    }
    std::vector<std::string> logs_;
    PromptLibrary lib_{{[this](const std::string& l) { logs_.push_back(l); }}};
};

TEST_F(PromptFolder, WorkspacePromptsOverrideBuiltinsAndTheFirstFolderWins) {
    TempDir a, b;
    prompt(a, "explain.md",
           "---\ndescription: Ours\ncontext: [file]\n---\nOur explain: {{file}}\n");
    prompt(a, "team.md", "---\nname: team-style\ndescription: A\n---\nA {{input}}\n");
    prompt(b, "team.md", "---\nname: team-style\ndescription: B\n---\nB {{input}}\n");
    prompt(b, "other.md", "---\ndescription: Only in b\n---\nO\n");
    lib_.set_folders({a.path(), b.path()});
    EXPECT_THAT(names(lib_.list()), ElementsAre("docs", "explain*", "fix", "other*", "refactor",
                                                "review", "team-style*", "tests"));
    const auto explain = lib_.find("explain");
    ASSERT_TRUE(explain);
    EXPECT_EQ(explain->description, "Ours");
    EXPECT_EQ(explain->path, real_path(a / ".latent/prompts/explain.md"));
    PromptInputs in;
    in.file = "text";
    in.input = "go";
    EXPECT_EQ(*lib_.render("explain", in), "Our explain: text\n\ngo");
    EXPECT_EQ(*lib_.render("team-style", in), "A go\n");
    EXPECT_EQ(lib_.find("team-style")->description, "A");
}

TEST_F(PromptFolder, BadFilesAreSkippedWithALogLine) {
    TempDir ws, outside;
    prompt(ws, "good.md", "---\ndescription: fine\n---\nok\n");
    prompt(ws, "no-front.md", "just text\n");
    prompt(ws, "Bad Name.md", "---\ndescription: x\n---\nok\n");
    prompt(ws, "big.md", "---\ndescription: big\n---\n" + std::string(70 * 1024, 'x'));
    prompt(ws, "notes.txt", "---\ndescription: not md\n---\nok\n");
    outside.write("evil.md", "---\ndescription: from outside\n---\nsecret\n");
    fs::create_symlink(outside / "evil.md", ws / ".latent/prompts/evil.md");
    lib_.set_folders({ws.path()});
    EXPECT_THAT(names(lib_.list()),
                ElementsAre("docs", "explain", "fix", "good*", "refactor", "review", "tests"));
    EXPECT_EQ(logs_.size(), 4u);  // no-front, Bad Name, big, evil
    std::string all;
    for (const auto& l : logs_) all += l + "\n";
    EXPECT_THAT(all, HasSubstr("evil.md leads outside"));
    EXPECT_THAT(all, HasSubstr("big.md is over 65536 bytes"));
}

TEST_F(PromptFolder, APromptsFolderSymlinkedOutIsNotRead) {
    TempDir ws, outside;
    outside.write("prompts/evil.md", "---\ndescription: from outside\n---\nsecret\n");
    fs::create_directory_symlink(outside.path(), ws / ".latent");
    lib_.set_folders({ws.path()});
    EXPECT_THAT(names(lib_.list()),
                ElementsAre("docs", "explain", "fix", "refactor", "review", "tests"));
}

TEST_F(PromptFolder, AtMostAHundredFiles) {
    TempDir ws;
    for (int i = 0; i < 105; ++i) {
        char n[16];
        std::snprintf(n, sizeof n, "p%03d", i);
        prompt(ws, std::string(n) + ".md", "---\ndescription: d\n---\nb\n");
    }
    lib_.set_folders({ws.path()});
    const auto all = lib_.list();
    EXPECT_EQ(all.size(), 100u + 6u);
    EXPECT_TRUE(lib_.find("p099"));
    EXPECT_FALSE(lib_.find("p100"));
}

TEST_F(PromptFolder, ListReloadsWhatChanged) {
    TempDir ws;
    lib_.set_folders({ws.path()});
    EXPECT_EQ(lib_.list().size(), 6u);
    prompt(ws, "new.md", "---\ndescription: first\n---\nb\n");
    ASSERT_TRUE(lib_.find("new"));
    EXPECT_EQ(lib_.find("new")->description, "first");
    prompt(ws, "new.md", "---\ndescription: second, longer\n---\nb\n");
    EXPECT_EQ(lib_.find("new")->description, "second, longer");
    fs::remove(ws / ".latent/prompts/new.md");
    EXPECT_FALSE(lib_.find("new"));
}

}  // namespace
}  // namespace latent::agent
