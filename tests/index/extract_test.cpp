// Extraction per language on small real snippets: exact definitions (kind, name,
// container, line), docs, references, imports and chunks.
#include "index/extract.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

namespace latent::index {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// "kind name @container :line" (1-based line of the name).
std::vector<std::string> defs(const Extraction& x) {
    std::vector<std::string> out;
    for (const auto& d : x.definitions)
        out.push_back(d.kind + " " + d.name + (d.container.empty() ? "" : " @" + d.container) +
                      " :" + std::to_string(d.name_range.start.line + 1));
    return out;
}

std::vector<std::string> imports(const Extraction& x) {
    std::vector<std::string> out;
    for (const auto& i : x.imports) out.push_back(i.text);
    return out;
}

const Definition* find(const Extraction& x, const std::string& name) {
    for (const auto& d : x.definitions)
        if (d.name == name) return &d;
    return nullptr;
}

bool has_ref(const Extraction& x, const std::string& name, uint32_t line) {
    for (const auto& r : x.references)
        if (r.name == name && r.position.line + 1 == line) return true;
    return false;
}

// Chunks cover the file in order without overlap.
void expect_chunks_ordered(const Extraction& x, std::string_view text) {
    uint32_t last = 0;
    for (const auto& c : x.chunks) {
        EXPECT_GE(c.range.start_byte, last);
        EXPECT_GT(c.range.end_byte, c.range.start_byte);
        EXPECT_LE(c.range.end_byte, text.size());
        last = c.range.end_byte;
    }
}

// Everything extracted, one line per item, for comparing two extractions.
std::vector<std::string> dump(const Extraction& x) {
    auto range = [](const Range& r) {
        return std::to_string(r.start.line) + ":" + std::to_string(r.start.column) + "-" +
               std::to_string(r.end.line) + ":" + std::to_string(r.end.column) + " [" +
               std::to_string(r.start_byte) + "," + std::to_string(r.end_byte) + ")";
    };
    std::vector<std::string> out;
    for (const auto& d : x.definitions)
        out.push_back("def " + d.kind + " " + d.name + " @" + d.container + " " + range(d.range) +
                      " " + range(d.name_range) + " |" + d.signature + "| " + d.doc);
    for (const auto& r : x.references)
        out.push_back("ref " + r.name + " " + std::to_string(r.byte));
    for (const auto& c : x.chunks) out.push_back("chunk " + c.kind + " " + c.name + range(c.range));
    for (const auto& i : x.imports) out.push_back("import " + i.text);
    return out;
}

// Every snippet also goes through the whole-tree tags query (the plain form of the
// targeted one), which must give the same extraction.
Extraction run(std::string_view lang, std::string_view text, ExtractOptions o = {}) {
    Extractor e(o);
    const Language* l = language_named(lang);
    EXPECT_NE(l, nullptr);
    Extraction x = e.extract(*l, text);
    expect_chunks_ordered(x, text);
    ExtractOptions whole = o;
    whole.whole_tree_query = true;
    Extractor plain(whole);
    EXPECT_EQ(dump(plain.extract(*l, text)), dump(x)) << lang;
    return x;
}

TEST(Languages, EveryRowHasACompatibleGrammarAndAQueryThatCompiles) {
    EXPECT_EQ(check_languages(), "");
    EXPECT_EQ(languages().size(), 9u);
}

TEST(Languages, EveryTagsQueryRunsOnlyWhereItsPatternsStart) {
    // A grammar or query upgrade whose patterns the root reader cannot follow would
    // silently double the extraction time; it fails here instead.
    for (const auto& lang : languages()) EXPECT_TRUE(targeted_query(lang)) << lang.name;
}

// The targeted query against the whole-tree one on real files of every kind this
// repository holds (its C++ sources, the extension's TypeScript, the grammars' JavaScript
// and C scanners): the same definitions, references, chunks and imports.
TEST(Extract, TargetedQueryFindsWhatTheWholeTreeQueryFinds) {
    namespace fs = std::filesystem;
    const fs::path src = LATENT_SOURCE_DIR;
    std::vector<fs::path> files;
    for (const char* dir : {"index", "agent", "lsp", "engine/cpu", "extension/src"})
        for (const auto& e : fs::recursive_directory_iterator(src / dir))
            if (e.is_regular_file()) files.push_back(e.path());
    for (const auto& e : fs::directory_iterator(src / "node_modules"))
        if (e.path().filename().string().rfind("tree-sitter-", 0) == 0)
            for (const auto& f : fs::recursive_directory_iterator(e.path()))
                if (f.is_regular_file() && f.file_size() < 200'000 &&
                    f.path().string().find("/test") == std::string::npos)
                    files.push_back(f.path());
    std::sort(files.begin(), files.end());
    // No parse time limit: one side timing out on a loaded machine (or under a sanitizer)
    // would make the two differ for a reason this test is not about.
    Extractor targeted(ExtractOptions{.timeout_micros = 600'000'000}),
        plain(ExtractOptions{.timeout_micros = 600'000'000, .whole_tree_query = true});
    std::map<std::string, int> per_language;
    size_t definitions = 0;
    for (const auto& f : files) {
        const Language* lang = language_for_path(f.string());
        if (!lang) continue;
        std::ifstream in(f, std::ios::binary);
        const std::string text((std::istreambuf_iterator<char>(in)), {});
        const Extraction x = targeted.extract(*lang, text);
        EXPECT_EQ(dump(plain.extract(*lang, text)), dump(x)) << f;
        ++per_language[std::string(lang->name)];
        definitions += x.definitions.size();
    }
    EXPECT_GT(per_language["cpp"], 50);
    EXPECT_GT(per_language["typescript"], 5);
    EXPECT_GT(per_language["javascript"], 5);
    EXPECT_GT(per_language["c"], 3);
    EXPECT_GT(definitions, 2000u);
}

TEST(Extract, SignatureOfAMinifiedLineKeepsTheName) {
    // One line of 200 KB: the signature is a window around the name, not the line's start.
    std::string text = "var a=1";
    while (text.size() < 200'000) text += ",b" + std::to_string(text.size()) + "=2";
    text += ";function theNamedOne(q){return q}var z=3;";
    // The parse itself is not what is tested: no time limit, so a slow machine or a
    // sanitizer build (ThreadSanitizer parses this line in seconds) cannot time it out.
    ExtractOptions o;
    o.timeout_micros = 600'000'000;
    const Extraction x = run("javascript", text, o);
    const Definition* d = find(x, "theNamedOne");
    ASSERT_NE(d, nullptr);
    EXPECT_NE(d->signature.find("function theNamedOne(q)"), std::string::npos) << d->signature;
    EXPECT_LE(d->signature.size(), kMaxLineBytes);
}

TEST(Languages, ExtensionsMapToLanguages) {
    EXPECT_EQ(language_for_path("a/b/x.cc")->name, "cpp");
    EXPECT_EQ(language_for_path("x.h")->name, "cpp");
    EXPECT_EQ(language_for_path("x.c")->name, "c");
    EXPECT_EQ(language_for_path("src/x.py")->name, "python");
    EXPECT_EQ(language_for_path("x.mjs")->name, "javascript");
    EXPECT_EQ(language_for_path("x.ts")->name, "typescript");
    EXPECT_EQ(language_for_path("x.tsx")->name, "tsx");
    EXPECT_EQ(language_for_path("x.go")->name, "go");
    EXPECT_EQ(language_for_path("x.rs")->name, "rust");
    EXPECT_EQ(language_for_path("x.java")->name, "java");
    EXPECT_EQ(language_for_path("Makefile"), nullptr);
    EXPECT_EQ(language_for_path(".c"), nullptr);
    EXPECT_EQ(language_for_path("dir.c/README"), nullptr);
}

TEST(Extract, C) {
    const std::string src = R"(#include <stdio.h>
#include "util.h"

/* A point on the plane. */
struct point { int x, y; };

typedef struct point point_t;

enum color { RED, GREEN };

// Adds two numbers.
// Returns their sum.
static int add(int a, int b) {
    return a + b;
}

int main(void) {
    printf("%d\n", add(1, 2));
    return 0;
}
)";
    auto x = run("c", src);
    EXPECT_THAT(defs(x), ElementsAre("class point :5", "type point_t :7", "type color :9",
                                     "function add :13", "function main :17"));
    EXPECT_THAT(imports(x), ElementsAre("#include <stdio.h>", "#include \"util.h\""));
    const Definition* add = find(x, "add");
    ASSERT_NE(add, nullptr);
    EXPECT_EQ(add->doc, "Adds two numbers.\nReturns their sum.");
    EXPECT_EQ(add->signature, "static int add(int a, int b) {");
    EXPECT_EQ(add->range.start.line + 1, 13u);
    EXPECT_EQ(add->range.end.line + 1, 15u);
    EXPECT_TRUE(has_ref(x, "add", 18));
    EXPECT_TRUE(has_ref(x, "printf", 18));
    EXPECT_FALSE(has_ref(x, "add", 13));  // the definition's name is not a reference
}

TEST(Extract, Cpp) {
    const std::string src = R"(#include <vector>

namespace geo {

/// A shape with an area.
class Shape {
public:
    virtual double area() const = 0;
};

struct Circle : Shape {
    double r;
    double area() const override { return 3.14 * r * r; }
};

double Circle_total(const std::vector<Circle>& cs);

}  // namespace geo

double geo::Circle_total(const std::vector<Circle>& cs) {
    std::lock_guard lock(mu);  // parses as a local function declaration: not a definition
    double t = 0;
    for (const auto& c : cs) t += c.area();
    return t;
}
)";
    auto x = run("cpp", src);
    EXPECT_THAT(defs(x),
                ElementsAre("class Shape @geo :6", "function area @Shape :8",
                            "class Circle @geo :11", "function area @Circle :13",
                            "function Circle_total @geo :16", "method Circle_total @geo :20"));
    EXPECT_THAT(imports(x), ElementsAre("#include <vector>"));
    ASSERT_NE(find(x, "Shape"), nullptr);
    EXPECT_EQ(find(x, "Shape")->doc, "A shape with an area.");
}

