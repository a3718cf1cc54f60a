// Text files read from disk for the model's context and the agent's tools: regular files
// only, capped, binary ones refused. Containment (what may be read) is the caller's:
// Workspaces::resolve.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace latent::agent {

// A NUL byte in the first 8 KiB: not text.
bool is_binary(std::string_view text);

// The file's bytes when it is a regular file of at most `max_bytes` and not binary; else
// nullopt, with `why` (when given) saying which in a sentence for the user or the model.
std::optional<std::string> read_text_file(const std::string& path, size_t max_bytes,
                                          std::string* why = nullptr);

}  // namespace latent::agent
