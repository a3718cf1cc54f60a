// Index-driven next edits: renames at a definition and parameter-list changes followed
// to the uses, per language, over an in-memory workspace whose "index" answers as the
// real one does (files holding a name), with the edits typed keystroke by keystroke into
// an EditHistory.
#include "agent/next_edit_index.h"

#include <gtest/gtest.h>

#include <map>

namespace latent::agent {
namespace {

struct Workspace {
    std::map<std::string, std::string> files;  // path -> current text
    EditHistory history;
    int64_t now = 1000;
    std::vector<std::string> stale_users;  // what the "index" answers besides the token search

    static std::string uri(const std::string& path) { return "file://" + path; }

    // Replaces [a, b) of `path` by `s`, keystroke by keystroke (each 100 ms apart): a
    // deletion of the selection, then each character typed.
    void type_over(const std::string& path, size_t a, size_t b, const std::string& s) {
        std::string& t = files.at(path);
        if (b > a) {
            now += 100;
            const std::string removed = t.substr(a, b - a);
            t.erase(a, b - a);
            history.record(uri(path), t, a, removed, a, now);
        }
        for (size_t i = 0; i < s.size(); ++i) {
            now += 100;
            t.insert(a + i, 1, s[i]);
            history.record(uri(path), t, a + i, "", a + i + 1, now);
        }
    }
    // Replaces the `nth` occurrence of `what` in `path` by `s`.
    void replace(const std::string& path, const std::string& what, const std::string& s,
                 int nth = 0) {
        size_t at = files.at(path).find(what);
        for (int i = 0; i < nth; ++i) at = files.at(path).find(what, at + 1);
        ASSERT_NE(at, std::string::npos) << what;
        type_over(path, at, at + what.size(), s);
    }

    NextEditSources sources() {
        NextEditSources s;
        s.resolve = [](const std::string& u) {
            return u.rfind("file://", 0) == 0 ? u.substr(7) : "";
        };
        s.read = [this](const std::string& p) -> std::optional<std::string> {
            auto it = files.find(p);
            if (it == files.end()) return std::nullopt;
            return it->second;
        };
        s.files_using = [this](std::string_view name, size_t) {
            std::vector<std::string> out = stale_users;
            for (const auto& [p, t] : files)
                if (t.find(name) != std::string::npos) out.push_back(p);
            return out;
        };
        return s;
    }

    std::optional<IndexNextEdits> suggest(const std::string& path, size_t offset = 0) {
        return index_next_edits(history.hunks(), {path, offset}, now, sources());
    }

