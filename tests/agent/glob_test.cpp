// Globs with VS Code's meaning: the examples of its documentation ("Glob Patterns
// Reference" for files.exclude / search.exclude) and the cases where fnmatch differed.
#include "agent/glob.h"

#include <gtest/gtest.h>

namespace latent::agent {
namespace {

TEST(Glob, VsCodesDocumentedExamples) {
    // "*" matches zero or more characters in a path segment.
    EXPECT_TRUE(glob_match("*.ts", "a.ts"));
    EXPECT_FALSE(glob_match("*.ts", "src/a.ts"));
    // "?" matches one character in a path segment.
    EXPECT_TRUE(glob_match("?.ts", "a.ts"));
    EXPECT_FALSE(glob_match("?.ts", "ab.ts"));
    // "**" matches any number of path segments, including none.
    EXPECT_TRUE(glob_match("**/*.ts", "a.ts"));
    EXPECT_TRUE(glob_match("**/*.ts", "src/deep/a.ts"));
    EXPECT_TRUE(glob_match("**/dist/**", "dist/a.js"));
    EXPECT_TRUE(glob_match("**/dist/**", "pkg/dist/x/a.js"));
    EXPECT_TRUE(glob_match("**/*.{ts,js}", "src/a.js"));
    EXPECT_TRUE(glob_match("**/*.{ts,js}", "src/a.ts"));
    EXPECT_FALSE(glob_match("**/*.{ts,js}", "src/a.tsx"));
    // "{}" groups conditions; "[]" declares a range; "[!...]" negates it.
    EXPECT_TRUE(glob_match("example.[0-9]", "example.0"));
    EXPECT_FALSE(glob_match("example.[0-9]", "example.a"));
    EXPECT_TRUE(glob_match("example.[!0-9]", "example.a"));
    EXPECT_FALSE(glob_match("example.[!0-9]", "example.0"));
    EXPECT_TRUE(glob_match("{gen,out}/**", "gen/a.py"));
    EXPECT_TRUE(glob_match("{gen,out}/**", "out/b/c.py"));
    EXPECT_FALSE(glob_match("{gen,out}/**", "src/gen/a.py"));
    // "*" stays within one segment: fnmatch without FNM_PATHNAME let "build/*" match
    // build/a/b.js; VS Code does not.
    EXPECT_FALSE(glob_match("build/*", "build/a/b.js"));
    EXPECT_TRUE(glob_match("build/*", "build/b.js"));
    // Dotfiles are not special.
    EXPECT_TRUE(glob_match("**/*.py", ".hidden/x.py"));
    // Nested braces.
    EXPECT_TRUE(glob_match("{a,b{c,d}}/x", "bd/x"));
    EXPECT_FALSE(glob_match("{a,b{c,d}}/x", "b/x"));
}

TEST(Glob, AFolderPatternExcludesWhatIsInside) {
    const std::vector<std::string> g = {"**/node_modules", "third_party", "**/*.min.js"};
    EXPECT_TRUE(glob_excludes(g, "node_modules/a/b.js"));
    EXPECT_TRUE(glob_excludes(g, "web/node_modules/x.ts"));
    EXPECT_TRUE(glob_excludes(g, "third_party/zlib/z.c"));
    EXPECT_FALSE(glob_excludes(g, "src/third_party/z.c"));
    EXPECT_TRUE(glob_excludes(g, "web/app.min.js"));
    EXPECT_FALSE(glob_excludes(g, "web/app.js"));
    EXPECT_FALSE(glob_excludes({}, "a.py"));
    EXPECT_FALSE(glob_excludes({""}, "a.py"));
}

TEST(Glob, HostilePatternsStayBounded) {
    // 2^20 alternatives if expanded fully: capped, and it returns.
    std::string p;
    for (int i = 0; i < 20; ++i) p += "{a,b}";
    EXPECT_TRUE(glob_match(p, std::string(20, 'a')));
    EXPECT_FALSE(glob_match("{unclosed", "x"));
    EXPECT_TRUE(glob_match("{unclosed", "{unclosed"));
    EXPECT_TRUE(glob_match("**/**/**/a", "x/y/a"));
}

}  // namespace
}  // namespace latent::agent
