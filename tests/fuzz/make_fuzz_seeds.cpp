// Writes seed inputs for a fuzz target. fuzz_gguf: real GGUFs from make-model with a
// small vocabulary (every layout the reader must handle), and truncations of them.
// Any other target: the files committed under tests/fuzz/seeds/<target>/.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "engine/make_model.h"
#include "tests/support/test_models.h"

using namespace latent::engine;

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: make_fuzz_seeds TARGET DIR\n");
        return 1;
    }
    const std::string dir = argv[2];
    std::filesystem::create_directories(dir);
    if (std::string(argv[1]) != "fuzz_gguf") {
        const auto src = std::filesystem::path(LATENT_SOURCE_DIR) / "tests/fuzz/seeds" / argv[1];
        std::error_code ec;
        std::filesystem::copy(src, dir,
                              std::filesystem::copy_options::overwrite_existing |
                                  std::filesystem::copy_options::recursive,
                              ec);
        if (ec)
            std::fprintf(stderr, "make_fuzz_seeds: no seeds at %s (%s)\n", src.c_str(),
                         ec.message().c_str());
        return 0;
    }
    int n = 0;
    for (const char* q : {"f16", "q8_0", "f32"}) {
        for (bool split : {true, false}) {
            MakeModelOptions o;
            o.preset = "tiny";
            o.quant = *parse_type_name(q);
            o.split_kv = split;
            o.v3_gating = split;
            o.seed = 7;
            o.out = dir + "/tiny-" + q + (split ? "-split" : "-single") + ".gguf";
            if (!make_model(o, latent::test::small_vocab())) return 1;
            std::ifstream in(o.out, std::ios::binary);
            std::string bytes((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
            for (size_t cut : {size_t(16), size_t(100), bytes.size() / 3, bytes.size() - 1}) {
                std::ofstream(dir + "/cut" + std::to_string(n++) + ".gguf", std::ios::binary)
                    .write(bytes.data(), static_cast<std::streamsize>(cut));
            }
        }
    }
    return 0;
}
