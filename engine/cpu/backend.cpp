// The fast CPU forward pass (see backend.h): the orchestration of one call — the tokens
// of the batch laid out (cpu::Step), the input rows, each layer's MLA attention
// (mla_attention.cpp) and feed-forward block (moe_ffn.cpp) with their residuals, the
// logits (logits.cpp). The job runner every part uses is cpu::Pass (pass.h). Buffers are
// row-major [tokens][width] floats; T = tokens in this call.
#include "engine/cpu/backend.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "engine/cpu/logits.h"
#include "engine/cpu/mla_attention.h"
#include "engine/cpu/moe_ffn.h"
#include "engine/cpu/pass.h"
#include "engine/cpu/repacked_weights.h"
#include "engine/cpu/step.h"
#include "engine/rope.h"

namespace latent::engine {

namespace {

// The form of MLA for prompt chunks on the tile matmul (CpuBackend::MlaPrefill):
// LATENT_MLA_PREFILL=expanded, absorbed or per-token forces one, anything else chooses per
// chunk.
CpuBackend::MlaPrefill mla_prefill_default() {
    const char* e = std::getenv("LATENT_MLA_PREFILL");
    if (e && std::strcmp(e, "absorbed") == 0) return CpuBackend::MlaPrefill::kAbsorbed;
    if (e && std::strcmp(e, "expanded") == 0) return CpuBackend::MlaPrefill::kExpanded;
    if (e && std::strcmp(e, "per-token") == 0) return CpuBackend::MlaPrefill::kPerToken;
    return CpuBackend::MlaPrefill::kAuto;
}

}  // namespace

struct CpuBackend::Impl {
    // Legacy attn_kv_b files: W_UK^T per layer as float, [H][L][n] (see backend.h).
    const Model* model = nullptr;
    std::vector<std::vector<float>> wuk_t;
    // The model's R16 copies (repacked_weights.h), made for `repacked_for`.
    const Model* repacked_for = nullptr;
    cpu::RepackedWeights repacked;
};

CpuBackend::CpuBackend(int threads, const cpu::Kernels* kernels, bool precise, bool repack)
    : pool_(threads),
      k_(kernels ? *kernels : cpu::best_kernels()),
      precise_(precise),
      repack_(repack),
      mla_prefill_(mla_prefill_default()),
      impl_(std::make_unique<Impl>()) {}

CpuBackend::~CpuBackend() = default;

void CpuBackend::prepare(const Model& model) {
    if (impl_->repacked_for == &model) return;
    impl_->repacked_for = &model;
    if (repack_ && cpu::RepackedWeights::wanted(k_, precise_))
        impl_->repacked.build(model, k_, pool_,
                              available_ ? available_ : cpu::RepackedWeights::available_memory());
}

CpuBackend::Repacked CpuBackend::repacked() const {
    return {impl_->repacked.matrices(), impl_->repacked.bytes(), impl_->repacked.seconds(),
            impl_->repacked.skipped()};
}

Status CpuBackend::forward(const Model& model, SeqCache& seq, std::span<const int32_t> tokens,
                           LogitsMode mode, std::vector<float>& logits) {
    const SeqBatch one{&seq, tokens, mode, &logits};
    return forward_batch(model, std::span<const SeqBatch>(&one, 1));
}

Status CpuBackend::forward_batch(const Model& model, std::span<const SeqBatch> batch) {
    return run(model, batch, {});
}

Status CpuBackend::forward_mtp(const Model& model, std::span<const MtpBatch> batch) {
    const HParams& hp = model.hparams();
    if (hp.n_nextn == 0) return make_error("forward_mtp: the model has no MTP block");
    std::vector<SeqBatch> seqs;
    std::vector<std::span<const float>> hidden;
    for (const MtpBatch& b : batch) {
        if (b.hidden.size() != b.next.size() * hp.n_embd)
            return make_error("forward_mtp: hidden rows do not match the tokens");
        seqs.push_back({b.seq, b.next, LogitsMode::kLast, b.logits});
        hidden.push_back(b.hidden);
    }
    return run(model, seqs, hidden);
}

Status CpuBackend::run(const Model& model, std::span<const SeqBatch> batch,
                       std::span<const std::span<const float>> mtp_hidden) {
    const HParams& hp = model.hparams();
    const Weights& W = model.weights();
    if (batch.empty()) return make_error("forward: empty batch");
    // The trunk (layers 0..n_layer, cache layer = layer), or the first MTP block (weights
    // layer n_layer, cache layer 0 of the block's own cache).
    const bool mtp = !mtp_hidden.empty();
    const uint32_t first_layer = mtp ? hp.n_layer : 0, end_layer = hp.n_layer + (mtp ? 1 : 0);
    prepare(model);
    cpu::Pass pass(pool_, k_, precise_, &impl_->repacked);
    cpu::Step st(hp, batch, pass);
    // The sequences' tokens one after another; for each token its sequence and position.
    const auto S = st.S = static_cast<int64_t>(batch.size());
    st.seg_begin.assign(S + 1, 0);
    for (int64_t b = 0; b < S; ++b) {
        if (Status s = check_tokens(hp, batch[b].tokens); !s) return s;
        for (int64_t c = 0; c < b; ++c)
            if (batch[c].seq == batch[b].seq)
                return make_error("forward: a sequence appears twice in one batch");
        st.seg_begin[b + 1] = st.seg_begin[b] + static_cast<int64_t>(batch[b].tokens.size());
    }
    for (const SeqBatch& sb : batch)
        if (Status s = sb.seq->reserve(static_cast<int32_t>(sb.tokens.size())); !s) return s;
    const int64_t T = st.T = st.seg_begin[S];
    st.pos.resize(T);
    st.ids.resize(T);
    st.seq_of.resize(T);
    st.seq_index.resize(T);
    for (int64_t b = 0; b < S; ++b)
        for (int64_t i = 0; i < st.seg_begin[b + 1] - st.seg_begin[b]; ++i) {
            const int64_t t = st.seg_begin[b] + i;
            st.pos[t] = batch[b].seq->n_tokens() + static_cast<int32_t>(i);
            st.ids[t] = batch[b].tokens[i];
            st.seq_of[t] = batch[b].seq;
            st.seq_index[t] = b;
        }
    {
        std::vector<char> tiled(T);
        std::vector<int32_t> seq(T);
        for (int64_t b = 0; b < S; ++b)
            for (int64_t t = st.seg_begin[b]; t < st.seg_begin[b + 1]; ++t) {
                tiled[t] = st.seg_begin[b + 1] - st.seg_begin[b] >= cpu::Pass::kTiledMinTokens &&
                           batch[b].mode == LogitsMode::kLast;
                seq[t] = static_cast<int32_t>(b);
            }
        pass.set_tiled_tokens(std::move(tiled), std::move(seq));
    }

    // Legacy layout: W_UK^T as float, once per model.
    if (impl_->model != &model) {
        impl_->model = &model;
        impl_->wuk_t.assign(hp.n_layer + hp.n_nextn, {});
    }

    // cos/sin of every rotated pair at every new position, shared by all layers and heads.
    const int64_t r = hp.n_rot, E = hp.n_embd;
    const RopeParams rope = rope_params(hp);
    st.rope_cos.resize(T * (r / 2));
    st.rope_sin.resize(T * (r / 2));
    for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < r / 2; ++i) {
            const double th = rope_theta(rope, st.pos[t], static_cast<int32_t>(i));
            st.rope_cos[t * (r / 2) + i] = std::cos(th) * rope.magnitude;
            st.rope_sin[t * (r / 2) + i] = std::sin(th) * rope.magnitude;
        }

