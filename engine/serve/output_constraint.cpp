// OutputConstraints (see output_constraint.h).
#include "engine/serve/output_constraint.h"

namespace latent::serve {

struct OutputConstraints::Tables {};

OutputConstraints::OutputConstraints(const engine::Tokenizer& tokenizer,
                                     std::vector<int32_t> end_tokens)
    : tok_(tokenizer), end_tokens_(std::move(end_tokens)) {}

OutputConstraints::~OutputConstraints() = default;

engine::Expected<std::shared_ptr<engine::TokenConstraint>> OutputConstraints::for_request(
    const ApiRequest& r) {
    if (r.response_format.kind != ResponseFormat::Kind::kText)
        return engine::make_error("response_format: JSON output is not available yet");
    return std::shared_ptr<engine::TokenConstraint>();
}

}  // namespace latent::serve