    // Applies every suggestion (last first, per file, so earlier offsets stay right).
    void apply(const IndexNextEdits& s) {
        auto edits = s.edits;
        std::sort(edits.begin(), edits.end(),
                  [](const SuggestedEdit& a, const SuggestedEdit& b) { return a.start > b.start; });
        for (const auto& e : edits) {
            std::string& t = files.at(e.path);
            ASSERT_EQ(t.substr(e.start, e.end - e.start), e.old_text);
            t.replace(e.start, e.end - e.start, e.new_text);
        }
    }
};

std::vector<std::pair<std::string, uint32_t>> places(const IndexNextEdits& s) {
    std::vector<std::pair<std::string, uint32_t>> out;
    for (const auto& e : s.edits) out.push_back({e.path, e.line});
    return out;
}

TEST(NextEditIndex, ARenamedCFunctionIsFollowedToItsCallsInEveryFile) {
    Workspace w;
    w.files["/w/util.c"] = "int count_items(int *xs, int n) {\n  return n;\n}\n";
    w.files["/w/util.h"] = "int count_items(int *xs, int n);\n";
    w.files["/w/main.c"] =
        "#include \"util.h\"\nint main(void) {\n  int a[3];\n  return count_items(a, 3) + "
        "count_items(a, 1);\n}\n/* count_itemsX is another name */\n";
    w.replace("/w/util.c", "count_items", "tally");
    auto s = w.suggest("/w/util.c");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->kind, "rename");
    EXPECT_EQ(s->old_name, "count_items");
    EXPECT_EQ(s->new_name, "tally");
    EXPECT_EQ(s->label, "Rename count_items → tally");
    // main.c twice (line 3), util.h once; never the longer name in the comment.
    const std::vector<std::pair<std::string, uint32_t>> want{
        {"/w/main.c", 3}, {"/w/main.c", 3}, {"/w/util.h", 0}};
    EXPECT_EQ(places(*s), want);
    w.apply(*s);
    EXPECT_EQ(w.files["/w/main.c"].find("count_items("), std::string::npos);
    EXPECT_NE(w.files["/w/main.c"].find("count_itemsX"), std::string::npos);
    // All done: nothing is left to suggest.
    EXPECT_FALSE(w.suggest("/w/util.c"));
}

TEST(NextEditIndex, TheCursorsDocumentComesFirstFromTheCursorDown) {
    Workspace w;
    w.files["/w/a.py"] =
        "def helper(x):\n    return x\n\nprint(helper(1))\n\n\ndef g():\n    return helper(2)\n";
    w.files["/w/b.py"] = "from a import helper\nhelper(3)\n";
    w.replace("/w/a.py", "helper", "assist");
    const size_t cursor = w.files["/w/a.py"].find("def g");
    auto s = w.suggest("/w/a.py", cursor);
    ASSERT_TRUE(s);
    const std::vector<std::pair<std::string, uint32_t>> want{
        {"/w/a.py", 7}, {"/w/a.py", 3}, {"/w/b.py", 0}, {"/w/b.py", 1}};
    EXPECT_EQ(places(*s), want);
    for (const auto& e : s->edits) EXPECT_EQ(e.new_text, "assist");
}

TEST(NextEditIndex, ACppMethodAndATypeScriptClassAndAGoFunctionAreFollowed) {
    {
        Workspace w;
        w.files["/w/s.hpp"] =
            "struct Stack {\n  int depth() const { return n; }\n  int n = 0;\n};\n";
        w.files["/w/m.cpp"] = "#include \"s.hpp\"\nint f(Stack& s) { return s.depth() + 1; }\n";
        w.replace("/w/s.hpp", "depth", "size");
        auto s = w.suggest("/w/s.hpp");
        ASSERT_TRUE(s);
        ASSERT_EQ(s->edits.size(), 1u);
        EXPECT_EQ(s->edits[0].path, "/w/m.cpp");
    }
    {
        Workspace w;
        w.files["/w/shape.ts"] = "export class Shape {\n  area(): number { return 0; }\n}\n";
        w.files["/w/use.ts"] = "import { Shape } from './shape';\nconst s: Shape = new Shape();\n";
        w.replace("/w/shape.ts", "Shape", "Figure");
        auto s = w.suggest("/w/shape.ts");
        ASSERT_TRUE(s);
        EXPECT_EQ(s->edits.size(), 3u);
        w.apply(*s);
        EXPECT_EQ(w.files["/w/use.ts"],
                  "import { Figure } from './shape';\nconst s: Figure = new Figure();\n");
    }
    {
        Workspace w;
        w.files["/w/a.go"] = "package a\n\nfunc Parse(s string) int {\n\treturn 0\n}\n";
        w.files["/w/b.go"] = "package a\n\nfunc use() int { return Parse(\"x\") }\n";
        w.replace("/w/a.go", "Parse", "ParseInt");
        auto s = w.suggest("/w/a.go");
        ASSERT_TRUE(s);
        ASSERT_EQ(s->edits.size(), 1u);
        EXPECT_EQ(s->edits[0].path, "/w/b.go");
        EXPECT_EQ(s->edits[0].old_text, "Parse");
    }
}

TEST(NextEditIndex, AParameterRenamedAtItsDeclarationStaysInItsFunction) {
    Workspace w;
    w.files["/w/a.py"] =
        "def f(count):\n    total = count * 2\n    return total + count\n\n"
        "def g(count):\n    return count\n";
    w.replace("/w/a.py", "count", "n");
    auto s = w.suggest("/w/a.py");
    ASSERT_TRUE(s);
    const std::vector<std::pair<std::string, uint32_t>> want{{"/w/a.py", 1}, {"/w/a.py", 2}};
    EXPECT_EQ(places(*s), want);
}

TEST(NextEditIndex, APythonParameterRenamedIsRenamedWhereCallsPassItByKeyword) {
    Workspace w;
    w.files["/w/a.py"] =
        "def f(count, step=1):\n    return count * step\n\nf(count=2)\ng(count=3)\n";
    w.files["/w/b.py"] = "from a import f\nf(1, step=2)\nf(step=2, count=4)\n";
    w.replace("/w/a.py", "count", "n");
    auto s = w.suggest("/w/a.py");
    ASSERT_TRUE(s);
    w.apply(*s);
    EXPECT_EQ(w.files["/w/a.py"], "def f(n, step=1):\n    return n * step\n\nf(n=2)\ng(count=3)\n");
    EXPECT_EQ(w.files["/w/b.py"], "from a import f\nf(1, step=2)\nf(step=2, n=4)\n");
}

TEST(NextEditIndex, AUseChangedToAnotherNameIsNotARename) {
    Workspace w;
    w.files["/w/a.c"] = "int f(int a, int b) {\n  int x = a;\n  return x + a;\n}\n";
    // The second `a` (a use, not the declaration) becomes `b`: the user meant b there.
    w.replace("/w/a.c", "a;", "b;");
    EXPECT_FALSE(w.suggest("/w/a.c"));
    // A call's argument changed: not a definition either.
    Workspace v;
    v.files["/w/a.py"] = "def f(x):\n    return x\n\nf(one)\nf(two)\nf(one)\n";
    v.replace("/w/a.py", "one", "three");
    EXPECT_FALSE(v.suggest("/w/a.py"));
}

TEST(NextEditIndex, AFieldRenamedInItsStructOrInitIsFollowedEverywhere) {
    {
        Workspace w;
        w.files["/w/p.h"] = "struct point {\n  int xcoord;\n  int y;\n};\n";
        w.files["/w/p.c"] = "#include \"p.h\"\nint f(struct point *p) { return p->xcoord; }\n";
        w.replace("/w/p.h", "xcoord", "x");
        auto s = w.suggest("/w/p.h");
        ASSERT_TRUE(s);
        ASSERT_EQ(s->edits.size(), 1u);
        EXPECT_EQ(s->edits[0].path, "/w/p.c");
    }
    {
        Workspace w;
        w.files["/w/c.py"] =
            "class C:\n    def __init__(self):\n        self.items = []\n\n"
            "    def add(self, x):\n        self.items.append(x)\n";
        w.files["/w/u.py"] = "def n(c):\n    return len(c.items)\n";
        w.replace("/w/c.py", "items", "elements");
        auto s = w.suggest("/w/c.py");
        ASSERT_TRUE(s);
        const std::vector<std::pair<std::string, uint32_t>> want{{"/w/c.py", 5}, {"/w/u.py", 1}};
        EXPECT_EQ(places(*s), want);
    }
}

TEST(NextEditIndex, FilesThatDefineTheOldNameThemselvesAreLeftAlone) {
    Workspace w;
    w.files["/w/a.py"] = "def run():\n    pass\n";
    w.files["/w/b.py"] = "def run():\n    pass\n\nrun()\n";
    w.files["/w/c.py"] = "from a import run\nrun()\n";
    w.replace("/w/a.py", "run", "start");
    auto src = w.sources();
    src.defined_in = [](std::string_view name) {
        return name == "run" ? std::vector<std::string>{"/w/a.py", "/w/b.py"}
                             : std::vector<std::string>{};
    };
    auto s = index_next_edits(w.history.hunks(), {"/w/a.py", 0}, w.now, src);
    ASSERT_TRUE(s);
    for (const auto& e : s->edits) EXPECT_EQ(e.path, "/w/c.py");
    EXPECT_EQ(s->edits.size(), 2u);
}

TEST(NextEditIndex, AStaleIndexNeverGivesAnEditAtTheWrongBytes) {
    Workspace w;
    w.files["/w/a.ts"] = "export function load() {}\n";
    w.files["/w/gone.ts"] = "nothing here\n";
    w.stale_users = {"/w/gone.ts", "/w/missing.ts"};  // the index still lists them
    w.files["/w/b.ts"] = "import { load } from './a';\nload();\n";
    w.replace("/w/a.ts", "load", "fetchAll");
    auto s = w.suggest("/w/a.ts");
    ASSERT_TRUE(s);
    for (const auto& e : s->edits) {
        EXPECT_EQ(e.path, "/w/b.ts");
        EXPECT_EQ(w.files[e.path].substr(e.start, e.end - e.start), "load");
    }
}

TEST(NextEditIndex, AcceptingSuggestionsOneByOneKeepsTheRenameGoing) {
    Workspace w;
    w.files["/w/a.c"] =
        "int area(int w) { return w; }\nint g(void) { return area(1) + area(2); }\n";
    w.replace("/w/a.c", "area", "surface");
    auto s = w.suggest("/w/a.c");
    ASSERT_TRUE(s);
    ASSERT_EQ(s->edits.size(), 2u);
    // The user takes the first: a new hunk at a use, area -> surface.
    const auto e = s->edits[0];
    w.type_over(e.path, e.start, e.end, e.new_text);
    s = w.suggest("/w/a.c", e.start);
    ASSERT_TRUE(s);
    ASSERT_EQ(s->edits.size(), 1u);
    EXPECT_EQ(s->label, "Rename area → surface");
}

TEST(NextEditIndex, AnOldChangeIsNotFollowed) {
    Workspace w;
    w.files["/w/a.c"] = "int area(int w) { return w; }\nint g(void) { return area(1); }\n";
    w.replace("/w/a.c", "area", "surface");
    w.now += 121'000;
    EXPECT_FALSE(w.suggest("/w/a.c"));
}

TEST(NextEditIndex, ARemovedParameterRemovesTheArgumentAtEachCall) {
    Workspace w;
    w.files["/w/a.py"] = "def scale(x, factor, clamp):\n    return x * factor\n";
    w.files["/w/b.py"] =
        "from a import scale\ny = scale(1, 2, True)\nz = scale(g(1, 2), 3, False)\n"
        "w = scale(1, 2)\nv = scale(1, factor=2, clamp=3)\n";
    w.replace("/w/a.py", ", clamp", "");
    auto s = w.suggest("/w/a.py");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->kind, "signature");
    EXPECT_EQ(s->label, "Update calls to scale(…): remove an argument");
    w.apply(*s);
    // Calls with two arguments already are not touched; the removed parameter passed by
    // keyword goes wherever it is.
    EXPECT_EQ(w.files["/w/b.py"],
              "from a import scale\ny = scale(1, 2)\nz = scale(g(1, 2), 3)\n"
              "w = scale(1, 2)\nv = scale(1, factor=2)\n");
    EXPECT_FALSE(w.suggest("/w/a.py"));
}

