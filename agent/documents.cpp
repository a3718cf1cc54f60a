// Documents and position conversion (see documents.h).
#include "agent/documents.h"

#include <algorithm>

namespace latent::agent {

const char* encoding_name(PositionEncoding e) {
    switch (e) {
        case PositionEncoding::kUtf8:
            return "utf-8";
        case PositionEncoding::kUtf32:
            return "utf-32";
        case PositionEncoding::kUtf16:
            break;
    }
    return "utf-16";
}

PositionEncoding negotiate_encoding(const std::optional<std::vector<std::string>>& offered) {
    if (offered && std::find(offered->begin(), offered->end(), "utf-8") != offered->end())
        return PositionEncoding::kUtf8;
    return PositionEncoding::kUtf16;
}

namespace {

// Bytes of the UTF-8 character starting at s[i] (1 for an invalid or truncated sequence:
// such a byte stands for itself).
size_t char_len(std::string_view s, size_t i) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) {
        n = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, cp = c & 0x07;
    } else {
        return 1;
    }
    if (i + n > s.size()) return 1;
    for (size_t k = 1; k < n; ++k) {
        const auto cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xC0) != 0x80) return 1;
        cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not valid UTF-8.
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 1;
    return n;
}

size_t units_of(size_t len, PositionEncoding enc) {
    switch (enc) {
        case PositionEncoding::kUtf8:
            return len;
        case PositionEncoding::kUtf32:
            return 1;
        case PositionEncoding::kUtf16:
            break;
    }
    return len == 4 ? 2 : 1;
}

bool is_break(char c) { return c == '\n' || c == '\r'; }

// Byte offset where line `line` starts, or nullopt past the last line.
std::optional<size_t> line_start(std::string_view text, uint32_t line) {
    size_t i = 0;
    for (uint32_t l = 0; l < line; ++l) {
        while (i < text.size() && !is_break(text[i])) ++i;
        if (i >= text.size()) return std::nullopt;
        if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
        ++i;
    }
    return i;
}

}  // namespace

size_t code_units(std::string_view s, PositionEncoding enc) {
    size_t units = 0;
    for (size_t i = 0; i < s.size();) {
        const size_t len = char_len(s, i);
        units += units_of(len, enc);
        i += len;
    }
    return units;
}

size_t to_offset(std::string_view text, lsp::Position pos, PositionEncoding enc) {
    const auto start = line_start(text, pos.line);
    if (!start) return text.size();
    size_t i = *start, units = 0;
    while (i < text.size() && !is_break(text[i])) {
        const size_t len = char_len(text, i);
        const size_t u = units_of(len, enc);
        if (units + u > pos.character) break;
        units += u;
        i += len;
    }
    return i;
}

lsp::Position to_position(std::string_view text, size_t offset, PositionEncoding enc) {
    offset = std::min(offset, text.size());
    lsp::Position p;
    size_t ls = 0;
    for (size_t i = 0; i < offset; ++i) {
        if (text[i] == '\n' || (text[i] == '\r' && !(i + 1 < text.size() && text[i + 1] == '\n'))) {
            ++p.line;
            ls = i + 1;
        }
    }
    // Between the \r and \n of a CRLF: the end of that line.
    size_t end = offset;
    if (end > ls && text[end - 1] == '\r') --end;
    size_t units = 0;
    for (size_t i = ls; i < end;) {
        const size_t len = char_len(text, i);
        if (i + len > end) break;  // offset inside a character: round down
        units += units_of(len, enc);
        i += len;
    }
    p.character = static_cast<uint32_t>(std::min<size_t>(units, UINT32_MAX));
    return p;
}

