// Finding Latent's data files (the DeepSeek-V3 tokenizer extracted from npm) without
// flags: $LATENT_DATA_DIR, then share/ beside the binary, then the build's share dir.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace latent::agent {

// The directories searched, in order.
std::vector<std::string> data_dirs();
// The first existing `relative` path under data_dirs(), if any.
std::optional<std::string> find_data_file(const std::string& relative);

}  // namespace latent::agent
