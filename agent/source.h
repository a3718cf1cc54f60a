// Source: a place in the workspace that a chat answer was given to read — an @-mentioned
// file, a definition the index found, lines the agent read — shown under the answer so
// the user can open it. Plain data; the protocol spelling is in lsp_server.cpp.
#pragma once

#include <string>

#include "lsp/protocol.h"

namespace latent::agent {

struct Source {
    std::string uri;   // file: URI of the real path
    std::string path;  // as the prompt and the view show it (folder-relative)
    lsp::Range range;  // lines (and characters where known) it covers
    std::string why;   // "@file", "definition of Foo", "search: parse config", "read"
    friend bool operator==(const Source&, const Source&) = default;
};

}  // namespace latent::agent
