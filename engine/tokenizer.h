// Tokenizer: DeepSeek's byte-level BPE (tokenizer.ggml.model "gpt2") built from a Vocab,
// token for token equal to llama.cpp and HF tokenizers (ENGINE_SPEC §4). It is not a chat
// formatter and does not read files: gguf.h / tokenizer_json.h produce the Vocab.
//
// Pipeline of encode(): (1) with parse_special, cut the text at literal special-token
// strings (leftmost, longest first); (2) cut each remaining stretch of valid UTF-8 with the
// pre-tokenizer's regex list, applied in order, each regex re-splitting every piece into
// matches and the gaps between them; (3) BPE each piece from its bytes: repeatedly merge
// the adjacent pair of lowest rank (ties: leftmost); (4) a final symbol that is not a token
// is written byte by byte with the byte tokens.
//
// Invalid UTF-8 (which llama.cpp replaces by U+FFFD and HF cannot take at all) is kept:
// every maximal run of bytes that do not start a valid UTF-8 sequence is a piece of its
// own, so decode(encode(x)) == x for every byte string x -- except in vocabularies whose
// token for a byte that no valid UTF-8 holds is a USER_DEFINED character (DeepSeek LLM's
// and Coder's 'ö' and 12 more for 0xC0, 0xC1, 0xF5-0xFF): such a byte is written with that
// token, which decodes as the character (llama.cpp's reading; HF decodes the byte).
//
// Thread safety: immutable after create(); any number of threads may call every const
// method at once. Copies share the immutable tables. encode() keeps a per-thread cache of
// BPE results (thread_local, keyed by the tokenizer's serial number), never shared state.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/expected.h"
#include "engine/vocab.h"

namespace latent::engine {

// Fill-in-the-middle tokens, PSM order (ENGINE_SPEC §4.3):
// [BOS, pre] + prefix + [suf] + suffix + [mid] -> the model writes the middle.
struct FimTokens {
    int32_t pre;  // <｜fim▁begin｜>
    int32_t suf;  // <｜fim▁hole｜>
    int32_t mid;  // <｜fim▁end｜>
};

// convert_hf_to_gguf.py's does_token_look_special(): <｜...｜>, <|...|>, <pad>, ... An
// added token that is not marked special but looks it is treated as control.
bool token_looks_special(std::string_view text);

// The regexes (PCRE-compatible source, already JSON-decoded) of a tokenizer.ggml.pre
// value, in the order they are applied; empty for a pre type this engine does not know.
// Exact copies of ENGINE_SPEC §4.1; tokenizer_json.cpp checks tokenizer.json against them.
std::vector<std::string> pre_tokenizer_regexes(std::string_view pre);

class Tokenizer {
public:
    // Builds the tables. Errors: tokenizer.ggml.model other than "gpt2", unknown
    // tokenizer.ggml.pre, tokens/types of different lengths or too many, a malformed merge
    // or one naming a token that is not in the vocab, BOS/EOS ids outside the vocab.
    static Expected<Tokenizer> create(const Vocab& vocab);

    // Token ids of `text` (any bytes). BOS first when add_bos. Special tokens (types
    // CONTROL and UNKNOWN, and USER_DEFINED ones that look special, such as Coder-V2's
    // <｜fim▁hole｜>) are recognised in the text only when parse_special; otherwise their
    // spelling is tokenized as plain text, so user text cannot smuggle in control tokens.
    // Other USER_DEFINED tokens are plain added text and always recognised, as llama.cpp
    // and HF do: DeepSeek LLM's 13 characters such as 'ö' (ids 100002-100014) are split
    // out of any text. (llama.cpp also matches special-looking USER_DEFINED tokens other
    // than the FIM and EOT ones it promotes to control; Latent does not.)
    std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;

    // Concatenation of token_to_piece over ids.
    std::string decode(const std::vector<int32_t>& ids) const;

    // The bytes one token stands for: NORMAL tokens byte-decoded, CONTROL / USER_DEFINED /
    // UNKNOWN tokens their text as spelled, anything else (UNUSED padding, ids out of
    // range) the empty string.
    std::string token_to_piece(int32_t id) const;

    // The vocab's type of a token (kUnused for ids out of range): grammars keep CONTROL,
    // USER_DEFINED and UNKNOWN tokens out of generated text.
    TokenType token_type(int32_t id) const;

    // The id of the token whose vocab text is exactly `text` (the stored form: byte-level
    // for normal tokens, e.g. "Ġthe"; control tokens as spelled). Duplicate texts resolve
    // to the last id, as in llama.cpp.
    std::optional<int32_t> find_token(std::string_view text) const;

    // The pieces step (2) hands to BPE, for tests and debugging.
    std::vector<std::string> pre_tokenize(std::string_view text, bool parse_special) const;

    int32_t bos() const;
    int32_t eos() const;
    bool add_bos_by_default() const;  // tokenizer.ggml.add_bos_token
    int32_t n_vocab() const;
    const std::string& pre() const;  // tokenizer.ggml.pre

    // FIM ids found by text (ENGINE_SPEC §4.2); nullopt unless all three exist.
    std::optional<FimTokens> fim() const;

    // End of generation: EOS, and <|EOT|> / <｜end▁of▁sentence｜> where the vocab has them.
    bool is_eog(int32_t id) const;

private:
    struct Impl;  // tokenizer.cpp
    explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<const Impl> impl_;  // never null
};

}  // namespace latent::engine
