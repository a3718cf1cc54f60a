// load_hf_tokenizer_json: mirrors convert_hf_to_gguf.py's get_vocab_base() and gguf-py's
// SpecialVocab for a DeepSeek-V3 tokenizer.json. Parsing uses nlohmann/json; its
// exceptions are caught here and returned as Errors.
#include "engine/tokenizer_json.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <optional>
#include <unordered_map>
#include <vector>

#include "engine/tokenizer.h"

namespace latent::engine {
namespace {

using nlohmann::json;

// DeepSeek-V3's tokenizer.json is 7.8 MB; the largest HF tokenizers are a few tens of MB.
// The cap keeps a wrong path (a weights file) from being read into memory.
constexpr uintmax_t kMaxJsonBytes = uintmax_t{256} << 20;
// Same bound as the Tokenizer's: ids are int32 and real vocabs are ~130k.
constexpr int64_t kMaxVocab = int64_t{1} << 24;

Expected<std::string> read_file(const std::string& path, const char* what) {
    std::error_code ec;
    const uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec) return make_error(std::string(what) + ": cannot read '" + path + "': " + ec.message());
    if (size > kMaxJsonBytes) {
        return make_error(std::string(what) + ": '" + path + "' is " + std::to_string(size) +
                          " bytes, more than the " + std::to_string(kMaxJsonBytes) +
                          " a tokenizer file may have");
    }
    std::ifstream in(path, std::ios::binary);
    std::string text(size_t(size), '\0');
    if (!in || !in.read(text.data(), std::streamsize(size))) {
        return make_error(std::string(what) + ": cannot read '" + path + "'");
    }
    return text;
}

Expected<json> parse_json(const std::string& path, const char* what) {
    auto text = read_file(path, what);
    if (!text) return text.error();
    json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
        return make_error(std::string(what) + ": '" + path + "' is not a JSON object");
    }
    return j;
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
    for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) {
        s.replace(pos, from.size(), to);
    }
    return s;
}

struct AddedToken {
    std::string content;
    int64_t id = 0;
    bool special = false;
};

