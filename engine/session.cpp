// Session: longest-common-prefix reuse over the paged latent cache (see session.h).
#include "engine/session.h"

#include <algorithm>

#include "engine/prefix_cache.h"

namespace latent::engine {

int32_t common_prefix(std::span<const int32_t> a, std::span<const int32_t> b) {
    const size_t n = std::min(a.size(), b.size());
    size_t i = 0;
    while (i < n && a[i] == b[i]) ++i;
    return static_cast<int32_t>(i);
}

Session::Session(const Model& model, Backend& backend, LatentCache& cache)
    : model_(model), backend_(backend), seq_(cache) {}

void Session::truncate(int32_t n) {
    n = std::clamp(n, 0, n_tokens());
    tokens_.resize(static_cast<size_t>(n));
    seq_.truncate(n);
}

Expected<Session::PrefillResult> Session::prefill(std::span<const int32_t> prompt, int32_t chunk) {
    if (prompt.empty()) return make_error("prefill: empty prompt");
    const int32_t n = static_cast<int32_t>(prompt.size());
    // Reuse the shared prefix, but recompute at least the last prompt token: its
    // logits are not cached.
    int32_t keep = std::min(common_prefix(tokens_, prompt), n - 1);
    if (prefix_ && prefix_->peek(prompt.first(static_cast<size_t>(n - 1))) > keep) {
        truncate(0);
        keep = prefix_->attach(prompt, seq_, n - 1).n_tokens;
        tokens_.assign(prompt.begin(), prompt.begin() + keep);
    }
    truncate(keep);
    PrefillResult result;
    result.n_reused = keep;
    if (chunk <= 0) chunk = n;
    for (int32_t at = keep; at < n; at += chunk) {
        const int32_t len = std::min(chunk, n - at);
        auto piece = prompt.subspan(static_cast<size_t>(at), static_cast<size_t>(len));
        if (Status s = backend_.forward(model_, seq_, piece, LogitsMode::kLast, result.logits);
            !s) {
            truncate(at);
            return s.error();
        }
        tokens_.insert(tokens_.end(), piece.begin(), piece.end());
    }
    result.n_computed = n - keep;
    if (prefix_) {
        const size_t pt = seq_.cache().config().page_tokens;
        prefix_->insert(prompt.first(prompt.size() / pt * pt), seq_);
    }
    return result;
}

Expected<std::vector<float>> Session::decode(int32_t token) {
    std::vector<float> logits;
    const int32_t one[1] = {token};
    if (Status s = backend_.forward(model_, seq_, one, LogitsMode::kLast, logits); !s)
        return s.error();
    tokens_.push_back(token);
    return logits;
}

Expected<std::vector<float>> Session::append_all(std::span<const int32_t> tokens) {
    std::vector<float> logits;
    if (tokens.empty()) return logits;
    if (Status s = backend_.forward(model_, seq_, tokens, LogitsMode::kAll, logits); !s)
        return s.error();
    tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
    return logits;
}

}  // namespace latent::engine
