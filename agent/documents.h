// Documents: the text of every file the editor has open, as the editor sees it (unsaved
// edits included), with full and incremental sync and the exact conversion between LSP
// positions (UTF-16 code units by default, UTF-8 bytes when negotiated) and byte offsets.
// Not the index (index/) and not prompt building (completion.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lsp/protocol.h"

namespace latent::agent {

enum class PositionEncoding { kUtf16, kUtf8, kUtf32 };

// "utf-8" | "utf-16" | "utf-32" as LSP spells them.
const char* encoding_name(PositionEncoding e);
// The encoding the server chooses from the client's offer: utf-8 when offered (no
// conversion), else utf-16 (the spec's mandatory default).
PositionEncoding negotiate_encoding(const std::optional<std::vector<std::string>>& offered);

// Byte offset of `pos` in `text`. Lines end at "\n", "\r\n" or a lone "\r" (the spec's
// three line endings). Out-of-range positions are clamped as the spec asks: a character
// past the end of its line means the end of the line (before its line break), a line
// past the end of the text means the end of the text. A position inside a UTF-16
// surrogate pair or inside a multi-byte UTF-8 sequence rounds down to the character's
// start. Invalid UTF-8 bytes count as one code unit each.
size_t to_offset(std::string_view text, lsp::Position pos, PositionEncoding enc);
// The position of byte `offset` (clamped to the text; rounded down to a character start).
lsp::Position to_position(std::string_view text, size_t offset, PositionEncoding enc);
// Length of `s` in code units of `enc` (no line breaks expected, but any bytes work).
size_t code_units(std::string_view s, PositionEncoding enc);

// One open document. Plain value; DocumentStore owns them.
struct Document {
    std::string uri;
    std::string language_id;
    int32_t version = 0;
    std::string text;
};

// Applies one change: a full replacement when `change.range` is absent, else the range
// replaced by the text. Ranges whose end is before their start are treated as empty at
// the start. Returns the byte range [start, end) that was replaced (for edit tracking).
struct AppliedChange {
    size_t start = 0, old_end = 0, new_end = 0;
    std::string removed;  // the text [start, old_end) held before
    bool whole = false;   // a full replacement (no range)
};
AppliedChange apply_change(std::string& text, const lsp::TextDocumentContentChangeEvent& change,
                           PositionEncoding enc);

// The open documents, keyed by URI.
//
// Thread safety: every method locks; get() returns a copy so callers never hold a
// reference into the store while another thread edits.
class DocumentStore {
public:
    // A change that would make a document larger than this is refused: 64 MiB matches the
    // transport's body cap, so no honest client builds a bigger one by small edits either.
    static constexpr size_t kMaxDocumentBytes = 64u << 20;

    explicit DocumentStore(PositionEncoding enc = PositionEncoding::kUtf16) : enc_(enc) {}
    void set_encoding(PositionEncoding enc);
    PositionEncoding encoding() const;

    void open(Document doc);
    // Applies the changes in order. False (and the document unchanged) when the URI is not
    // open or the result would exceed kMaxDocumentBytes. `applied` gets each change's range.
    // `each` (may be null) is called under the store's lock after each change with the
    // document as that change left it (the edit history records them one by one: a
    // multi-cursor edit arrives as one batch); it must be short and must not call back
    // into the store. A batch refused part-way has already reported its first changes.
    using EachChange = std::function<void(std::string_view after, const AppliedChange&)>;
    bool change(const std::string& uri, int32_t version,
                const std::vector<lsp::TextDocumentContentChangeEvent>& changes,
                std::vector<AppliedChange>* applied = nullptr, const EachChange& each = nullptr);
    void close(const std::string& uri);
    std::optional<Document> get(const std::string& uri) const;
    // Calls `fn` with the document under the store's lock (no copy); false when not open.
    // `fn` must be short and must not call back into the store.
    bool read(const std::string& uri, const std::function<void(const Document&)>& fn) const;
    bool contains(const std::string& uri) const;
    std::vector<std::string> uris() const;
    size_t size() const;

private:
    mutable std::mutex mu_;
    PositionEncoding enc_;
    std::map<std::string, Document> docs_;
};

// file:///a/b%20c.cpp -> /a/b c.cpp; "" when the URI is not a file: URI or decodes to a
// NUL byte. Lexical only: "..", "%2e%2e", "%2F" and symlinks stay as they are, so nothing
// read from disk on a client's say-so may use this alone (Workspaces::resolve does).
std::string uri_to_path(std::string_view uri);
// /a/b c.cpp -> file:///a/b%20c.cpp
std::string path_to_uri(std::string_view path);

}  // namespace latent::agent
