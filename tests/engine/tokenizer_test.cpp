// Tests for engine/tokenizer.h and engine/tokenizer_json.h: DeepSeek-V3 ids equal to the npm
// tokenizer's on the golden cases (scripts/make-golden-tokens), byte-exact round trips of
// any bytes, special-token handling, and hand-checked splits of the other pre-types.
#include "engine/tokenizer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "engine/tokenizer_json.h"

namespace latent::engine {
namespace {

constexpr int32_t kV3Vocab = 129280;  // config.json vocab_size of DeepSeek-V3

std::string share_file(const char* name) {
    return std::string(LATENT_SHARE_DIR) + "/deepseek-v3/" + name;
}
std::string golden_path() { return std::string(LATENT_TEST_DATA_DIR) + "/tokenizer-golden.jsonl"; }

std::string base64_decode(std::string_view in) {
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        const int v = value(c);
        if (v < 0) continue;  // '=' padding
        acc = (acc << 6) | uint32_t(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += char((acc >> bits) & 0xFF);
        }
    }
    return out;
}

// The V3 tokenizer from the extracted npm files, loaded once for the whole suite.
// Missing data is a failure: the suite must not pass without its reference files.
const Tokenizer* v3() {
    static const std::optional<Tokenizer> tok = []() -> std::optional<Tokenizer> {
        const std::string json = share_file("tokenizer.json");
        const std::string config = share_file("tokenizer_config.json");
        if (!std::filesystem::exists(json) || !std::filesystem::exists(config)) return std::nullopt;
        auto vocab = load_hf_tokenizer_json(json, config, kV3Vocab);
        if (!vocab) {
            ADD_FAILURE() << vocab.error().message;
            return std::nullopt;
        }
        auto t = Tokenizer::create(*vocab);
        if (!t) {
            ADD_FAILURE() << t.error().message;
            return std::nullopt;
        }
        return std::move(*t);
    }();
    return tok ? &*tok : nullptr;
}

#define REQUIRE_V3(tok)                                                                   \
    const Tokenizer* tok = v3();                                                          \
    ASSERT_NE(tok, nullptr) << "DeepSeek-V3 tokenizer missing under " << LATENT_SHARE_DIR \
                            << "/deepseek-v3/: run scripts/setup (scripts/extract-tokenizer)"

struct GoldenCase {
    std::string name;
    std::string text;
    std::vector<int32_t> ids;
    bool from_file = false;
};

// Loads tokenizer-golden.jsonl once. An empty result means it is missing.
const std::vector<GoldenCase>& golden() {
    static const std::vector<GoldenCase> cases = [] {
        std::vector<GoldenCase> out;
        std::ifstream in(golden_path());
        std::string line;
        while (std::getline(in, line)) {
            if (line.empty()) continue;
            const auto j = nlohmann::json::parse(line);
            out.push_back({j.at("name").get<std::string>(),
                           base64_decode(j.at("text_b64").get<std::string>()),
                           j.at("ids").get<std::vector<int32_t>>(), !j.at("file").is_null()});
        }
        return out;
    }();
    return cases;
}

#define REQUIRE_GOLDEN(cases)                                                 \
    const auto& cases = golden();                                             \
    ASSERT_FALSE(cases.empty()) << golden_path()                              \
                                << " is missing or empty: run scripts/setup " \
                                   "(scripts/make-golden-tokens)"

std::string show(const std::string& bytes) {
    std::string out;
    for (unsigned char c : bytes) {
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", c);
            out += buf;
        } else {
            out += char(c);
        }
    }
    return out;
}

// "id 'piece'" for ids[from, to).
std::string describe(const Tokenizer& tok, const std::vector<int32_t>& ids, size_t from,
                     size_t to) {
    std::string out;
    for (size_t i = from; i < std::min(to, ids.size()); ++i) {
        out += std::to_string(ids[i]) + " '" + show(tok.token_to_piece(ids[i])) + "' ";
    }
    return out;
}