TEST(Extract, Python) {
    const std::string src = R"(import os
from typing import List

LIMIT = 10


class Store:
    """Keeps items."""

    def __init__(self):
        self.items: List[str] = []

    # Adds one item.
    def add(self, item):
        self.items.append(item)
        return len(self.items)


@staticmethod
def helper(path):
    return os.path.exists(path)
)";
    auto x = run("python", src);
    EXPECT_THAT(defs(x),
                ElementsAre("constant LIMIT :4", "class Store :7", "function __init__ @Store :10",
                            "function add @Store :14", "function helper :20"));
    EXPECT_THAT(imports(x), ElementsAre("import os", "from typing import List"));
    ASSERT_NE(find(x, "Store"), nullptr);
    EXPECT_EQ(find(x, "Store")->doc, "Keeps items.");
    ASSERT_NE(find(x, "add"), nullptr);
    EXPECT_EQ(find(x, "add")->doc, "Adds one item.");
    ASSERT_NE(find(x, "helper"), nullptr);
    EXPECT_EQ(find(x, "helper")->doc, "");
}

TEST(Extract, JavaScript) {
    const std::string src = R"(import { readFile } from 'fs';
const path = require('path');

/**
 * Greets someone.
 */
export function greet(name) {
  return `hello ${name}`;
}

class Counter {
  constructor() { this.n = 0; }
  // Counts one more.
  inc() { return ++this.n; }
}

const double = (x) => x * 2;

module.exports = { greet, Counter, double: double };
greet(path.basename('a'));
)";
    auto x = run("javascript", src);
    EXPECT_THAT(defs(x), ElementsAre("function greet :7", "class Counter :11",
                                     "method inc @Counter :14", "function double :17"));
    EXPECT_THAT(imports(x), ElementsAre("import { readFile } from 'fs';"));
    ASSERT_NE(find(x, "greet"), nullptr);
    EXPECT_EQ(find(x, "greet")->doc, "Greets someone.");
    ASSERT_NE(find(x, "inc"), nullptr);
    EXPECT_EQ(find(x, "inc")->doc, "Counts one more.");
}

