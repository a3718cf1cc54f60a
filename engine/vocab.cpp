// Reading a Vocab out of a GGUF's metadata (see vocab.h). Not a tokenizer: the tables
// are built by Tokenizer::create().
#include "engine/vocab.h"

#include "engine/gguf.h"

namespace latent::engine {

Expected<Vocab> read_gguf_vocab(const GgufFile& f) {
    auto fail = [&](const std::string& why) { return make_error(f.path() + ": " + why); };
    Vocab v;
    auto str = [&](const char* key, std::string& out, const char* def) -> bool {
        auto s = f.get_string(key);
        if (!s) return false;
        out = s->value_or(def);
        return true;
    };
    if (!str("tokenizer.ggml.model", v.model, "") || !str("tokenizer.ggml.pre", v.pre, "default") ||
        !str("tokenizer.chat_template", v.chat_template, ""))
        return fail("tokenizer.ggml.model, .pre or tokenizer.chat_template is not a string");
    const GgufValue* tokens = f.find("tokenizer.ggml.tokens");
    if (!tokens || !tokens->is_array() || tokens->arr_type != GgufType::kString)
        return fail("missing tokenizer.ggml.tokens (an array of strings)");
    v.tokens = tokens->arr_str;
    v.types.assign(v.tokens.size(), TokenType::kNormal);
    if (const GgufValue* types = f.find("tokenizer.ggml.token_type")) {
        if (!types->is_array() || types->arr_int.size() != v.tokens.size())
            return fail("tokenizer.ggml.token_type does not match the token count");
        for (size_t i = 0; i < v.tokens.size(); ++i)
            v.types[i] = static_cast<TokenType>(types->arr_int[i]);
    }
    if (const GgufValue* merges = f.find("tokenizer.ggml.merges")) {
        if (!merges->is_array() || merges->arr_type != GgufType::kString)
            return fail("tokenizer.ggml.merges is not an array of strings");
        v.merges = merges->arr_str;
    }
    // Ids are u32 in llama.cpp's files; anything that does not fit an id is an error.
    auto id = [&](const char* key, int64_t def) -> Expected<int64_t> {
        auto u = f.get_uint(key);
        if (!u) return u.error();
        if (!*u) return def;
        if (**u > 0xFFFFFFFFull) return fail(std::string("metadata '") + key + "' is out of range");
        return static_cast<int64_t>(**u);
    };
    auto bos = id("tokenizer.ggml.bos_token_id", 0);
    auto eos = id("tokenizer.ggml.eos_token_id", 1);
    auto pad = id("tokenizer.ggml.padding_token_id", -1);
    for (const auto* e : {&bos, &eos, &pad})
        if (!*e) return e->error();
    auto flag = [&](const char* key, bool def) -> Expected<bool> {
        auto b = f.get_bool(key);
        if (!b) return b.error();
        return b->value_or(def);
    };
    auto add_bos = flag("tokenizer.ggml.add_bos_token", true);
    auto add_eos = flag("tokenizer.ggml.add_eos_token", false);
    if (!add_bos) return add_bos.error();
    if (!add_eos) return add_eos.error();
    v.add_bos = *add_bos;
    v.add_eos = *add_eos;
    const auto n = static_cast<int64_t>(v.tokens.size());
    if (n == 0) return fail("empty vocabulary");
    if (*bos >= n || *eos >= n) return fail("BOS/EOS token id is outside the vocabulary");
    v.bos_id = static_cast<int32_t>(*bos);
    v.eos_id = static_cast<int32_t>(*eos);
    v.pad_id = *pad >= 0 && *pad < n ? static_cast<int32_t>(*pad) : -1;
    return v;
}

Expected<Vocab> load_gguf_vocab(const std::string& path) {
    auto file = GgufFile::open(path);
    if (!file) return file.error();
    return read_gguf_vocab(**file);
}

}  // namespace latent::engine