// Empty when equal; else where they first differ, with the ids and text around it.
std::string first_mismatch(const Tokenizer& tok, const std::vector<int32_t>& want,
                           const std::vector<int32_t>& got) {
    if (want == got) return {};
    size_t i = 0;
    while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
    const size_t from = i >= 4 ? i - 4 : 0;
    const auto at = [&](size_t k) {
        return want.begin() + std::ptrdiff_t(std::min(k, want.size()));
    };
    const std::string before = tok.decode(std::vector<int32_t>(want.begin(), at(i)));
    const std::string after = tok.decode(std::vector<int32_t>(at(i), at(i + 8)));
    std::ostringstream s;
    s << "first mismatch at id #" << i << " (expected " << want.size() << " ids, got " << got.size()
      << "), byte offset " << before.size() << "\n  text: '"
      << show(before.substr(before.size() > 40 ? before.size() - 40 : 0)) << "' | '" << show(after)
      << "'\n  expected: " << describe(tok, want, from, i + 6)
      << "\n  got:      " << describe(tok, got, from, i + 6);
    return s.str();
}

// ---------------------------------------------------------------------------------------
// tokenizer_json: what llama.cpp's converter writes for DeepSeek-V3.

TEST(TokenizerJson, LoadsDeepSeekV3LikeTheConverter) {
    auto vocab = load_hf_tokenizer_json(share_file("tokenizer.json"),
                                        share_file("tokenizer_config.json"), kV3Vocab);
    ASSERT_TRUE(vocab.ok()) << vocab.error().message << " (run scripts/setup)";
    const Vocab& v = *vocab;
    EXPECT_EQ(v.model, "gpt2");
    EXPECT_EQ(v.pre, "deepseek-v3");
    ASSERT_EQ(v.tokens.size(), size_t(kV3Vocab));
    ASSERT_EQ(v.types.size(), size_t(kV3Vocab));
    EXPECT_EQ(v.merges.size(), 127741u);
    EXPECT_EQ(v.merges[0], "Ġ t");
    EXPECT_EQ(v.tokens[0], "<｜begin▁of▁sentence｜>");
    EXPECT_EQ(v.tokens[1], "<｜end▁of▁sentence｜>");
    EXPECT_EQ(v.types[0], TokenType::kControl);
    EXPECT_EQ(v.types[2], TokenType::kControl);
    EXPECT_EQ(v.types[3], TokenType::kNormal);
    EXPECT_EQ(v.types[127999], TokenType::kNormal);
    // Added tokens: the place holders are special; FIM/chat/tool tokens are not, but look
    // special (<｜...｜>), so the converter makes every one of them CONTROL.
    for (int32_t id = 128000; id <= 128814; ++id) {
        EXPECT_EQ(v.types[size_t(id)], TokenType::kControl) << id << " " << v.tokens[size_t(id)];
    }
    EXPECT_EQ(v.tokens[128800], "<｜fim▁hole｜>");
    EXPECT_EQ(v.tokens[128805], "<|EOT|>");
    EXPECT_EQ(v.tokens[128815], "[PAD128815]");
    EXPECT_EQ(v.types[128815], TokenType::kUnused);
    EXPECT_EQ(v.tokens[129279], "[PAD129279]");
    EXPECT_EQ(v.bos_id, 0);
    EXPECT_EQ(v.eos_id, 1);
    EXPECT_EQ(v.pad_id, 1);  // pad_token is <｜end▁of▁sentence｜>
    EXPECT_TRUE(v.add_bos);
    EXPECT_FALSE(v.add_eos);
    EXPECT_EQ(v.chat_template.rfind("{% if not add_generation_prompt is defined %}", 0), 0u);
}

TEST(TokenizerJson, WithoutConfigKeepsDefaultsAndSizesToTheVocab) {
    auto vocab = load_hf_tokenizer_json(share_file("tokenizer.json"), "", 0);
    ASSERT_TRUE(vocab.ok()) << vocab.error().message << " (run scripts/setup)";
    EXPECT_EQ(vocab->tokens.size(), 128815u);  // 128000 BPE + 815 added ids
    EXPECT_EQ(vocab->bos_id, 0);
    EXPECT_EQ(vocab->eos_id, 1);
    EXPECT_TRUE(vocab->chat_template.empty());
}