TEST(Extract, TypeScript) {
    const std::string src = R"(import type { Foo } from './foo';

export interface Options {
  depth: number;
}

/** Walks a tree. */
export abstract class Walker {
  abstract visit(node: Foo): void;
  walk(opts: Options): number {
    return opts.depth;
  }
}

namespace Util {
  export function clamp(x: number): number { return Math.max(0, x); }
}

type Id = string;
)";
    auto x = run("typescript", src);
    EXPECT_THAT(defs(x),
                ElementsAre("interface Options :3", "class Walker :8", "method visit @Walker :9",
                            "method walk @Walker :10", "function clamp @Util :16"));
    EXPECT_THAT(imports(x), ElementsAre("import type { Foo } from './foo';"));
    ASSERT_NE(find(x, "Walker"), nullptr);
    EXPECT_EQ(find(x, "Walker")->doc, "Walks a tree.");
}

TEST(Extract, Tsx) {
    const std::string src = R"(import React from 'react';

interface Props { title: string }

export function Header({ title }: Props) {
  return <h1 className="h">{title}</h1>;
}

export const Page = () => <Header title="x" />;
)";
    auto x = run("tsx", src);
    EXPECT_THAT(defs(x),
                ElementsAre("interface Props :3", "function Header :5", "function Page :9"));
    EXPECT_THAT(imports(x), ElementsAre("import React from 'react';"));
}

