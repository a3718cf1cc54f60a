// MessageReader (the base protocol parser, fed in arbitrary chunks) and FdTransport over
// real descriptors (socketpair and pipe).
#include "lsp/transport.h"

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace latent::lsp {
namespace {

using Kind = ReadResult::Kind;

// Feeds `input` in chunks of `chunk` bytes and drains the reader after each chunk.
std::vector<ReadResult> read_all(MessageReader& reader, std::string_view input, size_t chunk) {
    std::vector<ReadResult> out;
    for (size_t i = 0; i < input.size(); i += chunk) {
        reader.feed(input.substr(i, chunk));
        while (auto r = reader.next()) out.push_back(std::move(*r));
    }
    return out;
}

std::vector<ReadResult> read_all(std::string_view input, size_t chunk = 1 << 20,
                                 ReaderLimits limits = {}) {
    MessageReader reader(limits);
    return read_all(reader, input, chunk);
}

// "M:<body>" or "E" or "F" per result, for compact expectations.
std::vector<std::string> summary(const std::vector<ReadResult>& results) {
    std::vector<std::string> out;
    for (const auto& r : results) {
        switch (r.kind) {
            case Kind::kMessage:
                out.push_back("M:" + r.body);
                break;
            case Kind::kError:
                out.push_back("E");
                break;
            case Kind::kFatal:
                out.push_back("F");
                break;
            case Kind::kEof:
                out.push_back("EOF");
                break;
        }
    }
    return out;
}

using Summary = std::vector<std::string>;

const std::string kMsg1 = frame_message(R"({"jsonrpc":"2.0","method":"a"})");
const std::string kMsg2 = frame_message(R"({"jsonrpc":"2.0","id":1,"method":"b"})");

TEST(MessageReader, OneMessage) {
    EXPECT_EQ(summary(read_all(kMsg1)), (Summary{R"(M:{"jsonrpc":"2.0","method":"a"})"}));
}

TEST(MessageReader, ByteByByte) {
    EXPECT_EQ(summary(read_all(kMsg1 + kMsg2, 1)),
              (Summary{R"(M:{"jsonrpc":"2.0","method":"a"})",
                       R"(M:{"jsonrpc":"2.0","id":1,"method":"b"})"}));
}

TEST(MessageReader, EveryChunkSizeGivesTheSameMessages) {
    const std::string input = kMsg1 + kMsg2 + kMsg1;
    const Summary expected = summary(read_all(input));
    ASSERT_EQ(expected.size(), 3u);
    for (size_t chunk = 1; chunk <= input.size(); ++chunk)
        EXPECT_EQ(summary(read_all(input, chunk)), expected) << "chunk " << chunk;
}

TEST(MessageReader, TwoMessagesInOneChunk) {
    MessageReader reader;
    reader.feed(kMsg1 + kMsg2);
    auto a = reader.next();
    auto b = reader.next();
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->body, R"({"jsonrpc":"2.0","method":"a"})");
    EXPECT_EQ(b->body, R"({"jsonrpc":"2.0","id":1,"method":"b"})");
    EXPECT_FALSE(reader.next());
    EXPECT_EQ(reader.buffered(), 0u);
}

TEST(MessageReader, WaitsForTheWholeBody) {
    MessageReader reader;
    reader.feed("Content-Length: 10\r\n\r\n12345");
    EXPECT_FALSE(reader.next());
    reader.feed("67890");
    auto r = reader.next();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "1234567890");
}

TEST(MessageReader, ZeroLengthBodyIsAnEmptyMessage) {
    EXPECT_EQ(summary(read_all("Content-Length: 0\r\n\r\n" + kMsg1)),
              (Summary{"M:", R"(M:{"jsonrpc":"2.0","method":"a"})"}));
}

TEST(MessageReader, HeaderNamesAreCaseInsensitiveAndValuesTrimmed) {
    EXPECT_EQ(summary(read_all("content-LENGTH:   2  \r\n\r\n{}")), (Summary{"M:{}"}));
}

TEST(MessageReader, ContentTypeAccepted) {
    EXPECT_EQ(summary(read_all("Content-Length: 2\r\nContent-Type: application/vscode-jsonrpc; "
                               "charset=utf-8\r\n\r\n{}")),
              (Summary{"M:{}"}));
    // Content-Type first, and the old "utf8" spelling the spec still accepts.
    EXPECT_EQ(summary(read_all("Content-Type: application/vscode-jsonrpc; charset=utf8\r\n"
                               "Content-Length: 2\r\n\r\n{}")),
              (Summary{"M:{}"}));
}

TEST(MessageReader, OtherCharsetSkipsExactlyThatBody) {
    EXPECT_EQ(summary(read_all("Content-Length: 2\r\nContent-Type: text/plain; "
                               "charset=latin1\r\n\r\n{}" +
                               kMsg1)),
              (Summary{"E", R"(M:{"jsonrpc":"2.0","method":"a"})"}));
}

