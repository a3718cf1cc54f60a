// GgufFile and GgufWriter: round trips, and every validation the reader promises
// against hand-built hostile files (each must be an error, never a crash).
#include "engine/gguf.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "engine/gguf_writer.h"
#include "tests/support/test_models.h"

namespace latent::engine {
namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Expected<std::unique_ptr<GgufFile>> parse(const std::string& bytes) {
    return GgufFile::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "t.gguf");
}

// Builds raw GGUF bytes field by field.
struct Bytes {
    std::string b;
    Bytes& u32(uint32_t v) {
        b.append(reinterpret_cast<char*>(&v), 4);
        return *this;
    }
    Bytes& i32(int32_t v) {
        b.append(reinterpret_cast<char*>(&v), 4);
        return *this;
    }
    Bytes& u64(uint64_t v) {
        b.append(reinterpret_cast<char*>(&v), 8);
        return *this;
    }
    Bytes& str(const std::string& s) {
        u64(s.size());
        b += s;
        return *this;
    }
    Bytes& header(int64_t n_tensors, int64_t n_kv, uint32_t version = 3) {
        return u32(0x46554747).u32(version).u64(n_tensors).u64(n_kv);
    }
    Bytes& pad(size_t align = 32) {
        while (b.size() % align) b += '\0';
        return *this;
    }
    Bytes& zeros(size_t n) {
        b.append(n, '\0');
        return *this;
    }
};

void expect_error(const std::string& bytes, const std::string& needle) {
    auto f = parse(bytes);
    ASSERT_FALSE(f.ok()) << "accepted a file that should fail with: " << needle;
    EXPECT_NE(f.error().message.find(needle), std::string::npos) << f.error().message;
    EXPECT_EQ(f.error().message.rfind("t.gguf: ", 0), 0u) << "error must name the file";
}

TEST(GgufWriter, RoundTripsEveryValueTypeAndTensorData) {
    const std::string path = test::temp_dir() + "/roundtrip.gguf";
    GgufWriter w;
    w.set_string("general.architecture", "deepseek2");
    w.set_u32("a.u32", 4000000000u);
    w.set_i32("a.i32", -7);
    w.set_f32("a.f32", 0.0707f);
    w.set_bool("a.bool", true);
    w.set_string_array("a.strs", {"x", "", "Ġhello"});
    w.set_i32_array("a.ints", {1, -2, 3});
    GgufValue u64;
    u64.type = GgufType::kUint64;
    u64.u = 1ull << 40;
    w.set_value("a.u64", u64);
    w.add_tensor("t0", {32, 3}, GgmlType::kQ8_0);
    w.add_tensor("t1", {5}, GgmlType::kF32);
    ASSERT_TRUE(w.begin(path).ok());
    std::vector<uint8_t> q8(34 * 3);
    for (size_t i = 0; i < q8.size(); ++i) q8[i] = static_cast<uint8_t>(i * 7);
    ASSERT_TRUE(w.write(q8.data(), 50).ok());  // in pieces
    ASSERT_TRUE(w.write(q8.data() + 50, q8.size() - 50).ok());
    const float f[5] = {1, 2, 3, 4, 5};
    ASSERT_TRUE(w.write(f, sizeof f).ok());
    ASSERT_TRUE(w.finish().ok());

    auto file = GgufFile::open(path);
    ASSERT_TRUE(file.ok()) << file.error().message;
    const GgufFile& g = **file;
    EXPECT_EQ(g.version(), 3u);
    EXPECT_EQ(*g.get_string("general.architecture").value(), "deepseek2");
    EXPECT_EQ(*g.get_uint("a.u32").value(), 4000000000u);
    EXPECT_EQ(g.find("a.i32")->i, -7);
    EXPECT_FLOAT_EQ(static_cast<float>(*g.get_float("a.f32").value()), 0.0707f);
    EXPECT_TRUE(*g.get_bool("a.bool").value());
    EXPECT_EQ(*g.get_uint("a.u64").value(), 1ull << 40);
    EXPECT_EQ(g.find("a.strs")->arr_str, (std::vector<std::string>{"x", "", "Ġhello"}));
    EXPECT_EQ(g.find("a.ints")->arr_int, (std::vector<int64_t>{1, -2, 3}));
    EXPECT_FALSE(g.get_uint("a.f32").ok()) << "wrong kind must be an error";
    EXPECT_FALSE(g.get_uint("missing").value().has_value());

    const GgufTensorInfo* t0 = g.find_tensor("t0");
    const GgufTensorInfo* t1 = g.find_tensor("t1");
    ASSERT_TRUE(t0 && t1);
    EXPECT_EQ(t0->n_bytes, 102u);
    EXPECT_EQ(t1->offset, 128u) << "offsets are padded to the alignment";
    EXPECT_EQ(std::memcmp(t0->data, q8.data(), q8.size()), 0);
    EXPECT_EQ(std::memcmp(t1->data, f, sizeof f), 0);
    EXPECT_EQ(t1->data - t0->data, 128);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t0->data) % 32, 0u);
}