    std::vector<float> x, xn, attn, y;
    cpu::input_rows(st, W, mtp_hidden, x);
    cpu::MlaAttention mla(st, mla_prefill_, impl_->wuk_t);
    cpu::FeedForward ffn(st);
    const float eps = hp.rms_eps;
    for (uint32_t il = first_layer; il < end_layer; ++il) {
        const LayerWeights& l = W.layers[il];
        xn = x;
        pass.for_rows(T,
                      [&](int64_t t) { cpu::rms_norm(&xn[t * E], cpu::f32(l.attn_norm), E, eps); });
        mla.layer(l, il, il - first_layer, xn, attn);  // cache layer: the block's own for MTP
        for (int64_t i = 0; i < T * E; ++i) x[i] += attn[i];

        xn = x;
        pass.for_rows(T,
                      [&](int64_t t) { cpu::rms_norm(&xn[t * E], cpu::f32(l.ffn_norm), E, eps); });
        ffn.layer(l, xn, y);
        for (int64_t i = 0; i < T * E; ++i) x[i] += y[i];
    }
    for (const SeqBatch& sb : batch) sb.seq->commit(static_cast<int32_t>(sb.tokens.size()));
    for (int64_t b = 0; b < S; ++b)
        if (batch[b].hidden)
            batch[b].hidden->assign(x.begin() + st.seg_begin[b] * E,
                                    x.begin() + st.seg_begin[b + 1] * E);
    cpu::output_logits(st, W, mtp, x);
    return Status::success();
}

}  // namespace latent::engine
