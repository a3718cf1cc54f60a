// Test models: make-model's GGUFs written into a temporary directory, with either the
// real DeepSeek-V3 vocabulary (from build/share, as scripts/setup extracted it) or a
// small byte-level vocabulary that keeps unit tests and fuzz seeds fast and small.
#pragma once

#include <string>

#include "engine/make_model.h"
#include "engine/vocab.h"

namespace latent::test {

// 256 byte tokens (GPT-2 byte-to-unicode), a few merges, BOS/EOS and the FIM and chat
// specials spelled as in DeepSeek-V3: about 270 tokens.
engine::Vocab small_vocab();
// The real DeepSeek-V3 vocabulary (129280 ids); fails the test if it is missing.
engine::Vocab real_vocab();

// A fresh temporary directory for this test process (removed at exit).
std::string temp_dir();

// Writes (once per distinct options, cached for the process) a model and returns its path.
std::string make_test_model(engine::MakeModelOptions options, bool real_tokenizer = false);

}  // namespace latent::test
