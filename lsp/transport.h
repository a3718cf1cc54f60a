// The LSP base protocol: `Content-Length: N\r\n` [`Content-Type: ...\r\n`] `\r\n` + N bytes
// of UTF-8 JSON. This file knows framing only: it never parses JSON and knows no methods
// (that is jsonrpc.h), and it does not own threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace latent::lsp {

// Caps on what a peer may send. Every size here comes from outside the process.
struct ReaderLimits {
    // One header line, CRLF excluded. Real headers are ~40 bytes; 8 KiB is what HTTP servers
    // allow, and without a cap a peer that never sends "\n" grows our buffer forever.
    size_t max_header_line = 8 * 1024;
    // Header lines per message. The spec defines two; 32 leaves room for proxies that add
    // their own and still bounds a stream of endless headers.
    size_t max_header_lines = 32;
    // Body bytes. The largest honest message is a didOpen of a big file; 64 MiB covers
    // generated sources while refusing the fuzzer's favourite "Content-Length:
    // 9999999999999999" before we try to allocate it.
    size_t max_body = 64u << 20;
};

// What MessageReader::next() found.
struct ReadResult {
    enum class Kind {
        kMessage,  // `body` holds one complete message body (not validated as JSON)
        kError,    // a malformed header block; it was skipped, reading continues (resync)
        kFatal,    // the stream cannot be trusted any more (oversized body); close it
        kEof,      // FdTransport only: the peer closed the stream
    };
    Kind kind = Kind::kMessage;
    std::string body;   // kMessage
    std::string error;  // kError, kFatal: a sentence for the log
};

// Incremental parser of the base protocol. Bytes go in by feed() in chunks of any size
// (byte by byte works); complete messages and errors come out of next() in stream order.
//
// Malformed input never crashes and never stalls silently:
//  - a bad header block (no Content-Length, a non-numeric or negative length, a line
//    without ':', a bare LF instead of CRLF, a line or block over the caps, an unsupported
//    charset) yields one kError, then the reader resyncs: it drops bytes up to the next
//    "Content-Length:" (anywhere: the next header follows the skipped body directly). When the
//    block was bad only in its Content-Type, the length is trusted and exactly the body is skipped.
//  - a length over max_body yields kFatal and the reader stays fatal: skipping an
//    absurd length could swallow the stream forever, so the owner should close it.
// Header names are case-insensitive (the spec follows HTTP); unknown headers are ignored.
//
// Thread safety: none; one reader per stream, used by one thread.
class MessageReader {
public:
    explicit MessageReader(ReaderLimits limits = {});

    // Copies the bytes into the internal buffer.
    void feed(std::string_view bytes);
    // The next message or error, or nullopt when more bytes are needed.
    std::optional<ReadResult> next();

    bool fatal() const { return state_ == State::kFatal; }
    // Bytes held but not yet returned (tests check that memory stays bounded).
    size_t buffered() const { return buf_.size() - pos_; }

private:
    enum class State { kHeaders, kBody, kSkipBody, kResync, kFatal };

    std::optional<ReadResult> parse_headers();
    ReadResult header_error(std::string message);
    void reset_headers();
    void compact();

    ReaderLimits limits_;
    std::string buf_;
    size_t pos_ = 0;        // first unconsumed byte of buf_
    size_t scan_from_ = 0;  // kHeaders: where the search for '\n' resumes
    State state_ = State::kHeaders;
    // The header block being read (kHeaders), then the body (kBody, kSkipBody).
    size_t header_lines_ = 0;
    bool have_length_ = false;
    bool charset_bad_ = false;
    size_t body_len_ = 0;
};

// Frames one body: "Content-Length: N\r\n\r\n" + body.
std::string frame_message(std::string_view body);

// The base protocol over a pair of file descriptors (stdin/stdout, a pipe, a socket).
// Does not own the descriptors; the caller closes them.
//
// Thread safety: read() from one thread at a time; write() from any thread (a mutex keeps
// whole messages together). read() and write() may run at the same time.
class FdTransport {
public:
    FdTransport(int in_fd, int out_fd, ReaderLimits limits = {});

    // Blocks until a message, a header error, end of stream or a fatal error. After kEof
    // or kFatal every later call returns the same kind.
    ReadResult read();
    // Frames and writes the whole body (retrying short writes and EINTR). False when the
    // descriptor failed (peer gone); the message is then lost.
    bool write(std::string_view body);

private:
    int in_fd_;
    int out_fd_;
    MessageReader reader_;
    bool eof_ = false;
    std::mutex write_mutex_;
};

}  // namespace latent::lsp