Expected<Vocab> load(const std::string& json_path, const std::string& config_path,
                     int32_t n_vocab) {
    auto parsed = parse_json(json_path, "tokenizer.json");
    if (!parsed) return parsed.error();
    const json& tj = *parsed;
    const auto err = [&](const std::string& msg) {
        return make_error("tokenizer.json '" + json_path + "': " + msg);
    };

    if (!tj.contains("model") || !tj["model"].is_object()) return err("no \"model\" object");
    const json& model = tj["model"];
    if (model.contains("type") && model["type"] != "BPE") {
        return err("model type " + model["type"].dump() + " is not BPE");
    }
    if (model.contains("byte_fallback") && model["byte_fallback"].is_boolean() &&
        model["byte_fallback"].get<bool>()) {
        return err("byte_fallback BPE is not byte-level BPE");
    }
    if (!model.contains("vocab") || !model["vocab"].is_object())
        return err("no model.vocab object");

    // The pre-tokenizer decides tokenizer.ggml.pre; only DeepSeek-V3's is recognised here
    // (llama.cpp fingerprints it by encoding a test string; we compare the regexes).
    std::vector<std::string> split_regexes;
    if (tj.contains("pre_tokenizer") && tj["pre_tokenizer"].is_object()) {
        const json& pt = tj["pre_tokenizer"];
        std::vector<json> steps;
        if (pt.value("type", "") == "Sequence" && pt.contains("pretokenizers")) {
            for (const json& s : pt["pretokenizers"]) steps.push_back(s);
        } else {
            steps.push_back(pt);
        }
        for (const json& s : steps) {
            if (s.value("type", "") == "Split" && s.contains("pattern") &&
                s["pattern"].contains("Regex")) {
                split_regexes.push_back(s["pattern"]["Regex"].get<std::string>());
            }
        }
    }
    if (split_regexes != pre_tokenizer_regexes("deepseek-v3")) {
        return err(
            "the pre-tokenizer is not DeepSeek-V3's (its Split regexes differ); only "
            "DeepSeek-V3 tokenizers are supported from tokenizer.json");
    }

    // HF get_vocab(): the model vocab, then the added tokens (which win on equal text).
    std::unordered_map<std::string, int64_t> text_to_id;
    for (const auto& [text, id] : model["vocab"].items()) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0)
            return err("bad id for token '" + text + "'");
        text_to_id[text] = id.get<int64_t>();
    }
    std::vector<AddedToken> added;
    if (tj.contains("added_tokens") && tj["added_tokens"].is_array()) {
        for (const json& a : tj["added_tokens"]) {
            AddedToken t{a.at("content").get<std::string>(), a.at("id").get<int64_t>(),
                         a.value("special", false)};
            if (t.id < 0) return err("bad id for added token '" + t.content + "'");
            text_to_id[t.content] = t.id;
            added.push_back(std::move(t));
        }
    }
    std::unordered_map<std::string, const AddedToken*> added_by_text;
    std::unordered_map<int64_t, const AddedToken*> added_by_id;
    for (const AddedToken& t : added) {
        added_by_text[t.content] = &t;
        added_by_id[t.id] = &t;
    }

    int64_t max_id = -1;
    for (const auto& [text, id] : text_to_id) max_id = std::max(max_id, id);
    const int64_t size = n_vocab > 0 ? n_vocab : int64_t(text_to_id.size());
    if (size > kMaxVocab) return err("n_vocab " + std::to_string(size) + " is too large");
    if (max_id >= size) {
        return err("token id " + std::to_string(max_id) + " does not fit n_vocab " +
                   std::to_string(size));
    }

    std::vector<const std::string*> by_id(size_t(size), nullptr);
    for (const auto& [text, id] : text_to_id) by_id[size_t(id)] = &text;

    Vocab v;
    v.model = "gpt2";
    v.pre = "deepseek-v3";
    v.tokens.reserve(size_t(size));
    v.types.reserve(size_t(size));
    for (int64_t i = 0; i < size; ++i) {
        const std::string* text = by_id[size_t(i)];
        if (text == nullptr) {
            v.tokens.push_back("[PAD" + std::to_string(i) + "]");
            v.types.push_back(TokenType::kUnused);
            continue;
        }
        auto a = added_by_text.find(*text);
        if (a == added_by_text.end()) {
            v.tokens.push_back(*text);
            v.types.push_back(TokenType::kNormal);
            continue;
        }
        // The converter re-normalizes non-normalized added tokens through the HF
        // tokenizer (decode(encode(t))); for byte-level BPE with no normalizer that is
        // the identity, so the text is kept as is.
        auto by_id_it = added_by_id.find(i);
        const AddedToken* info = by_id_it != added_by_id.end() ? by_id_it->second : a->second;
        if (info->special || token_looks_special(*text)) {
            v.tokens.push_back(*text);
            v.types.push_back(TokenType::kControl);
        } else {
            v.tokens.push_back(replace_all(*text, "\u2581", " "));
            v.types.push_back(TokenType::kUserDefined);
        }
    }

    // Merges: "a b" strings, or [a, b] pairs (transformers >= 4.45) whose spaces gguf-py
    // encodes as U+0120 before joining.
    if (model.contains("merges")) {
        const json& merges = model["merges"];
        if (!merges.is_array()) return err("model.merges is not an array");
        v.merges.reserve(merges.size());
        for (const json& m : merges) {
            if (m.is_string()) {
                v.merges.push_back(m.get<std::string>());
            } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
                v.merges.push_back(replace_all(m[0].get<std::string>(), " ", "\u0120") + " " +
                                   replace_all(m[1].get<std::string>(), " ", "\u0120"));
            } else {
                return err("unknown merges format: " + m.dump());
            }
        }
    }

    if (config_path.empty()) return v;
    auto config = parse_json(config_path, "tokenizer_config.json");
    if (!config) return config.error();
    const json& cfg = *config;

    // SpecialVocab: `<typ>_token` (a string or {"content": ...}) -> the first added token
    // with that content; ids that do not fit the vocab are skipped.
    auto special_id = [&](const char* key) -> std::optional<int32_t> {
        if (!cfg.contains(key)) return std::nullopt;
        const json& entry = cfg[key];
        std::string content;
        if (entry.is_string()) {
            content = entry.get<std::string>();
        } else if (entry.is_object() && entry.contains("content") && entry["content"].is_string()) {
            content = entry["content"].get<std::string>();
        } else {
            return std::nullopt;
        }
        for (const AddedToken& t : added) {
            if (t.content == content) {
                if (t.id < size) return int32_t(t.id);
                return std::nullopt;
            }
        }
        return std::nullopt;
    };
    if (auto id = special_id("bos_token")) v.bos_id = *id;
    if (auto id = special_id("eos_token")) v.eos_id = *id;
    if (auto id = special_id("pad_token")) v.pad_id = *id;
    if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) {
        v.add_bos = cfg["add_bos_token"].get<bool>();
    }
    if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()) {
        v.add_eos = cfg["add_eos_token"].get<bool>();
    }
    if (cfg.contains("chat_template")) {
        const json& ct = cfg["chat_template"];
        if (ct.is_string()) {
            v.chat_template = ct.get<std::string>();
        } else if (ct.is_array()) {  // named templates: keep the default one
            for (const json& t : ct) {
                if (t.is_object() && t.value("name", "") == "default" && t.contains("template") &&
                    t["template"].is_string()) {
                    v.chat_template = t["template"].get<std::string>();
                }
            }
        }
    }
    return v;
}

}  // namespace

Expected<Vocab> load_hf_tokenizer_json(const std::string& tokenizer_json_path,
                                       const std::string& tokenizer_config_path, int32_t n_vocab) {
    try {
        return load(tokenizer_json_path, tokenizer_config_path, n_vocab);
    } catch (const json::exception& e) {
        // Wrong JSON types (a number where a string belongs, ...) end up here.
        return make_error("tokenizer.json '" + tokenizer_json_path + "': " + e.what());
    }
}

}  // namespace latent::engine
