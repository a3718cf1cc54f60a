// The parts of `latent bench context` (cli_bench_context.cpp) that are tested alone: the
// truth (held-out spans of real code and the definitions in other files that they use,
// found by ctags and a lexer, never by Latent's index), the context other assistants send
// (simulated here), and the scoring of a prompt's context. Not the prompt Latent builds:
// the benchmark asks the Agent for that, as `latent lsp` does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agent/completion.h"

namespace latent::agent::context_bench {

// One ctags definition.
struct Tag {
    std::string name, kind;
    std::string file;            // relative to the repository's root
    uint32_t line = 0, end = 0;  // 0-based, inclusive; end == line when ctags gave none
};

// The definitions in ctags' JSON lines (`ctags --output-format=json --fields=+nKe`) of
// the kinds that define a name (functions, types, members, macros, file-scope variables,
// ...; not parameters, locals or imports), in files under `root` (an absolute path without
// a trailing '/'). Lines that are not tags are skipped.
std::vector<Tag> parse_ctags(std::string_view json_lines, const std::string& root);

// What the benchmark knows of a repository, found without the index.
struct Repo {
    std::string root;                          // absolute, no trailing '/'
    std::map<std::string, std::string> texts;  // relative path -> text (known languages)
    std::vector<Tag> tags;
    std::unordered_map<std::string, std::vector<size_t>> by_name;  // name -> tags' indices
    // Fills by_name from tags.
    void index_tags();
};

enum class SpanKind { kFunction, kBlock, kLine };
const char* kind_name(SpanKind k);  // "function", "block", "line"

// A held-out piece of a file: what the user is about to write.
struct Span {
    std::string file;  // relative
    SpanKind kind = SpanKind::kLine;
    size_t begin = 0, end = 0;  // bytes of the file's text held out; the cursor is at begin
};

// A name the span uses that only other files of its language family define.
struct Needed {
    std::string name;
    std::vector<Tag> definitions;  // in other files, at most kMaxDefinitions
};
// A name defined in more places than this is too common to say which one is needed.
constexpr size_t kMaxDefinitions = 5;

// The names in the span's code (not in its comments or strings; keywords and names under
// 3 bytes left out) that ctags defines in other files of the span's family (c/c++,
// python, ts/js, ...), in at most kMaxDefinitions places, and nowhere in the span's own
// file (there the prompt's prefix or suffix may already show it). In order of first use.
std::vector<Needed> needed_definitions(const Repo& repo, const Span& span);

// Seeded held-out spans, `n` in all, as even as can be over the three kinds: function
// bodies (the lines between a ctags function's header and end, 2 to 60 lines), blocks of
// 3 to 6 lines and single lines starting at a line of code (not blank, not only a
// comment). Candidates are tried in a seeded order and those without needed definitions
// are skipped (counted per kind). The same repository and seed give the same spans.
struct Picked {
    std::vector<Span> spans;
    std::map<std::string, size_t> skipped;  // kind name -> spans without needed definitions
};
Picked pick_spans(const Repo& repo, size_t n, uint64_t seed);

// The blocks of a prompt's context (FimPrompt::context as layout_fim_prompt writes it):
// each starts at a header "<marker> <path>:<line>" naming a file of the repository; the
// closing "<marker> <path>" line (the current file's) ends the last. Lines 0-based.
std::vector<ContextBlock> parse_context(std::string_view context, const Repo& repo);

// Blocks taken in the order given (best first) while each fits `bytes`, counted as
// layout_fim_prompt counts them (its header line and text); blocks of `current` or
// overlapping one taken are left out. `truncate`: the first block that does not fit is
// cut to the whole lines that do, and nothing follows it; else it is skipped and the
// next tried.
std::vector<ContextBlock> fit(const std::vector<ContextBlock>& ranked, size_t bytes,
                              const std::string& current, bool truncate);

// Files of the repository that `file` imports or includes, resolved (relative includes
// and imports, Python's packages, TS/JS paths with their extensions, C includes by their
// path's ending), in the order the file names them, each once, `file` itself never.
std::vector<std::string> imports_of(const Repo& repo, const std::string& file);

// Continue's and Copilot's neighbouring-files context: the imported files' text from
// their top, in import order, until `bytes` (the last one cut at a line).
std::vector<ContextBlock> imports_context(const Repo& repo, const std::string& file, size_t bytes);

// llama.vscode's ring buffer: 64-line chunks of the files viewed before, most recent
// first, whole chunks while they fit. The trace of views: the files `file` imports, in
// order, then the other files of its folder in a seeded order, at most 16 files (the
// ring's size), one chunk each around a seeded line (where the cursor was).
std::vector<ContextBlock> ring_context(const Repo& repo, const std::string& file, uint64_t seed,
                                       size_t bytes);

// Tabby's snippet query: the last 32 distinct identifier-like words before the cursor,
// nearest last, space-separated.
std::string bm25_query(std::string_view before_cursor);

// How one context did for one span.
struct Score {
    size_t needed = 0, found = 0;  // needed names; those with a definition line covered
    size_t tokens = 0;             // tokens of the context (block headers included)
    size_t needed_tokens = 0;      // tokens of the lines of needed definitions it shows
};
// A needed name is found when a block of a file that defines it covers its definition's
// line; `count` gives the tokens of a text.
Score score(const std::vector<ContextBlock>& blocks, const std::vector<Needed>& needed,
            const std::string& marker, const std::function<size_t(std::string_view)>& count);

}  // namespace latent::agent::context_bench