TEST(GgufWriter, RefusesShortOrLongTensorData) {
    GgufWriter w;
    w.add_tensor("t", {4}, GgmlType::kF32);
    const std::string path = test::temp_dir() + "/short.gguf";
    ASSERT_TRUE(w.begin(path).ok());
    const float f[8] = {};
    ASSERT_TRUE(w.write(f, 8).ok());
    EXPECT_FALSE(w.finish().ok());
    GgufWriter w2;
    w2.add_tensor("t", {4}, GgmlType::kF32);
    ASSERT_TRUE(w2.begin(path).ok());
    EXPECT_FALSE(w2.write(f, sizeof f).ok());
}

TEST(GgufReader, EveryTruncationOfARealFileIsAnError) {
    MakeModelOptions o;
    o.preset = "tiny";
    o.quant = GgmlType::kQ8_0;
    const std::string bytes = read_file(test::make_test_model(o));
    ASSERT_GT(bytes.size(), 1000u);
    ASSERT_TRUE(parse(bytes).ok());
    // Every prefix up to the end of the tensor infos, then a stride through the data.
    const size_t data_offset = (*parse(bytes))->data_offset();
    size_t step = 1;
    for (size_t n = 0; n < bytes.size(); n += step) {
        if (n > data_offset + 64) step = 997;
        auto f = parse(bytes.substr(0, n));
        ASSERT_FALSE(f.ok()) << "a file truncated to " << n << " bytes was accepted";
    }
}

TEST(GgufReader, RejectsHostileHeaders) {
    expect_error("GGU", "not a GGUF");
    expect_error(Bytes().u32(0x46554746).u32(3).u64(0).u64(0).b, "not a GGUF");
    expect_error(Bytes().header(0, 0, 1).b, "unsupported GGUF version 1");
    expect_error(Bytes().header(0, 0, 99).b, "version 99");
    expect_error(Bytes().header(0, int64_t(1) << 60).b, "metadata count");
    expect_error(Bytes().header(-1, 0).b, "tensor count");
    expect_error(Bytes().header(int64_t(1) << 40, 0).b, "tensor count");
}

