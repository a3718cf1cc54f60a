// Vocab: the tokenizer's data as GGUF stores it (tokenizer.ggml.*), independent of
// where it came from (a GGUF file of any architecture, a vocabulary-only GGUF, or the HF
// tokenizer.json that make-model reads). It holds data only; tokenizer.h turns it into an
// encoder/decoder, and read_gguf_vocab() is the one reader of the GGUF keys.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/expected.h"

namespace latent::engine {

class GgufFile;

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
    kUndefined = 0,
    kNormal = 1,
    kUnknown = 2,
    kControl = 3,
    kUserDefined = 4,
    kUnused = 5,
    kByte = 6,
};

struct Vocab {
    std::string model = "gpt2";       // tokenizer.ggml.model
    std::string pre = "deepseek-v3";  // tokenizer.ggml.pre
    std::vector<std::string> tokens;  // id -> token text (byte-level unicode form)
    std::vector<TokenType> types;     // id -> type, same length as tokens
    std::vector<std::string> merges;  // rank -> "left right"
    int32_t bos_id = 0;
    int32_t eos_id = 1;
    int32_t pad_id = -1;  // -1: none
    bool add_bos = true;
    bool add_eos = false;
    std::string chat_template;  // tokenizer.chat_template, may be empty
};

// The tokenizer.ggml.* keys of a GGUF, whatever its architecture and whether or not it has
// tensors (llama.cpp's vocabulary-only files have none). Missing token types read as
// NORMAL; BOS/EOS default to 0/1 as in llama.cpp. Errors (prefixed with the file's path): no
// token list, keys of the wrong type, token types of another length, BOS/EOS outside it.
// It does not check the tokenizer model or merges: Tokenizer::create() does.
Expected<Vocab> read_gguf_vocab(const GgufFile& file);
// Opens `path` and reads its vocabulary.
Expected<Vocab> load_gguf_vocab(const std::string& path);

}  // namespace latent::engine
