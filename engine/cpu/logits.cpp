// The input rows and the logits of the fast CPU forward pass (see logits.h).
#include "engine/cpu/logits.h"

#include <algorithm>

namespace latent::engine::cpu {

void input_rows(Step& st, const Weights& W, std::span<const std::span<const float>> mtp_hidden,
                std::vector<float>& x) {
    const HParams& hp = st.hp;
    const int64_t T = st.T, E = hp.n_embd;
    const float eps = hp.rms_eps;
    x.assign(static_cast<size_t>(T * E), 0.0f);
    if (mtp_hidden.empty()) {
        for (int64_t t = 0; t < T; ++t)
            dequantize_row(W.token_embd.type, W.token_embd.row(st.ids[t]), &x[t * E], E);
        return;
    }
    // x[t] = eh_proj [RMSNorm(embedding of next[t]; enorm) | RMSNorm(hidden[t]; hnorm)].
    const LayerWeights& l = W.layers[hp.n_layer];
    const Tensor& embd = l.nextn_embed_tokens ? l.nextn_embed_tokens : W.token_embd;
    std::vector<float> cat(T * 2 * E);
    for (int64_t b = 0; b < st.S; ++b)
        for (int64_t i = 0; i < st.seg_begin[b + 1] - st.seg_begin[b]; ++i) {
            float* c = &cat[(st.seg_begin[b] + i) * 2 * E];
            dequantize_row(embd.type, embd.row(st.batch[b].tokens[i]), c, E);
            rms_norm(c, f32(l.nextn_enorm), E, eps);
            std::copy_n(&mtp_hidden[b][i * E], E, c + E);
            rms_norm(c + E, f32(l.nextn_hnorm), E, eps);
        }
    Acts a_in;
    st.pass.quantize(l.nextn_eh_proj.type, cat.data(), 2 * E, T, 2 * E, a_in);
    st.pass.run({job_for(l.nextn_eh_proj, 0, a_in, a_in.rows.data(), T, x.data(), E)});
}

void output_logits(Step& st, const Weights& W, bool mtp, const std::vector<float>& x) {
    const HParams& hp = st.hp;
    const int64_t S = st.S, E = hp.n_embd;
    const std::span<const SeqBatch> batch = st.batch;
    const std::vector<int64_t>& seg_begin = st.seg_begin;
    const LayerWeights* nextn = mtp ? &W.layers[hp.n_layer] : nullptr;
    const Tensor& out_norm =
        nextn && nextn->nextn_shared_head_norm ? nextn->nextn_shared_head_norm : W.output_norm;
    const Tensor& out_head =
        nextn && nextn->nextn_shared_head_head ? nextn->nextn_shared_head_head : W.output;

    // Logits of the tokens that want them, in one matmul, then handed to each sequence.
    std::vector<int64_t> out_rows;
    for (int64_t b = 0; b < S; ++b) {
        if (!batch[b].logits) continue;
        const int64_t first =
            batch[b].mode == LogitsMode::kLast ? seg_begin[b + 1] - 1 : seg_begin[b];
        for (int64_t t = first; t < seg_begin[b + 1]; ++t) out_rows.push_back(t);
    }
    const auto n_out = static_cast<int64_t>(out_rows.size());
    if (n_out == 0) return;
    std::vector<float> xo(n_out * E);
    for (int64_t i = 0; i < n_out; ++i) {
        std::copy_n(&x[out_rows[i] * E], E, &xo[i * E]);
        rms_norm(&xo[i * E], f32(out_norm), E, hp.rms_eps);
    }
    const int64_t V = hp.n_vocab;
    std::vector<float> all;
    std::vector<float>* dst = S == 1 ? batch[0].logits : &all;  // one sequence: in place
    dst->resize(n_out * V);
    Acts a_in;
    st.pass.quantize(out_head.type, xo.data(), E, n_out, E, a_in,
                     [&](int64_t i) { return out_rows[i]; });
    st.pass.run({job_for(out_head, 0, a_in, a_in.rows.data(), n_out, dst->data(), V)});
    if (S > 1) {
        int64_t at = 0;
        for (int64_t b = 0; b < S; ++b) {
            if (!batch[b].logits) continue;
            const int64_t cnt =
                batch[b].mode == LogitsMode::kLast ? 1 : seg_begin[b + 1] - seg_begin[b];
            batch[b].logits->assign(all.begin() + at * V, all.begin() + (at + cnt) * V);
            at += cnt;
        }
    }
}

}  // namespace latent::engine::cpu
