// LspClient for the tests: the same child-process driver `latent demo` uses
// (agent/lsp_child.h), under the tests' name.
#pragma once

#include "agent/lsp_child.h"

namespace latent::test {
using LspClient = agent::LspChild;
}  // namespace latent::test
