// load_hf_tokenizer_json: a Vocab from Hugging Face tokenizer.json (+ tokenizer_config.json),
// equal to what llama.cpp's convert_hf_to_gguf.py (get_vocab_base + SpecialVocab) writes
// for DeepSeek-V3. It reads DeepSeek-V3's byte-level BPE files only; it is not a general
// HF tokenizer loader and runs no Python.
#pragma once

#include <cstdint>
#include <string>

#include "engine/expected.h"
#include "engine/vocab.h"

namespace latent::engine {

// tokenizer_json_path: tokenizer.json (model.type "BPE"; merges as "a b" strings or as
//   [a, b] pairs; the pre-tokenizer must be DeepSeek-V3's Split regexes -> pre
//   "deepseek-v3", anything else is an Error rather than a silently wrong tokenizer).
// tokenizer_config_path: tokenizer_config.json, or empty. Gives bos/eos/pad (the
//   `*_token` contents looked up among added_tokens), add_bos_token / add_eos_token and
//   chat_template. Without it the Vocab defaults stay (BOS 0, EOS 1, add_bos true).
// n_vocab: number of ids to write (config.json vocab_size, 129280 for V3); ids without a
//   token become "[PAD{i}]" of type UNUSED. <= 0: the number of distinct token texts.
//
// Token types as the converter assigns them: added tokens that are `special`, or that
// look special (<|...|>, <｜...｜>, <pad>, ...), are CONTROL; other added tokens are
// USER_DEFINED with U+2581 replaced by a space; the rest NORMAL.
Expected<Vocab> load_hf_tokenizer_json(const std::string& tokenizer_json_path,
                                       const std::string& tokenizer_config_path, int32_t n_vocab);

}  // namespace latent::engine
