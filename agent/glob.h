// Glob patterns with VS Code's meaning (files.exclude, search.exclude, latent.index.exclude):
// "*" and "?" stay within one path segment, "**" spans any number of segments (none
// included), "{a,b}" alternatives (nested too), "[0-9]" / "[!a]" ranges. A pattern that
// matches a folder matches everything under it ("**/node_modules" excludes
// node_modules/x.js). Paths are workspace-relative with '/'. Not a file walker.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace latent::agent {

// True when `glob` matches `path` itself (not its folders).
bool glob_match(std::string_view glob, std::string_view path);
// True when one of `globs` matches `path` or one of the folders it lies in.
bool glob_excludes(const std::vector<std::string>& globs, std::string_view path);

}  // namespace latent::agent
