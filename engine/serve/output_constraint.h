// OutputConstraints: the TokenConstraint a chat request's output needs — JSON output
// (response_format json_object / json_schema), tool calls in the model's format (always
// well-formed once begun; forced by tool_choice required or a named function; arguments
// held to the parameters schema for strict functions; no call at all for tool_choice
// none) — or none. Grammars and masks come from engine/json_constraint.h; this file
// composes them with the tool-call tokens. Schemas are compiled per request; the token
// tables once per tokenizer, on first use.
//
// Thread safety: for_request() may run on many threads at once.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "engine/expected.h"
#include "engine/serve/api_request.h"
#include "engine/token_constraint.h"
#include "engine/tokenizer.h"

namespace latent::serve {

class OutputConstraints {
public:
    OutputConstraints(const engine::Tokenizer& tokenizer, std::vector<int32_t> end_tokens);
    ~OutputConstraints();

    // Null when the output is free. Error (a 400 for the client): a schema this decoder
    // cannot hold the output to, naming the keyword.
    engine::Expected<std::shared_ptr<engine::TokenConstraint>> for_request(const ApiRequest& r);

    struct Tables;

private:
    const Tables& tables();
    const engine::Tokenizer& tok_;
    std::vector<int32_t> end_tokens_;
    std::once_flag once_;
    std::unique_ptr<Tables> tables_;
};

}  // namespace latent::serve