TEST(MessageReader, UnknownHeadersAreIgnored) {
    EXPECT_EQ(summary(read_all("X-Proxy: yes\r\nContent-Length: 2\r\n\r\n{}")), (Summary{"M:{}"}));
}

TEST(MessageReader, MissingContentLengthIsAnErrorThenResync) {
    EXPECT_EQ(summary(read_all("Content-Type: x\r\n\r\n{\"junk\":1}\r\n" + kMsg1, 3)),
              (Summary{"E", R"(M:{"jsonrpc":"2.0","method":"a"})"}));
}

TEST(MessageReader, NonNumericLength) {
    EXPECT_EQ(summary(read_all("Content-Length: ten\r\n\r\n0123456789" + kMsg2)),
              (Summary{"E", R"(M:{"jsonrpc":"2.0","id":1,"method":"b"})"}));
    EXPECT_EQ(summary(read_all("Content-Length: 1e3\r\n\r\n" + kMsg2)),
              (Summary{"E", R"(M:{"jsonrpc":"2.0","id":1,"method":"b"})"}));
    EXPECT_EQ(summary(read_all("Content-Length:\r\n\r\n" + kMsg2)),
              (Summary{"E", R"(M:{"jsonrpc":"2.0","id":1,"method":"b"})"}));
}

TEST(MessageReader, NegativeLength) {
    EXPECT_EQ(summary(read_all("Content-Length: -5\r\n\r\nhello" + kMsg2)),
              (Summary{"E", R"(M:{"jsonrpc":"2.0","id":1,"method":"b"})"}));
}

TEST(MessageReader, HugeLengthIsFatalAndAllocatesNothing) {
    MessageReader reader;
    auto results = read_all(reader, "Content-Length: 9999999999999999\r\n\r\n" + kMsg1, 1);
    EXPECT_EQ(summary(results), (Summary{"F"}));
    EXPECT_TRUE(reader.fatal());
    EXPECT_EQ(reader.buffered(), 0u);
    reader.feed(kMsg1);
    EXPECT_FALSE(reader.next());
}

TEST(MessageReader, LengthPastUint64IsFatal) {
    EXPECT_EQ(summary(read_all("Content-Length: 99999999999999999999999999999\r\n\r\n")),
              (Summary{"F"}));
}

TEST(MessageReader, OversizeBodyIsFatal) {
    ReaderLimits limits;
    limits.max_body = 16;
    EXPECT_EQ(summary(read_all(frame_message(std::string(16, 'x')), 1 << 20, limits)),
              (Summary{"M:" + std::string(16, 'x')}));
    EXPECT_EQ(summary(read_all(frame_message(std::string(17, 'x')), 1 << 20, limits)),
              (Summary{"F"}));
}

TEST(MessageReader, HeaderLineTooLongIsReportedBeforeItEnds) {
    MessageReader reader;
    // A peer that never ends its header line: the error comes at the cap, and the memory
    // held stays bounded however much more it sends.
    std::vector<ReadResult> results = read_all(reader, "X-Junk: " + std::string(20000, 'a'), 1000);
    EXPECT_EQ(summary(results), (Summary{"E"}));
    EXPECT_LT(reader.buffered(), 1100u);
    results = read_all(reader, std::string(50000, 'b') + "\r\n" + kMsg1, 1000);
    EXPECT_LT(reader.buffered(), 1100u);
    EXPECT_EQ(summary(results), (Summary{R"(M:{"jsonrpc":"2.0","method":"a"})"}));
}

TEST(MessageReader, HeaderLineAtTheCapIsFine) {
    ReaderLimits limits;
    limits.max_header_line = 64;
    const std::string line = "X-Pad: " + std::string(64 - 7, 'p');
    ASSERT_EQ(line.size(), 64u);
    EXPECT_EQ(summary(read_all(line + "\r\nContent-Length: 2\r\n\r\n{}", 1, limits)),
              (Summary{"M:{}"}));
    EXPECT_EQ(summary(read_all(line + "p\r\nContent-Length: 2\r\n\r\n{}" + kMsg1, 1, limits)),
              (Summary{"E", "M:{}", R"(M:{"jsonrpc":"2.0","method":"a"})"}));
}

TEST(MessageReader, TooManyHeaderLines) {
    std::string headers;
    for (int i = 0; i < 40; ++i) headers += "X-H" + std::to_string(i) + ": v\r\n";
    EXPECT_EQ(summary(read_all(headers + "Content-Length: 2\r\n\r\n{}")), (Summary{"E", "M:{}"}));
    std::string ok;
    for (int i = 0; i < 31; ++i) ok += "X-H" + std::to_string(i) + ": v\r\n";
    EXPECT_EQ(summary(read_all(ok + "Content-Length: 2\r\n\r\n{}")), (Summary{"M:{}"}));
}