class TempDir {
public:
    TempDir() {
        path_ = std::filesystem::temp_directory_path() /
                ("latent-tokenizer-test-" +
                 std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + "-" +
                 std::to_string(counter_++));
        std::filesystem::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    std::string write(const std::string& name, const std::string& text) const {
        const auto p = path_ / name;
        std::ofstream(p, std::ios::binary) << text;
        return p.string();
    }

private:
    static inline int counter_ = 0;
    std::filesystem::path path_;
};

// A small tokenizer.json with V3's pre-tokenizer: bytes "a", "b", "Ġ" and merges.
nlohmann::json tiny_tokenizer_json() {
    nlohmann::json pre = {{"type", "Sequence"}, {"pretokenizers", nlohmann::json::array()}};
    for (const std::string& re : pre_tokenizer_regexes("deepseek-v3")) {
        pre["pretokenizers"].push_back({{"type", "Split"},
                                        {"pattern", {{"Regex", re}}},
                                        {"behavior", "Isolated"},
                                        {"invert", false}});
    }
    pre["pretokenizers"].push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}});
    return {
        {"added_tokens",
         {{{"id", 5}, {"content", "<s>"}, {"special", true}},
          {{"id", 6}, {"content", "<｜User｜>"}, {"special", false}},
          {{"id", 7}, {"content", "my▁word"}, {"special", false}}}},
        {"pre_tokenizer", pre},
        {"model",
         {{"type", "BPE"},
          {"vocab", {{"a", 0}, {"b", 1}, {"Ġ", 2}, {"ab", 3}, {"Ġa", 4}}},
          {"merges", nlohmann::json::array(
                         {nlohmann::json::array({"a", "b"}), nlohmann::json::array({" ", "a"})})}}},
    };
}

TEST(TokenizerJson, ConverterRulesOnATinyFile) {
    TempDir dir;
    const std::string json = dir.write("tokenizer.json", tiny_tokenizer_json().dump());
    const std::string config = dir.write(
        "tokenizer_config.json",
        R"({"bos_token": {"content": "<s>"}, "eos_token": "<｜User｜>", "add_bos_token": false,
            "chat_template": [{"name": "tool_use", "template": "T"},
                              {"name": "default", "template": "D"}]})");
    auto v = load_hf_tokenizer_json(json, config, 10);
    ASSERT_TRUE(v.ok()) << v.error().message;
    ASSERT_EQ(v->tokens.size(), 10u);
    EXPECT_EQ(v->types[0], TokenType::kNormal);
    EXPECT_EQ(v->types[5], TokenType::kControl);      // special
    EXPECT_EQ(v->types[6], TokenType::kControl);      // looks special
    EXPECT_EQ(v->types[7], TokenType::kUserDefined);  // plain added token, ▁ -> space
    EXPECT_EQ(v->tokens[7], "my word");
    EXPECT_EQ(v->tokens[8], "[PAD8]");
    EXPECT_EQ(v->types[9], TokenType::kUnused);
    // Pair merges: spaces inside parts are written as U+0120, as gguf-py does.
    ASSERT_EQ(v->merges.size(), 2u);
    EXPECT_EQ(v->merges[0], "a b");
    EXPECT_EQ(v->merges[1], "Ġ a");
    EXPECT_EQ(v->bos_id, 5);
    EXPECT_EQ(v->eos_id, 6);
    EXPECT_FALSE(v->add_bos);
    EXPECT_EQ(v->chat_template, "D");
}

TEST(TokenizerJson, Errors) {
    TempDir dir;
    EXPECT_FALSE(load_hf_tokenizer_json(dir.write("x", "") + ".missing", "", 0).ok());
    EXPECT_FALSE(load_hf_tokenizer_json(dir.write("bad.json", "{not json"), "", 0).ok());
    EXPECT_FALSE(load_hf_tokenizer_json(dir.write("arr.json", "[1, 2]"), "", 0).ok());

    auto other_pre = tiny_tokenizer_json();
    other_pre["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
    auto r = load_hf_tokenizer_json(dir.write("pre.json", other_pre.dump()), "", 0);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("pre-tokenizer"), std::string::npos) << r.error().message;

    auto unigram = tiny_tokenizer_json();
    unigram["model"]["type"] = "Unigram";
    EXPECT_FALSE(load_hf_tokenizer_json(dir.write("uni.json", unigram.dump()), "", 0).ok());

    auto wrong_type = tiny_tokenizer_json();
    wrong_type["added_tokens"][0]["content"] = 42;
    auto w = load_hf_tokenizer_json(dir.write("type.json", wrong_type.dump()), "", 0);
    EXPECT_FALSE(w.ok());

    const std::string ok = dir.write("ok.json", tiny_tokenizer_json().dump());
    auto small = load_hf_tokenizer_json(ok, "", 4);  // id 7 does not fit 4 ids
    ASSERT_FALSE(small.ok());
    EXPECT_NE(small.error().message.find("does not fit"), std::string::npos);
    EXPECT_FALSE(load_hf_tokenizer_json(ok, dir.write("cfg.json", "[]"), 0).ok());
}