TEST(NextEditIndex, AnAddedOrMovedParameterChangesTheCallsInCAndTypeScript) {
    {
        Workspace w;
        w.files["/w/a.c"] = "int mix(int a, int b) { return a + b; }\n";
        w.files["/w/b.c"] = "int mix(int a, int b);\nint f(void) { return mix(1, 2); }\n";
        w.replace("/w/a.c", "int a, int b", "int a, int weight, int b");
        auto s = w.suggest("/w/a.c");
        ASSERT_TRUE(s);
        EXPECT_EQ(s->label, "Update calls to mix(…): add an argument");
        w.apply(*s);
        EXPECT_EQ(
            w.files["/w/b.c"],
            "int mix(int a, int weight, int b);\nint f(void) { return mix(1, weight, 2); }\n");
    }
    {
        Workspace w;
        w.files["/w/a.ts"] =
            "export function span(from: number, to: number) { return to - from; }\n";
        w.files["/w/b.ts"] = "import { span } from './a';\nspan(1, f(2, 3));\n";
        w.replace("/w/a.ts", "from: number, to: number", "to: number, from: number");
        auto s = w.suggest("/w/a.ts");
        ASSERT_TRUE(s);
        EXPECT_EQ(s->label, "Update calls to span(…): reorder the arguments");
        w.apply(*s);
        EXPECT_EQ(w.files["/w/b.ts"], "import { span } from './a';\nspan(f(2, 3), 1);\n");
    }
}

