// The LSP base protocol reader and writer; see transport.h for the rules and caps.
#include "lsp/transport.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

namespace latent::lsp {
namespace {

constexpr std::string_view kContentLength = "content-length";
constexpr std::string_view kContentType = "content-type";
constexpr std::string_view kContentLengthColon = "content-length:";

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// The spec's default charset is utf-8; "utf8" is accepted for old clients, as the spec says.
bool charset_ok(std::string_view content_type) {
    while (!content_type.empty()) {
        const size_t semi = content_type.find(';');
        std::string_view param = trim(content_type.substr(0, semi));
        content_type =
            semi == std::string_view::npos ? std::string_view{} : content_type.substr(semi + 1);
        const size_t eq = param.find('=');
        if (eq == std::string_view::npos || !iequals(trim(param.substr(0, eq)), "charset"))
            continue;
        std::string_view value = trim(param.substr(eq + 1));
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
            value = value.substr(1, value.size() - 2);
        if (!iequals(value, "utf-8") && !iequals(value, "utf8")) return false;
    }
    return true;
}

}  // namespace

MessageReader::MessageReader(ReaderLimits limits) : limits_(limits) {}

void MessageReader::feed(std::string_view bytes) {
    if (state_ == State::kFatal) return;
    compact();
    buf_.append(bytes.data(), bytes.size());
}

void MessageReader::compact() {
    if (pos_ == 0) return;
    if (pos_ == buf_.size()) {
        buf_.clear();
        pos_ = 0;
        scan_from_ = 0;
    } else if (pos_ > 4096 && pos_ * 2 > buf_.size()) {
        buf_.erase(0, pos_);
        scan_from_ = scan_from_ > pos_ ? scan_from_ - pos_ : 0;
        pos_ = 0;
    }
}

ReadResult MessageReader::header_error(std::string message) {
    state_ = State::kResync;
    reset_headers();
    return ReadResult{ReadResult::Kind::kError, {}, std::move(message)};
}

void MessageReader::reset_headers() {
    header_lines_ = 0;
    have_length_ = false;
    body_len_ = 0;
    charset_bad_ = false;
    scan_from_ = pos_;
}

std::optional<ReadResult> MessageReader::parse_headers() {
    for (;;) {
        // Continue scanning where the last call stopped, so byte-by-byte input stays linear.
        const size_t start = std::max(scan_from_, pos_);
        const void* nl = start < buf_.size()
                             ? std::memchr(buf_.data() + start, '\n', buf_.size() - start)
                             : nullptr;
        if (nl == nullptr) {
            scan_from_ = buf_.size();
            // +1 for the '\r' that may still arrive before the '\n'.
            if (buf_.size() - pos_ > limits_.max_header_line + 1) {
                ++pos_;  // so that resync cannot find this same line again
                return header_error("header line longer than " +
                                    std::to_string(limits_.max_header_line) + " bytes");
            }
            return std::nullopt;
        }
        const size_t nl_at = static_cast<size_t>(static_cast<const char*>(nl) - buf_.data());
        std::string_view line(buf_.data() + pos_, nl_at - pos_);
        pos_ = nl_at + 1;
        scan_from_ = pos_;
        if (line.empty() || line.back() != '\r')
            return header_error("header line not terminated by CRLF");
        line.remove_suffix(1);
        if (line.size() > limits_.max_header_line)
            return header_error("header line longer than " +
                                std::to_string(limits_.max_header_line) + " bytes");

        if (line.empty()) {  // end of the header block
            if (!have_length_) return header_error("header block without Content-Length");
            if (charset_bad_) {
                const size_t len = body_len_;
                reset_headers();
                body_len_ = len;
                state_ = State::kSkipBody;
                return ReadResult{ReadResult::Kind::kError,
                                  {},
                                  "Content-Type charset is not utf-8; message skipped"};
            }
            state_ = State::kBody;
            return std::nullopt;
        }
        if (++header_lines_ > limits_.max_header_lines)
            return header_error("more than " + std::to_string(limits_.max_header_lines) +
                                " header lines");
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0)
            return header_error("header line without a name and ':'");
        const std::string_view name = line.substr(0, colon);
        const std::string_view value = trim(line.substr(colon + 1));
        if (iequals(name, kContentLength)) {
            if (value.empty()) return header_error("empty Content-Length");
            // Saturating parse: any value past max_body is equally fatal, however long.
            uint64_t n = 0;
            for (char c : value) {
                if (c < '0' || c > '9')
                    return header_error("Content-Length is not a non-negative integer: '" +
                                        std::string(value.substr(0, 64)) + "'");
                const uint64_t digit = static_cast<uint64_t>(c - '0');
                n = n > (std::numeric_limits<uint64_t>::max() - digit) / 10
                        ? std::numeric_limits<uint64_t>::max()
                        : n * 10 + digit;
            }
            if (n > limits_.max_body) {
                state_ = State::kFatal;
                buf_.clear();
                pos_ = 0;
                return ReadResult{ReadResult::Kind::kFatal,
                                  {},
                                  "Content-Length " + std::string(value.substr(0, 32)) +
                                      " exceeds the limit of " + std::to_string(limits_.max_body) +
                                      " bytes"};
            }
            if (have_length_ && body_len_ != n)
                return header_error("two different Content-Length headers");
            have_length_ = true;
            body_len_ = static_cast<size_t>(n);
        } else if (iequals(name, kContentType)) {
            if (!charset_ok(value)) charset_bad_ = true;
        }
        // Other headers are ignored: the spec defines none, proxies may add some.
    }
}