// ---------------------------------------------------------------------------------------
// DeepSeek-V3 against the npm tokenizer.

TEST(TokenizerV3, GoldenIdsMatchTheNpmTokenizer) {
    REQUIRE_V3(tok);
    REQUIRE_GOLDEN(cases);
    size_t bytes = 0, file_bytes = 0, failures = 0;
    for (const GoldenCase& c : cases) {
        // The npm tokenizer always splits out added tokens and adds no BOS.
        const auto got = tok->encode(c.text, /*add_bos=*/false, /*parse_special=*/true);
        const std::string diff = first_mismatch(*tok, c.ids, got);
        if (!diff.empty() && ++failures <= 10) ADD_FAILURE() << c.name << ": " << diff;
        bytes += c.text.size();
        if (c.from_file) file_bytes += c.text.size();
    }
    EXPECT_EQ(failures, 0u);
    EXPECT_GE(file_bytes, size_t{1} << 20) << "golden data should hold >= 1 MB of source files";
    std::printf("[ golden   ] %zu cases, %.2f MB (%.2f MB from source files), %zu mismatches\n",
                cases.size(), double(bytes) / 1e6, double(file_bytes) / 1e6, failures);
}

TEST(TokenizerV3, GoldenTextsRoundTrip) {
    REQUIRE_V3(tok);
    REQUIRE_GOLDEN(cases);
    for (const GoldenCase& c : cases) {
        for (bool special : {false, true}) {
            const auto ids = tok->encode(c.text, false, special);
            ASSERT_EQ(tok->decode(ids), c.text) << c.name << " parse_special=" << special;
        }
    }
}

// Random byte strings: mostly invalid UTF-8 of every kind, mixed with valid text.
std::string random_bytes(std::mt19937& rng) {
    static const std::vector<std::string> fragments = {
        "\x80",
        "\xBF",
        "\xC0\x80",
        "\xC1\xBF",
        "\xE0\x80\x80",
        "\xE0\x9F\xBF",
        "\xF0\x80\x80\x80",
        "\xED\xA0\x80",
        "\xED\xBF\xBF",
        "\xF4\x90\x80\x80",
        "\xF5",
        "\xFF",
        "\xFE",
        "\xE4\xB8",
        "\xF0\x9F\x98",
        "\xC3",
        std::string(1, '\0'),
        std::string(3, '\0'),
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "\r",
        "\xC2\xA0",
        "\xE3\x80\x80",
        "\xC2\x85",
        "\xEF\xBB\xBF",
        "123",
        "4567",
        "abc",
        " def",
        "'s",
        "'ll",
        "...",
        "!!",
        "\xE4\xB8\xAD\xE6\x96\x87",
        "\xE3\x81\x82",
        "\xF0\x9F\x9A\x80",
        "\xE2\x80\x8D",
        "\xCC\x81",
        "<｜fim▁begin｜>",
        "<|EOT|>",
        "<｜",
        "｜>",
        "\xEF\xBD\x9C",
        "\xE2\x96\x81",
    };
    std::uniform_int_distribution<int> len(0, 48), kind(0, 3), byte(0, 255);
    std::uniform_int_distribution<size_t> frag(0, fragments.size() - 1);
    std::string s;
    const int n = len(rng);
    for (int i = 0; i < n; ++i) {
        switch (kind(rng)) {
            case 0:
                s += char(byte(rng));
                break;
            case 1:
                s += char(0x80 + byte(rng) % 0x80);
                break;  // high bytes only
            default:
                s += fragments[frag(rng)];
                break;
        }
    }
    return s;
}

TEST(TokenizerV3, RandomBytesRoundTrip) {
    REQUIRE_V3(tok);
    std::mt19937 rng(20240611);
    for (int i = 0; i < 3000; ++i) {
        const std::string s = random_bytes(rng);
        for (bool special : {false, true}) {
            const auto ids = tok->encode(s, false, special);
            for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok->n_vocab());
            ASSERT_EQ(tok->decode(ids), s) << "case " << i << " '" << show(s) << "'";
        }
        const auto with_bos = tok->encode(s, true, false);
        ASSERT_FALSE(with_bos.empty());
        EXPECT_EQ(with_bos[0], tok->bos());
    }
}