TEST(NextEditIndex, ATypeChangeOrAParameterRenameAsksNothingOfCallers) {
    Workspace w;
    w.files["/w/a.c"] =
        "int mix(int a, int b) { return a + b; }\nint g(void) { return mix(1, 2); }\n";
    w.replace("/w/a.c", "int b)", "long b)");
    EXPECT_FALSE(w.suggest("/w/a.c"));
    Workspace v;
    v.files["/w/a.py"] = "def f(a, b=1):\n    return a\n\nf(1, 2)\n";
    v.replace("/w/a.py", "b=1", "b=1, c=2");  // a defaulted parameter added
    EXPECT_FALSE(v.suggest("/w/a.py"));
}

TEST(NextEditIndex, CallsInConditionsAndListsWithATrailingCommaAreFollowed) {
    Workspace w;
    w.files["/w/a.py"] = "def check(a, b):\n    return a\n\nif check(1, 2):\n    pass\n";
    w.replace("/w/a.py", ", b", "");
    auto s = w.suggest("/w/a.py");
    ASSERT_TRUE(s);
    w.apply(*s);
    EXPECT_EQ(w.files["/w/a.py"], "def check(a):\n    return a\n\nif check(1):\n    pass\n");
    Workspace v;
    v.files["/w/a.ts"] =
        "export function put(key: string, value: number,) {}\nput('a', 1,);\nput('b', 2);\n";
    v.replace("/w/a.ts", ", value: number", "");
    s = v.suggest("/w/a.ts");
    ASSERT_TRUE(s);
    ASSERT_EQ(s->edits.size(), 2u);
    v.apply(*s);
    EXPECT_EQ(v.files["/w/a.ts"], "export function put(key: string,) {}\nput('a',);\nput('b');\n");
}