TEST(GgufReader, RejectsHostileMetadata) {
    // String length far past the end of the file.
    expect_error(Bytes().header(0, 1).u64(1ull << 62).zeros(32).b, "exceeds file");
    // Unknown value type.
    expect_error(Bytes().header(0, 1).str("k").i32(13).u32(0).b, "unknown type 13");
    // Array whose count cannot fit in the file.
    expect_error(Bytes().header(0, 1).str("k").i32(9).i32(4).u64(1ull << 50).b, "exceeds file");
    // Nested arrays.
    expect_error(Bytes().header(0, 1).str("k").i32(9).i32(9).u64(1).b, "nested");
    // Duplicate key.
    expect_error(Bytes().header(0, 2).str("k").i32(4).u32(1).str("k").i32(4).u32(2).b,
                 "duplicate metadata key 'k'");
    // Bool that is not 0/1.
    expect_error(
        Bytes().header(0, 1).str("k").i32(7).b + std::string(1, '\x05') + std::string(20, '\0'),
        "bool");
    // Alignment not a power of two.
    expect_error(Bytes().header(0, 1).str("general.alignment").i32(4).u32(24).b, "power of two");
    expect_error(Bytes().header(0, 1).str("general.alignment").i32(4).u32(0).b, "power of two");
}

Bytes one_tensor(const std::string& name, uint32_t n_dims, std::vector<int64_t> ne, uint32_t type,
                 uint64_t offset) {
    Bytes b;
    b.header(1, 0).str(name).u32(n_dims);
    for (int64_t d : ne) b.u64(static_cast<uint64_t>(d));
    b.u32(type).u64(offset);
    return b;
}

TEST(GgufReader, RejectsHostileTensorInfos) {
    expect_error(one_tensor("t", 5, {1, 1, 1, 1, 1}, 0, 0).pad().zeros(64).b, "5 dimensions");
    expect_error(one_tensor("t", 0, {}, 0, 0).pad().zeros(64).b, "0 dimensions");
    expect_error(one_tensor("t", 1, {-4}, 0, 0).pad().zeros(64).b, "negative");
    expect_error(one_tensor("t", 1, {4}, 77, 0).pad().zeros(64).b, "unknown ggml type 77");
    expect_error(one_tensor("t", 1, {33}, 8, 0).pad().zeros(64).b, "not a multiple");
    expect_error(one_tensor("t", 2, {32, int64_t(1) << 62}, 0, 0).pad().zeros(64).b, "overflows");
    expect_error(one_tensor("t", 1, {4}, 0, 3).pad().zeros(64).b, "not aligned");
    expect_error(one_tensor("t", 1, {64}, 0, 0).pad().zeros(64).b, "past the end");
    expect_error(one_tensor("t", 1, {4}, 0, 1ull << 63).pad().zeros(64).b, "past the end");
    expect_error(one_tensor(std::string(64, 'n'), 1, {4}, 0, 0).pad().zeros(64).b,
                 "longer than 63");
    // Two tensors overlapping, and a duplicate name.
    Bytes b;
    b.header(2, 0).str("a").u32(1).u64(16).u32(0).u64(0).str("b").u32(1).u64(16).u32(0).u64(32);
    expect_error(b.pad().zeros(128).b, "overlap");
    Bytes d;
    d.header(2, 0).str("a").u32(1).u64(8).u32(0).u64(0).str("a").u32(1).u64(8).u32(0).u64(32);
    expect_error(d.pad().zeros(128).b, "duplicate tensor name 'a'");
}

TEST(GgufReader, AcceptsAValidHandBuiltFile) {
    auto f = parse(one_tensor("t", 2, {4, 2}, 0, 0).pad().zeros(32).b);
    ASSERT_TRUE(f.ok()) << f.error().message;
    EXPECT_EQ((*f)->tensors()[0].n_bytes, 32u);
    EXPECT_EQ((*f)->tensors()[0].shape_string(), "[4, 2]");
}

TEST(GgufReader, OpenNamesTheFileWhenItIsMissingOrADirectory) {
    auto f = GgufFile::open("/nonexistent/x.gguf");
    ASSERT_FALSE(f.ok());
    EXPECT_NE(f.error().message.find("/nonexistent/x.gguf"), std::string::npos);
    auto d = GgufFile::open("/tmp");
    ASSERT_FALSE(d.ok());
    EXPECT_NE(d.error().message.find("not a regular file"), std::string::npos);
}

}  // namespace
}  // namespace latent::engine