TEST(TokenizerV3, InvalidUtf8IsKeptAsItsOwnPieces) {
    REQUIRE_V3(tok);
    using V = std::vector<std::string>;
    EXPECT_EQ(tok->pre_tokenize("ab\xFF"
                                "cd",
                                false),
              (V{"ab", "\xFF", "cd"}));
    EXPECT_EQ(tok->pre_tokenize("x\xE4\xB8 y", false), (V{"x", "\xE4\xB8", " y"}));
    EXPECT_EQ(tok->pre_tokenize("\xC0\x80\xED\xA0\x80", false), (V{"\xC0\x80\xED\xA0\x80"}));
    const std::string nul("a\0b", 3);
    EXPECT_EQ(tok->decode(tok->encode(nul, false, false)), nul);
}

TEST(TokenizerV3, PreTokenizerSplits) {
    REQUIRE_V3(tok);
    using V = std::vector<std::string>;
    // \p{N}{1,3} first, then CJK/kana runs, then the main regex.
    EXPECT_EQ(tok->pre_tokenize("Hello world1234567 你好ひらがなabc", false),
              (V{"Hello", " world", "123", "456", "7", " ", "你好ひらがな", "abc"}));
    EXPECT_EQ(tok->pre_tokenize("x = foo.bar(1);\n\n  y", false),
              (V{"x", " =", " foo", ".bar", "(", "1", ");\n\n", " ", " y"}));
    // Whitespace is Unicode White_Space (as llama.cpp and HF): U+0085 and U+3000 are
    // spaces, U+180E and U+FEFF are not (PCRE2's \s and JavaScript's \s disagree).
    EXPECT_EQ(tok->pre_tokenize("a\u0085\n", false), (V{"a", "\u0085\n"}));
    EXPECT_EQ(tok->pre_tokenize("a\u3000\n", false), (V{"a", "\u3000\n"}));
    EXPECT_EQ(tok->pre_tokenize("a\u180E\n", false), (V{"a", "\u180E", "\n"}));
    EXPECT_EQ(tok->pre_tokenize("a\uFEFF\n", false), (V{"a", "\uFEFF", "\n"}));
}

TEST(TokenizerV3, SpecialTokensOnlyWithParseSpecial) {
    REQUIRE_V3(tok);
    const std::string text = "a<｜fim▁begin｜>b<|EOT|>";
    EXPECT_EQ(tok->encode(text, false, true), (std::vector<int32_t>{67, 128801, 68, 128805}));
    const auto plain = tok->encode(text, false, false);
    for (int32_t id : plain) {
        EXPECT_LT(id, 128000) << "special token recognised without parse_special";
    }
    EXPECT_EQ(tok->decode(plain), text);
    // Leftmost, longest: <｜User｜> inside a longer run of bars is still found.
    EXPECT_EQ(tok->encode("<｜User｜><｜Assistant｜>", false, true),
              (std::vector<int32_t>{128803, 128804}));
    EXPECT_EQ(tok->encode("", true, true), (std::vector<int32_t>{0}));
}

TEST(TokenizerV3, FimEogAndLookups) {
    REQUIRE_V3(tok);
    ASSERT_TRUE(tok->fim().has_value());
    EXPECT_EQ(tok->fim()->pre, 128801);
    EXPECT_EQ(tok->fim()->suf, 128800);
    EXPECT_EQ(tok->fim()->mid, 128802);
    EXPECT_EQ(tok->bos(), 0);
    EXPECT_EQ(tok->eos(), 1);
    EXPECT_TRUE(tok->add_bos_by_default());
    EXPECT_EQ(tok->n_vocab(), kV3Vocab);
    EXPECT_EQ(tok->pre(), "deepseek-v3");
    EXPECT_TRUE(tok->is_eog(1));
    EXPECT_TRUE(tok->is_eog(128805));
    EXPECT_FALSE(tok->is_eog(0));
    EXPECT_FALSE(tok->is_eog(128800));
    EXPECT_EQ(tok->find_token("<｜fim▁hole｜>"), 128800);
    EXPECT_EQ(tok->find_token("Ġt"), 259);
    EXPECT_FALSE(tok->find_token("no such token").has_value());
    EXPECT_EQ(tok->token_to_piece(0), "<｜begin▁of▁sentence｜>");
    EXPECT_EQ(tok->token_to_piece(259), " t");
    EXPECT_EQ(tok->token_to_piece(128900), "");  // [PAD]
    EXPECT_EQ(tok->token_to_piece(-1), "");
    EXPECT_EQ(tok->token_to_piece(kV3Vocab), "");
}