TEST(MessageReader, BareLineFeedsAreRejected) {
    // The spec terminates header fields with \r\n; a bare \n is malformed.
    EXPECT_EQ(summary(read_all("Content-Length: 2\n\n{}" + kMsg1)),
              (Summary{"E", R"(M:{"jsonrpc":"2.0","method":"a"})"}));
    EXPECT_EQ(summary(read_all("Content-Length: 2\r\n\n{}" + kMsg1)),
              (Summary{"E", R"(M:{"jsonrpc":"2.0","method":"a"})"}));
}

TEST(MessageReader, LineWithoutColon) {
    EXPECT_EQ(summary(read_all("Content-Length 2\r\n\r\n{}" + kMsg1)),
              (Summary{"E", R"(M:{"jsonrpc":"2.0","method":"a"})"}));
}

TEST(MessageReader, ConflictingLengths) {
    EXPECT_EQ(summary(read_all("Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}" + kMsg1)),
              (Summary{"E", R"(M:{"jsonrpc":"2.0","method":"a"})"}));
    // Repeating the same value is harmless.
    EXPECT_EQ(summary(read_all("Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}")),
              (Summary{"M:{}"}));
}

TEST(MessageReader, GarbageBeforeAMessageIsSkipped) {
    EXPECT_EQ(summary(read_all("garbage\r\nmore garbage\r\n" + kMsg1, 1)),
              (Summary{"E", R"(M:{"jsonrpc":"2.0","method":"a"})"}));
}

TEST(MessageReader, BodyBytesAreOpaque) {
    // CR, LF, NUL and header-like text inside a body are just bytes.
    const std::string body = std::string("a\r\n\r\nContent-Length: 5\r\n\0b", 26);
    EXPECT_EQ(summary(read_all(frame_message(body) + kMsg1, 1)),
              (Summary{"M:" + body, R"(M:{"jsonrpc":"2.0","method":"a"})"}));
}

TEST(FrameMessage, Format) {
    EXPECT_EQ(frame_message("{}"), "Content-Length: 2\r\n\r\n{}");
    EXPECT_EQ(frame_message(""), "Content-Length: 0\r\n\r\n");
}

// Two connected descriptors; closes whatever is still open.
struct FdPair {
    int a = -1, b = -1;
    ~FdPair() {
        if (a >= 0) ::close(a);
        if (b >= 0) ::close(b);
    }
    void close_a() {
        ::close(a);
        a = -1;
    }
};

TEST(FdTransport, SocketPairRoundTripIncludingALargeMessage) {
    FdPair fds;
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fds.a = sv[0];
    fds.b = sv[1];
    FdTransport writer(-1, fds.a);
    FdTransport reader(fds.b, -1);
    const std::string big(3u << 20, 'z');  // larger than the socket buffer: needs a reader
    std::thread t([&] {
        EXPECT_TRUE(writer.write("{\"n\":1}"));
        EXPECT_TRUE(writer.write(big));
        EXPECT_TRUE(writer.write("{\"n\":2}"));
        fds.close_a();
    });
    ReadResult r1 = reader.read();
    ReadResult r2 = reader.read();
    ReadResult r3 = reader.read();
    t.join();
    ReadResult r4 = reader.read();
    EXPECT_EQ(r1.kind, Kind::kMessage);
    EXPECT_EQ(r1.body, "{\"n\":1}");
    EXPECT_EQ(r2.kind, Kind::kMessage);
    EXPECT_EQ(r2.body, big);
    EXPECT_EQ(r3.body, "{\"n\":2}");
    EXPECT_EQ(r4.kind, Kind::kEof);
    EXPECT_EQ(reader.read().kind, Kind::kEof);
}

TEST(FdTransport, PipeWithAHeaderErrorInTheMiddle) {
    FdPair fds;
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    fds.b = p[0];
    fds.a = p[1];
    const std::string input = kMsg1 + "Content-Length: x\r\n\r\n" + kMsg2;
    ASSERT_EQ(::write(fds.a, input.data(), input.size()), static_cast<ssize_t>(input.size()));
    fds.close_a();
    FdTransport reader(fds.b, -1);
    EXPECT_EQ(reader.read().kind, Kind::kMessage);
    EXPECT_EQ(reader.read().kind, Kind::kError);
    ReadResult r = reader.read();
    EXPECT_EQ(r.kind, Kind::kMessage);
    EXPECT_EQ(r.body, R"({"jsonrpc":"2.0","id":1,"method":"b"})");
    EXPECT_EQ(reader.read().kind, Kind::kEof);
}

TEST(FdTransport, WriteToAClosedSocketFailsWithoutSignal) {
    FdPair fds;
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fds.a = sv[0];
    ::close(sv[1]);
    FdTransport writer(-1, fds.a);
    EXPECT_FALSE(writer.write("{}"));
}

}  // namespace
}  // namespace latent::lsp