TEST(NextEditIndex, DeclarationsAfterTheirUsesOrBehindACommentAreRenames) {
    {  // a C++ member declared at the bottom of its class
        Workspace w;
        w.files["/w/c.hpp"] =
            "class color {\n public:\n  color() : is_rgb(true) {}\n  bool rgb() const { return "
            "is_rgb; }\n private:\n  bool is_rgb;\n};\n";
        w.replace("/w/c.hpp", "is_rgb;\n}", "rgb_;\n}");
        auto s = w.suggest("/w/c.hpp");
        ASSERT_TRUE(s);
        EXPECT_EQ(s->edits.size(), 2u);
    }
    {  // a TypeScript type alias used above it, an optional property
        Workspace w;
        w.files["/w/t.ts"] =
            "export function f(v: Ref): Ref { return v; }\nexport type Ref = string;\n"
            "interface Opts {\n  clientId?: string;\n}\nfunction g(o: Opts) { return o.clientId; "
            "}\n";
        w.replace("/w/t.ts", "type Ref", "type Reference");
        auto s = w.suggest("/w/t.ts");
        ASSERT_TRUE(s);
        EXPECT_EQ(s->edits.size(), 2u);
        Workspace v;
        v.files = w.files;
        v.replace("/w/t.ts", "clientId?", "id?");
        s = v.suggest("/w/t.ts");
        ASSERT_TRUE(s);
        ASSERT_EQ(s->edits.size(), 1u);
        EXPECT_EQ(s->edits[0].line, 5u);
    }
    {  // a C static named in a comment before it; an enumerator; a using alias
        Workspace w;
        w.files["/w/q.c"] =
            "/* NONE marks an empty slot */\nstatic const int NONE = 0;\nint f(void) { return "
            "NONE; }\n"
            "enum kind {\n  KIND_A,\n  KIND_B\n};\nint g(void) { return KIND_B; }\n";
        w.replace("/w/q.c", "NONE =", "EMPTY =");
        auto s = w.suggest("/w/q.c");
        ASSERT_TRUE(s);
        ASSERT_EQ(s->edits.size(), 2u);  // the comment's too
        Workspace v;
        v.files = w.files;
        v.replace("/w/q.c", "KIND_B\n}", "KIND_C\n}");
        s = v.suggest("/w/q.c");
        ASSERT_TRUE(s);
        ASSERT_EQ(s->edits.size(), 1u);
        Workspace u;
        u.files["/w/u.hpp"] = "using memory_buffer = int;\nmemory_buffer b;\n";
        u.replace("/w/u.hpp", "memory_buffer =", "membuf =");
        s = u.suggest("/w/u.hpp");
        ASSERT_TRUE(s);
        EXPECT_EQ(s->edits.size(), 1u);
    }
}

TEST(NextEditIndex, APythonFieldRenameLeavesAParameterOfTheSameNameAlone) {
    Workspace w;
    w.files["/w/cart.py"] =
        "class Line:\n    quantity: int\n\n    def total(self):\n        return self.quantity\n\n"
        "def add(sku, quantity):\n    return Line(sku, quantity)\n";
    w.replace("/w/cart.py", "quantity: int", "count: int");
    auto s = w.suggest("/w/cart.py");
    ASSERT_TRUE(s);
    ASSERT_EQ(s->edits.size(), 1u);
    EXPECT_EQ(s->edits[0].line, 4u);
}

}  // namespace
}  // namespace latent::agent