TEST(TokenizerV3, ConcurrentEncodeMatchesSerial) {
    REQUIRE_V3(tok);
    REQUIRE_GOLDEN(cases);
    // Under ThreadSanitizer every eighth text is enough for the threads to meet in the
    // tokenizer's shared state (all of them took 94 s there).
#if defined(__SANITIZE_THREAD__)
    constexpr size_t kEvery = 8;
#else
    constexpr size_t kEvery = 1;
#endif
    std::vector<std::vector<int32_t>> serial(cases.size());
    for (size_t i = 0; i < cases.size(); i += kEvery)
        serial[i] = tok->encode(cases[i].text, false, true);
    std::vector<std::thread> threads;
    std::vector<int> bad(4, 0);
    // Four threads share the cases (each text once, interleaved, so the threads meet there
    // all along): the race check costs one more pass, not four.
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (size_t i = size_t(t) * kEvery; i < cases.size(); i += 4 * kEvery)
                if (tok->encode(cases[i].text, false, true) != serial[i]) ++bad[size_t(t)];
        });
    }
    for (auto& th : threads) th.join();
    for (int b : bad) EXPECT_EQ(b, 0);
}

// ---------------------------------------------------------------------------------------
// Tiny hand-built vocabs: the deepseek-llm and deepseek-coder pre-tokenizers and BPE rules.

std::string byte_char(unsigned char b) {
    // GPT-2 byte -> code point, as in ENGINE_SPEC §4.
    uint32_t n = 0, cp = 0;
    for (uint32_t x = 0; x < 256; ++x) {
        const bool printable = (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
        const uint32_t c = printable ? x : 256 + n++;
        if (x == b) cp = c;
    }
    std::string out;
    if (cp < 0x80) {
        out += char(cp);
    } else {
        out += char(0xC0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3F));
    }
    return out;
}

// Ids 0..255: the byte tokens (id = byte value); then `extra` tokens from 256 on.
Vocab tiny_vocab(const std::string& pre, const std::vector<std::string>& extra,
                 const std::vector<std::string>& merges) {
    Vocab v;
    v.pre = pre;
    for (int b = 0; b < 256; ++b) {
        v.tokens.push_back(byte_char(static_cast<unsigned char>(b)));
        v.types.push_back(TokenType::kNormal);
    }
    for (const std::string& t : extra) {
        v.tokens.push_back(t);
        v.types.push_back(t.front() == '<' ? TokenType::kControl : TokenType::kNormal);
    }
    v.merges = merges;
    v.bos_id = 0;
    v.eos_id = 1;
    return v;
}

// 256 "He", 257 "ll", 258 "Hell", 259 "Hello", 260 "ĠW", 261 "or", 262 "ĠWor", 263 "12",
// 264 "ld", 265 "<ctl>", 266 "aa", 267 "bc", 268 "xyz".
Vocab hello_vocab(const std::string& pre) {
    return tiny_vocab(
        pre,
        {"He", "ll", "Hell", "Hello", "ĠW", "or", "ĠWor", "12", "ld", "<ctl>", "aa", "bc", "xyz"},
        {"H e", "l l", "He ll", "Hell o", "Ġ W", "o r", "ĠW or", "1 2", "l d", "a a", "b c", "a b",
         "x y", "xy z"});
}

using Pieces = std::vector<std::string>;
using Ids = std::vector<int32_t>;

TEST(TokenizerLlm, PreTokenizerAndIds) {
    auto tok = Tokenizer::create(hello_vocab("deepseek-llm"));
    ASSERT_TRUE(tok.ok()) << tok.error().message;
    const std::string text = "Hello, World!\n  123 中文abc";
    // [\r\n] | \s?letters | \s?punct | \s+$ | CJK/Hangul | \p{N}+
    EXPECT_EQ(tok->pre_tokenize(text, false),
              (Pieces{"Hello", ",", " World", "!", "\n", "  ", "123", " ", "中文", "abc"}));
    EXPECT_EQ(tok->pre_tokenize("x  \t", false), (Pieces{"x", "  \t"}));
    // U+2126 OHM and U+212A KELVIN are in the letter class; the next regex (ASCII and
    // full-width punctuation, whose [:-~] range holds A-Z a-z) re-splits ASCII letters out
    // of mixed runs, as llama.cpp and HF do.
    EXPECT_EQ(tok->pre_tokenize("\u2126\u212A ok", false), (Pieces{"\u2126\u212A", " ok"}));
    EXPECT_EQ(tok->pre_tokenize("\u00E9t\u00E9 caf\u00E9", false),
              (Pieces{"\u00E9", "t", "\u00E9", " caf", "\u00E9"}));
    // "Hello" merges fully; " World" -> ĠWor + "ld"; digits stay one piece: 12 + 3.
    EXPECT_EQ(tok->encode("Hello World 123", false, false), (Ids{259, 262, 264, 32, 263, '3'}));
    EXPECT_EQ(tok->decode(tok->encode(text, true, false)), std::string(1, '\0') + text);
}

