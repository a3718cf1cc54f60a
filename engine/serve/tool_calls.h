// Tool calls in the model's own format (DeepSeek-V3's tool tokens; their spellings as text
// for Coder-V2, see prompt_format.h): the tools described to the model, and the answer's
// text split into content and calls — whole, or as the text streams in. It does not
// constrain generation (output_constraint.h makes the calls well-formed).
//
// Thread safety: free functions; a ToolCallStream belongs to one answer.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "engine/prompt_format.h"
#include "engine/serve/api_request.h"

namespace latent::serve {

// The system-prompt text that tells the model its tools (name, description, parameters
// schema) and how to call them.
std::string tool_prompt(const std::vector<ToolFunction>& tools);

// An answer's text split at the tool-call markers: what came before the calls is content;
// each complete call (name and arguments) is a call. Text after the calls is dropped.
class ToolCallStream {
public:
    struct Update {
        std::string content;                      // content that is final now
        std::vector<engine::ToolCallText> calls;  // calls completed by this piece
    };
    // Feeds the next piece of the answer's text.
    Update push(std::string_view piece);
    // The end of the answer: content held back (a partial marker) comes out; a call left
    // unfinished is dropped.
    Update finish();
    bool in_calls() const { return in_calls_; }
    int32_t calls_seen() const { return calls_; }

private:
    Update scan(bool final);
    std::string buffer_;  // text not yet classified
    bool in_calls_ = false;
    int32_t calls_ = 0;
};

// A fresh call id in OpenAI's shape ("call_" + 24 letters and digits), random per process.
std::string new_call_id();

}  // namespace latent::serve