TEST(Extract, Go) {
    const std::string src = R"(package store

import (
	"fmt"
	"strings"
)

// Item is one stored thing.
type Item struct {
	Name string
}

// Add stores an item.
func (s *Store) Add(it Item) error {
	return fmt.Errorf("no %s", strings.ToUpper(it.Name))
}

func New() *Store { return &Store{} }
)";
    auto x = run("go", src);
    EXPECT_THAT(defs(x), ElementsAre("type Item :9", "method Add @Store :14", "function New :18"));
    EXPECT_THAT(imports(x), ElementsAre("\"fmt\"", "\"strings\""));
    ASSERT_NE(find(x, "Item"), nullptr);
    EXPECT_EQ(find(x, "Item")->doc, "Item is one stored thing.");
    ASSERT_NE(find(x, "Add"), nullptr);
    EXPECT_EQ(find(x, "Add")->doc, "Add stores an item.");
    ASSERT_NE(find(x, "New"), nullptr);
    EXPECT_EQ(find(x, "New")->doc, "");
}

TEST(Extract, Rust) {
    const std::string src = R"(use std::collections::HashMap;

/// A cache of strings.
pub struct Cache {
    map: HashMap<String, String>,
}

pub trait Get {
    fn get(&self, k: &str) -> Option<&String>;
}

impl Get for Cache {
    fn get(&self, k: &str) -> Option<&String> {
        self.map.get(k)
    }
}

mod util {
    pub fn clamp(x: i32) -> i32 { x.max(0) }
}

macro_rules! square { ($x:expr) => { $x * $x }; }

enum Shape { Dot }
)";
    auto x = run("rust", src);
    EXPECT_THAT(defs(x), ElementsAre("class Cache :4", "interface Get :8", "method get @Cache :13",
                                     "module util :18", "method clamp @util :19",
                                     "macro square :22", "class Shape :24"));
    EXPECT_THAT(imports(x), ElementsAre("use std::collections::HashMap;"));
    ASSERT_NE(find(x, "Cache"), nullptr);
    EXPECT_EQ(find(x, "Cache")->doc, "A cache of strings.");
}

TEST(Extract, Java) {
    const std::string src = R"(package demo;

import java.util.List;
import java.util.ArrayList;

/** A list of names. */
public class Names implements Iterable<String> {
    private final List<String> names = new ArrayList<>();

    /** Adds a name. */
    public void add(String n) {
        names.add(n);
    }

    interface Visitor { void visit(String n); }
}
)";
    auto x = run("java", src);
    EXPECT_THAT(defs(x), ElementsAre("class Names :7", "method add @Names :11",
                                     "interface Visitor @Names :15", "method visit @Visitor :15"));
    EXPECT_THAT(imports(x), ElementsAre("import java.util.List;", "import java.util.ArrayList;"));
    ASSERT_NE(find(x, "Names"), nullptr);
    EXPECT_EQ(find(x, "Names")->doc, "A list of names.");
    ASSERT_NE(find(x, "add"), nullptr);
    EXPECT_EQ(find(x, "add")->doc, "Adds a name.");
}