TEST(TokenizerCoder, PreTokenizerAndIds) {
    auto tok = Tokenizer::create(hello_vocab("deepseek-coder"));
    ASSERT_TRUE(tok.ok()) << tok.error().message;
    const std::string text = "Hello, World!\n  123 中文abc";
    // [\r\n] | \s?\p{L}+ | \s?\p{P}+ | CJK/Hangul | \p{N} (one digit per piece)
    EXPECT_EQ(tok->pre_tokenize(text, false),
              (Pieces{"Hello", ",", " World", "!", "\n", "  ", "1", "2", "3", " ", "中文", "abc"}));
    EXPECT_EQ(tok->encode("Hello World 123", false, false),
              (Ids{259, 262, 264, 32, '1', '2', '3'}));
}

TEST(TokenizerBpe, RanksTiesUnknownResultsAndSpecials) {
    auto tok = Tokenizer::create(hello_vocab("deepseek-coder"));
    ASSERT_TRUE(tok.ok()) << tok.error().message;
    // Ties go to the leftmost pair: "aaa" -> "aa" "a".
    EXPECT_EQ(tok->encode("aaa", false, false), (Ids{266, 'a'}));
    // Lower rank first: "b c" (rank 10) beats "a b" (rank 11).
    EXPECT_EQ(tok->encode("abc", false, false), (Ids{'a', 267}));
    // "x y" makes "xy", which is no token; "xy z" then makes the token "xyz".
    EXPECT_EQ(tok->encode("xyz", false, false), (Ids{268}));
    // A final symbol that is no token is written byte by byte.
    EXPECT_EQ(tok->encode("xy", false, false), (Ids{'x', 'y'}));
    // Control tokens only with parse_special.
    EXPECT_EQ(tok->encode("a<ctl>", false, true), (Ids{'a', 265}));
    EXPECT_EQ(tok->encode("a<ctl>", false, false), (Ids{'a', '<', 'c', 't', 'l', '>'}));
    EXPECT_EQ(tok->token_to_piece(265), "<ctl>");
    EXPECT_EQ(tok->token_to_piece(' '), " ");
    EXPECT_EQ(tok->token_to_piece(260), " W");
    EXPECT_FALSE(tok->fim().has_value());
    EXPECT_TRUE(tok->is_eog(1));
}

TEST(TokenizerCreate, RejectsBadVocabs) {
    auto error_of = [](Vocab v) {
        auto t = Tokenizer::create(v);
        return t.ok() ? std::string() : t.error().message;
    };
    const Vocab good = hello_vocab("deepseek-v3");
    ASSERT_EQ(error_of(good), "");

    Vocab v = good;
    v.model = "llama";
    EXPECT_NE(error_of(v).find("tokenizer.ggml.model"), std::string::npos);
    v = good;
    v.pre = "gpt-4o";
    EXPECT_NE(error_of(v).find("tokenizer.ggml.pre"), std::string::npos);
    v = good;
    v.merges.push_back("He zz");
    EXPECT_NE(error_of(v).find("unknown token 'zz'"), std::string::npos) << error_of(v);
    v = good;
    v.merges.push_back("nospace");
    EXPECT_NE(error_of(v).find("not 'left right'"), std::string::npos);
    v = good;
    v.bos_id = int32_t(v.tokens.size());
    EXPECT_NE(error_of(v).find("BOS"), std::string::npos);
    v = good;
    v.eos_id = -1;
    EXPECT_NE(error_of(v).find("EOS"), std::string::npos);
    v = good;
    v.types.pop_back();
    EXPECT_NE(error_of(v).find("token types"), std::string::npos);
    EXPECT_NE(error_of(Vocab{}), "");
}

}  // namespace
}  // namespace latent::engine