AppliedChange apply_change(std::string& text, const lsp::TextDocumentContentChangeEvent& change,
                           PositionEncoding enc) {
    AppliedChange a;
    if (!change.range) {
        a.old_end = text.size();
        a.whole = true;
        text = change.text;
        a.new_end = text.size();
        return a;
    }
    const size_t s = to_offset(text, change.range->start, enc);
    size_t e = to_offset(text, change.range->end, enc);
    if (e < s) e = s;
    a.removed = text.substr(s, e - s);
    text.replace(s, e - s, change.text);
    a.start = s;
    a.old_end = e;
    a.new_end = s + change.text.size();
    return a;
}

void DocumentStore::set_encoding(PositionEncoding enc) {
    std::lock_guard<std::mutex> lock(mu_);
    enc_ = enc;
}

PositionEncoding DocumentStore::encoding() const {
    std::lock_guard<std::mutex> lock(mu_);
    return enc_;
}

void DocumentStore::open(Document doc) {
    std::lock_guard<std::mutex> lock(mu_);
    std::string uri = doc.uri;
    docs_[uri] = std::move(doc);
}

bool DocumentStore::change(const std::string& uri, int32_t version,
                           const std::vector<lsp::TextDocumentContentChangeEvent>& changes,
                           std::vector<AppliedChange>* applied, const EachChange& each) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = docs_.find(uri);
    if (it == docs_.end()) return false;
    std::string text = it->second.text;
    std::vector<AppliedChange> done;
    for (const auto& c : changes) {
        // Check the size before building the string: a hostile change must not allocate.
        if (c.text.size() > kMaxDocumentBytes) return false;
        done.push_back(apply_change(text, c, enc_));
        if (text.size() > kMaxDocumentBytes) return false;
        if (each) each(text, done.back());
    }
    it->second.text = std::move(text);
    it->second.version = version;
    if (applied) *applied = std::move(done);
    return true;
}

void DocumentStore::close(const std::string& uri) {
    std::lock_guard<std::mutex> lock(mu_);
    docs_.erase(uri);
}

std::optional<Document> DocumentStore::get(const std::string& uri) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = docs_.find(uri);
    if (it == docs_.end()) return std::nullopt;
    return it->second;
}

bool DocumentStore::read(const std::string& uri,
                         const std::function<void(const Document&)>& fn) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = docs_.find(uri);
    if (it == docs_.end()) return false;
    fn(it->second);
    return true;
}

bool DocumentStore::contains(const std::string& uri) const {
    std::lock_guard<std::mutex> lock(mu_);
    return docs_.count(uri) > 0;
}

std::vector<std::string> DocumentStore::uris() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& [k, v] : docs_) out.push_back(k);
    return out;
}

size_t DocumentStore::size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return docs_.size();
}

namespace {
int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
}  // namespace

std::string uri_to_path(std::string_view uri) {
    constexpr std::string_view kScheme = "file://";
    if (uri.substr(0, kScheme.size()) != kScheme) return "";
    uri.remove_prefix(kScheme.size());
    // file://host/path: only the local host (empty or "localhost") is a path here.
    if (uri.substr(0, 9) == "localhost") uri.remove_prefix(9);
    if (uri.empty() || uri[0] != '/') return "";
    std::string out;
    for (size_t i = 0; i < uri.size(); ++i) {
        if (uri[i] == '%' && i + 2 < uri.size() && hex(uri[i + 1]) >= 0 && hex(uri[i + 2]) >= 0) {
            const char c = static_cast<char>(hex(uri[i + 1]) * 16 + hex(uri[i + 2]));
            // No file name holds a NUL; "%00" would cut the path short in a system call.
            if (c == '\0') return "";
            out += c;
            i += 2;
        } else if (uri[i] == '?' || uri[i] == '#') {
            break;
        } else {
            out += uri[i];
        }
    }
    return out;
}

std::string path_to_uri(std::string_view path) {
    static const char* kHex = "0123456789ABCDEF";
    std::string out = "file://";
    for (unsigned char c : path) {
        const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '/' || c == '-' || c == '_' || c == '.' ||
                          c == '~';
        if (keep) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    return out;
}

}  // namespace latent::agent