std::optional<ReadResult> MessageReader::next() {
    for (;;) {
        switch (state_) {
            case State::kFatal:
                return std::nullopt;
            case State::kHeaders: {
                auto r = parse_headers();
                if (r) return r;
                if (state_ != State::kBody) return std::nullopt;
                break;
            }
            case State::kBody: {
                if (buf_.size() - pos_ < body_len_) return std::nullopt;
                ReadResult r{ReadResult::Kind::kMessage, buf_.substr(pos_, body_len_), {}};
                pos_ += body_len_;
                reset_headers();
                state_ = State::kHeaders;
                return r;
            }
            case State::kSkipBody: {
                const size_t n = std::min(body_len_, buf_.size() - pos_);
                pos_ += n;
                body_len_ -= n;
                if (body_len_ > 0) return std::nullopt;
                reset_headers();
                state_ = State::kHeaders;
                break;
            }
            case State::kResync: {
                // Look for the next "Content-Length:" anywhere: after a bad header the next
                // message's header follows the skipped body on the same line.
                const size_t n = kContentLengthColon.size();
                size_t found = std::string::npos;
                for (size_t i = pos_; i + n <= buf_.size(); ++i) {
                    if (lower(buf_[i]) == 'c' &&
                        iequals(std::string_view(buf_.data() + i, n), kContentLengthColon)) {
                        found = i;
                        break;
                    }
                }
                if (found == std::string::npos) {
                    // Keep only what could be the start of the header we are looking for.
                    if (buf_.size() - pos_ >= n) pos_ = buf_.size() - (n - 1);
                    return std::nullopt;
                }
                pos_ = found;
                reset_headers();
                state_ = State::kHeaders;
                break;
            }
        }
    }
}

std::string frame_message(std::string_view body) {
    std::string out = "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    out.append(body.data(), body.size());
    return out;
}

FdTransport::FdTransport(int in_fd, int out_fd, ReaderLimits limits)
    : in_fd_(in_fd), out_fd_(out_fd), reader_(limits) {}

ReadResult FdTransport::read() {
    for (;;) {
        if (auto r = reader_.next()) return std::move(*r);
        if (reader_.fatal()) return ReadResult{ReadResult::Kind::kFatal, {}, "stream closed"};
        if (eof_) return ReadResult{ReadResult::Kind::kEof, {}, {}};
        char chunk[64 * 1024];
        const ssize_t n = ::read(in_fd_, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            eof_ = true;
            continue;
        }
        reader_.feed(std::string_view(chunk, static_cast<size_t>(n)));
    }
}

bool FdTransport::write(std::string_view body) {
    const std::string framed = frame_message(body);
    std::lock_guard<std::mutex> lock(write_mutex_);
    size_t done = 0;
    bool socket = true;
    while (done < framed.size()) {
        ssize_t n;
        if (socket) {
            // send() with MSG_NOSIGNAL: a vanished peer is an error value, not SIGPIPE.
            n = ::send(out_fd_, framed.data() + done, framed.size() - done, MSG_NOSIGNAL);
            if (n < 0 && errno == ENOTSOCK) {
                socket = false;
                continue;
            }
        } else {
            n = ::write(out_fd_, framed.data() + done, framed.size() - done);
        }
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += static_cast<size_t>(n);
    }
    return true;
}

}  // namespace latent::lsp
