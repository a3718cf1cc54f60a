// TokenConstraint: what a request may sample next, decided per step by its owner (the
// JSON-output and tool-call grammars of `latent serve`). The scheduler asks it to mask the
// logits before every sample and tells it the token kept; nothing else in the engine knows
// about grammars. A constrained request never drafts (a draft is checked against the
// unmasked row).
//
// Thread safety: one constraint belongs to one request; the scheduler calls it from its
// own thread only.
#pragma once

#include <cstdint>

namespace latent::engine {

class TokenConstraint {
public:
    virtual ~TokenConstraint() = default;
    // Sets the logit of every token that may not come next to -infinity, leaving at least
    // one finite (an implementation that cannot must allow an end token). `remaining`: the
    // tokens the request may still sample, this one included (>= 1), so a constraint can
    // steer to a complete output before max_tokens cuts it.
    virtual void mask(float* logits, int32_t n_vocab, int32_t remaining) = 0;
    // The token sampled from the masked row (end tokens included).
    virtual void accept(int32_t token) = 0;
};

}  // namespace latent::engine