TEST(Extract, SignatureRangesAndReferencesInPython) {
    const std::string src = "def f(a):\n    return g(a)\n";
    auto x = run("python", src);
    ASSERT_EQ(x.definitions.size(), 1u);
    const auto& d = x.definitions[0];
    EXPECT_EQ(d.signature, "def f(a):");
    EXPECT_EQ(d.range, (Range{{0, 0}, {1, 15}, 0, 25}));
    EXPECT_EQ(d.name_range, (Range{{0, 4}, {0, 5}, 4, 5}));
    std::vector<std::string> refs;
    for (const auto& r : x.references)
        refs.push_back(r.name + ":" + std::to_string(r.position.line) + ":" +
                       std::to_string(r.position.column));
    EXPECT_THAT(refs, ElementsAre("a:0:6", "g:1:11", "a:1:13"));
}

TEST(Extract, LongDefinitionsAreSplitAtChildBoundariesAndGapsAreChunked) {
    std::string src = "import os\nimport sys\n\nX = 1\n\n";
    src += "class Big:\n";
    for (int i = 0; i < 40; ++i)
        src +=
            "    def m" + std::to_string(i) + "(self):\n        return os.path.join('a', 'b')\n\n";
    src += "def small():\n    return 1\n";
    ExtractOptions o;
    o.chunk_bytes = 400;
    auto x = run("python", src, o);
    ASSERT_GE(x.chunks.size(), 4u);
    EXPECT_EQ(x.chunks.front().kind, "gap");  // the imports
    EXPECT_EQ(x.chunks.front().range.start_byte, 0u);
    size_t parts = 0, methods = 0;
    for (const auto& c : x.chunks) {
        EXPECT_LE(c.range.end_byte - c.range.start_byte, 400u);
        if (c.kind == "part") {
            ++parts;
            EXPECT_EQ(c.name, "Big");  // "class Big:" before its body
        }
        if (c.kind == "definition" && c.name[0] == 'm') ++methods;
    }
    EXPECT_EQ(parts, 1u);
    EXPECT_EQ(methods, 40u);  // the body is split at its children: one chunk per method
    EXPECT_EQ(x.chunks.back().kind, "definition");
    EXPECT_EQ(x.chunks.back().name, "small");
    EXPECT_EQ(x.chunks.back().range.end_byte, src.size() - 1);
}

TEST(Extract, DefinitionChunkTakesItsDocComment) {
    const std::string src = "int a;\n\n// Doc.\nint f() { return 1; }\n";
    auto x = run("c", src);
    ASSERT_EQ(x.chunks.size(), 2u);
    EXPECT_EQ(x.chunks[0].kind, "gap");
    EXPECT_EQ(x.chunks[1].kind, "definition");
    EXPECT_EQ(x.chunks[1].name, "f");
    EXPECT_EQ(x.chunks[1].range.start_byte, src.find("// Doc."));
}

TEST(Extract, ParseTimeoutGivesLineChunksAndNeverThrows) {
    std::string src;
    for (int i = 0; i < 20000; ++i)
        src += "int f" + std::to_string(i) + "(int a) { return a * 2; }\n";
    ExtractOptions o;
    o.timeout_micros = 1;
    auto x = run("c", src, o);
    EXPECT_TRUE(x.timed_out);
    EXPECT_THAT(x.definitions, IsEmpty());
    ASSERT_FALSE(x.chunks.empty());
    EXPECT_EQ(x.chunks.back().range.end_byte, src.size());
    EXPECT_EQ(x.chunks.front().kind, "text");
    // The same extractor parses normally afterwards.
    Extractor e;
    EXPECT_FALSE(e.extract(*language_named("c"), "int g(void) { return 0; }\n").timed_out);
}

TEST(Extract, InvalidUtf8IsToleratedAndExtractedAsFarAsPossible) {
    const std::string src =
        "def ok():\n    return '\xff\xfe\xc3'\n\ndef after\xff():\n  pass\n\ndef last():\n    "
        "pass\n";
    auto x = run("python", src);
    ASSERT_NE(find(x, "ok"), nullptr);
    ASSERT_NE(find(x, "last"), nullptr);
    EXPECT_FALSE(x.chunks.empty());
}

TEST(Extract, EmptyAndGarbageInput) {
    EXPECT_THAT(run("cpp", "").chunks, IsEmpty());
    const std::string junk = "}}}{{{ ((( )) ;;; \x01\x02 class { def fn ";
    for (const auto& l : languages()) {
        Extractor e;
        auto x = e.extract(l, junk);
        EXPECT_TRUE(x.has_errors) << l.name;
        expect_chunks_ordered(x, junk);
    }
}

}  // namespace
}  // namespace latent::index
