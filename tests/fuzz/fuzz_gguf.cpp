// libFuzzer target: the GGUF reader, then the model loader, the tokenizer and (for
// small models) one token through the reference forward pass, on arbitrary bytes.
// Any crash, out-of-bounds read (ASan) or undefined behaviour (UBSan) is a finding.
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/reference.h"
#include "engine/session.h"
#include "engine/tokenizer.h"

using namespace latent::engine;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // Copy: the reader must not depend on the buffer being aligned or NUL-terminated.
    std::vector<uint8_t> buf(data, data + size);
    auto file = GgufFile::parse(buf.data(), buf.size(), "fuzz.gguf");
    if (!file) return 0;
    for (const auto& [key, value] : (*file)->metadata()) (void)value.array_size();
    auto model = Model::from_gguf(std::move(*file));
    if (!model) return 0;
    auto tok = Tokenizer::create((*model)->vocab());
    if (tok) {
        const auto ids = tok->encode("def fib(n):\n    return n", true, true);
        (void)tok->decode(ids);
    }
    // Run one token when the model is small enough to keep the fuzzer fast.
    const HParams& hp = (*model)->hparams();
    if ((*model)->total_weight_bytes() < (4u << 20) && hp.n_embd <= 256) {
        ReferenceBackend backend;
        LatentCache cache(
            LatentCache::Config{hp.n_layer, hp.kv_lora_rank, hp.n_rot, 16, 64u << 20});
        Session s(**model, backend, cache);
        const int32_t prompt[2] = {0, static_cast<int32_t>(hp.n_vocab - 1)};
        (void)s.prefill(prompt);
    }
    return 0;
}
