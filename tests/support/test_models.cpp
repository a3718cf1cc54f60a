// Test-model makers (see test_models.h).
#include "tests/support/test_models.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>

#include "engine/tokenizer_json.h"

namespace latent::test {

using namespace latent::engine;

namespace {

std::string byte_to_unicode(int b) {
    // GPT-2's byte-level map: printable bytes stand for themselves, the other 68 map to
    // U+0100 + n in ascending order.
    static std::map<int, int> table = [] {
        std::map<int, int> t;
        int n = 0;
        for (int c = 0; c < 256; ++c) {
            const bool keep = (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE;
            t[c] = keep ? c : 0x100 + n++;
        }
        return t;
    }();
    const int cp = table[b];
    std::string s;
    if (cp < 0x80) {
        s += static_cast<char>(cp);
    } else {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
}

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/latent-test-XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

}  // namespace

Vocab small_vocab() {
    Vocab v;
    v.pre = "deepseek-v3";
    auto add = [&](const std::string& text, TokenType type) {
        v.tokens.push_back(text);
        v.types.push_back(type);
    };
    add("<｜begin▁of▁sentence｜>", TokenType::kControl);
    add("<｜end▁of▁sentence｜>", TokenType::kControl);
    for (int b = 0; b < 256; ++b) add(byte_to_unicode(b), TokenType::kNormal);
    const char* merges[][2] = {{"Ġ", "t"}, {"e", "r"}, {"i", "n"}, {"Ġ", "a"},  {"Ġt", "h"},
                               {"d", "e"}, {"r", "e"}, {"o", "n"}, {"de", "f"}, {"Ġ", "f"}};
    for (auto& m : merges) {
        v.merges.push_back(std::string(m[0]) + " " + m[1]);
        add(std::string(m[0]) + m[1], TokenType::kNormal);
    }
    for (const char* s : {"<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>", "<｜User｜>",
                          "<｜Assistant｜>", "<|EOT|>"})
        add(s, TokenType::kControl);
    v.bos_id = 0;
    v.eos_id = 1;
    return v;
}

Vocab real_vocab() {
    const std::string dir = std::string(LATENT_SHARE_DIR) + "/deepseek-v3/";
    auto v = load_hf_tokenizer_json(dir + "tokenizer.json", dir + "tokenizer_config.json", 129280);
    if (!v) {
        ADD_FAILURE() << v.error().message << " (run scripts/setup)";
        return small_vocab();
    }
    return std::move(*v);
}

std::string temp_dir() {
    static TempDir dir;
    return dir.path;
}

std::string make_test_model(MakeModelOptions o, bool real_tokenizer) {
    static std::mutex mu;
    static std::map<std::string, std::string> made;
    const std::string key = o.preset + "-" + traits(o.quant).name + "-" +
                            (o.v3_gating ? (*o.v3_gating ? "v3" : "v2") : "def") + "-" +
                            (o.q_lora ? (*o.q_lora ? "ql" : "noql") : "defql") + "-" +
                            (o.mtp ? (*o.mtp ? "mtp" : "nomtp") : "defmtp") + "-" +
                            (o.split_kv ? "split" : "single") + "-s" + std::to_string(o.seed) +
                            (real_tokenizer ? "-v3vocab" : "-smallvocab");
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = made.find(key); it != made.end()) return it->second;
    o.out = temp_dir() + "/" + key + ".gguf";
    const Vocab vocab = real_tokenizer ? real_vocab() : small_vocab();
    auto r = make_model(o, vocab);
    if (!r) {
        ADD_FAILURE() << "make_model: " << r.error().message;
        return "";
    }
    made[key] = o.out;
    return o.out;
}

}  // namespace latent::test
