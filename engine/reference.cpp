// The reference forward pass (see reference.h). Shapes in comments use [rows][cols]
// of the float buffers here (row-major, one row per token unless said otherwise).
#include "engine/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "engine/rope.h"

namespace latent::engine {
namespace ref {

namespace {
double dot(const float* a, const float* b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
    return s;
}
}  // namespace

void matmul(const Tensor& w, int64_t index, const float* x, int64_t n_tokens, float* y) {
    const int64_t n_in = w.ne[0], n_out = w.ne[1];
    const uint8_t* base = w.matrix(index);
    std::vector<float> row(static_cast<size_t>(n_in));
    for (int64_t o = 0; o < n_out; ++o) {
        dequantize_row(w.type, base + o * w.row_size(), row.data(), n_in);
        for (int64_t t = 0; t < n_tokens; ++t)
            y[t * n_out + o] = static_cast<float>(dot(row.data(), x + t * n_in, n_in));
    }
}

void rms_norm(float* x, const float* w, int64_t n, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
    const double scale = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
    for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(x[i] * scale) * w[i];
}

float silu(float x) { return x / (1.0f + std::exp(-x)); }

Routing route(const HParams& hp, const float* logits, const float* bias) {
    const int32_t X = static_cast<int32_t>(hp.n_expert);
    // p: the gating probabilities (they weight the experts); s: selection scores.
    std::vector<float> p(logits, logits + X);
    if (hp.gating == GatingFunc::kSoftmax) {
        const float mx = *std::max_element(p.begin(), p.end());
        double sum = 0;
        for (float& v : p) sum += (v = std::exp(v - mx));
        for (float& v : p) v = static_cast<float>(v / sum);
    } else {
        for (float& v : p) v = 1.0f / (1.0f + std::exp(-v));
    }
    std::vector<float> s(p);
    if (bias)
        for (int32_t e = 0; e < X; ++e) s[e] += bias[e];

    // Group-limited selection: a group's score is the sum of its two best scores.
    const int32_t G = static_cast<int32_t>(hp.n_expert_groups);
    if (G > 1) {
        const int32_t per = X / G;
        std::vector<std::pair<float, int32_t>> groups;
        for (int32_t g = 0; g < G; ++g) {
            std::vector<float> gs(s.begin() + g * per, s.begin() + (g + 1) * per);
            std::partial_sort(gs.begin(), gs.begin() + std::min(2, per), gs.end(),
                              std::greater<float>());
            groups.push_back({gs[0] + (per > 1 ? gs[1] : 0.0f), g});
        }
        std::stable_sort(groups.begin(), groups.end(),
                         [](auto& a, auto& b) { return a.first > b.first; });
        for (size_t k = hp.n_group_used; k < groups.size(); ++k) {
            const int32_t g = groups[k].second;
            for (int32_t e = g * per; e < (g + 1) * per; ++e)
                s[e] = -std::numeric_limits<float>::infinity();
        }
    }

    std::vector<int32_t> order(X);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return s[a] > s[b]; });
    Routing r;
    r.experts.assign(order.begin(), order.begin() + hp.n_expert_used);
    double sum = 0;
    for (int32_t e : r.experts) {
        r.weights.push_back(p[e]);
        sum += p[e];
    }
    if (hp.expert_weights_norm) {
        const double d = std::max(sum, 6.103515625e-5);
        for (float& w : r.weights) w = static_cast<float>(w / d);
    }
    if (hp.expert_weights_scale != 0.0f && hp.expert_weights_scale != 1.0f)
        for (float& w : r.weights) w *= hp.expert_weights_scale;
    return r;
}

}  // namespace ref

namespace {

using ref::matmul;
using ref::rms_norm;

const float* f32(const Tensor& t) { return reinterpret_cast<const float*>(t.data); }

// SwiGLU FFN for n_tokens rows of u [T][E] with gate/up [E, ff] and down [ff, E]
// (matrix `index` of 3D expert tensors); y [T][E] is overwritten.
void swiglu(const Tensor& gate, const Tensor& up, const Tensor& down, int64_t index, const float* u,
            int64_t n_tokens, float* y) {
    const int64_t ff = gate.ne[1];
    std::vector<float> g(n_tokens * ff), a(n_tokens * ff);
    matmul(gate, index, u, n_tokens, g.data());
    matmul(up, index, u, n_tokens, a.data());
    for (int64_t i = 0; i < n_tokens * ff; ++i) a[i] *= ref::silu(g[i]);
    matmul(down, index, a.data(), n_tokens, y);
}

}  // namespace

namespace {

// One transformer block (MLA attention, then the dense or MoE FFN) over the residual
// stream x [T][E] of T new tokens at positions n_past.., its cache rows in layer `cl` of
// `seq` (reserved by the caller).
void block(const HParams& hp, const LayerWeights& l, uint32_t cl, SeqCache& seq, int32_t n_past,
           std::vector<float>& x, int64_t T) {
    const int64_t E = hp.n_embd, H = hp.n_head, n = hp.n_embd_head_qk_nope, r = hp.n_rot,
                  v = hp.n_embd_head_v, L = hp.kv_lora_rank, qk = n + r;
    const float eps = hp.rms_eps, kq_scale = hp.kq_scale();
    const RopeParams rope = rope_params(hp);
    std::vector<float> xn(T * E);

    // ---- Attention (MLA) ----
    xn = x;
    for (int64_t t = 0; t < T; ++t) rms_norm(&xn[t * E], f32(l.attn_norm), E, eps);

    // q [T][H][n + r]: per head [q_nope | q_pe].
    std::vector<float> q(T * H * qk);
    if (l.attn_q) {
        matmul(l.attn_q, 0, xn.data(), T, q.data());
    } else {
        const int64_t qr = hp.q_lora_rank;
        std::vector<float> cq(T * qr);  // c_q [T][q_lora]
        matmul(l.attn_q_a, 0, xn.data(), T, cq.data());
        for (int64_t t = 0; t < T; ++t) rms_norm(&cq[t * qr], f32(l.attn_q_a_norm), qr, eps);
        matmul(l.attn_q_b, 0, cq.data(), T, q.data());
    }

    // [c_kv | k_pe] [T][L + r]; the cache keeps RMSNorm(c_kv) and RoPE(k_pe).
    std::vector<float> kva(T * (L + r));
    matmul(l.attn_kv_a_mqa, 0, xn.data(), T, kva.data());
    for (int64_t t = 0; t < T; ++t) {
        const int32_t pos = n_past + static_cast<int32_t>(t);
        float* row = seq.row(pos, cl);
        std::copy_n(&kva[t * (L + r)], L + r, row);
        rms_norm(row, f32(l.attn_kv_a_norm), L, eps);
        rope_apply(rope, pos, row + L);
        for (int64_t h = 0; h < H; ++h) rope_apply(rope, pos, &q[(t * H + h) * qk + n]);
    }

    // Decompress every cached position: k_nope [N][H][n], v [N][H][v].
    const int64_t N = n_past + T;
    std::vector<float> c(N * L);
    for (int64_t j = 0; j < N; ++j) std::copy_n(seq.row(static_cast<int32_t>(j), cl), L, &c[j * L]);
    std::vector<float> k_nope(N * H * n), val(N * H * v);
    if (l.attn_kv_b) {
        // Legacy [L, H(n+v)]: output row h(n+v)+j is k_nope (j < n) else v.
        std::vector<float> kv(N * H * (n + v));
        matmul(l.attn_kv_b, 0, c.data(), N, kv.data());
        for (int64_t j = 0; j < N; ++j)
            for (int64_t h = 0; h < H; ++h) {
                const float* src = &kv[(j * H + h) * (n + v)];
                std::copy_n(src, n, &k_nope[(j * H + h) * n]);
                std::copy_n(src + n, v, &val[(j * H + h) * v]);
            }
    } else {
        std::vector<float> wk(L * n), vh(N * v);
        for (int64_t h = 0; h < H; ++h) {
            // attn_k_b [n, L, H]: head h is L rows of n; k_nope[d] = sum_c wk[c][d] c[c].
            for (int64_t cc = 0; cc < L; ++cc)
                dequantize_row(l.attn_k_b.type, l.attn_k_b.matrix(h) + cc * l.attn_k_b.row_size(),
                               &wk[cc * n], n);
            for (int64_t j = 0; j < N; ++j)
                for (int64_t d = 0; d < n; ++d) {
                    double s = 0;
                    for (int64_t cc = 0; cc < L; ++cc)
                        s += static_cast<double>(wk[cc * n + d]) * c[j * L + cc];
                    k_nope[(j * H + h) * n + d] = static_cast<float>(s);
                }
            // attn_v_b [L, v, H]: head h is v rows of L.
            matmul(l.attn_v_b, h, c.data(), N, vh.data());
            for (int64_t j = 0; j < N; ++j) std::copy_n(&vh[j * v], v, &val[(j * H + h) * v]);
        }
    }

    // Causal softmax attention per head; o [T][H][v].
    std::vector<float> o(T * H * v, 0.0f);
    std::vector<double> score(N);
    for (int64_t t = 0; t < T; ++t) {
        const int64_t last = n_past + t;  // attends positions 0..last
        for (int64_t h = 0; h < H; ++h) {
            const float* qh = &q[(t * H + h) * qk];
            double mx = -std::numeric_limits<double>::infinity();
            for (int64_t j = 0; j <= last; ++j) {
                const float* kpe = seq.row(static_cast<int32_t>(j), cl) + L;
                double s = 0;
                for (int64_t d = 0; d < n; ++d)
                    s += static_cast<double>(qh[d]) * k_nope[(j * H + h) * n + d];
                for (int64_t d = 0; d < r; ++d) s += static_cast<double>(qh[n + d]) * kpe[d];
                score[j] = s * kq_scale;
                mx = std::max(mx, score[j]);
            }
            double sum = 0;
            for (int64_t j = 0; j <= last; ++j) sum += (score[j] = std::exp(score[j] - mx));
            float* oh = &o[(t * H + h) * v];
            for (int64_t k = 0; k < v; ++k) {
                double acc = 0;
                for (int64_t j = 0; j <= last; ++j) acc += score[j] * val[(j * H + h) * v + k];
                oh[k] = static_cast<float>(acc / sum);
            }
        }
    }
    std::vector<float> attn(T * E);
    matmul(l.attn_output, 0, o.data(), T, attn.data());
    for (int64_t i = 0; i < T * E; ++i) x[i] += attn[i];

    // ---- FFN: dense SwiGLU, or shared + routed experts ----
    xn = x;
    for (int64_t t = 0; t < T; ++t) rms_norm(&xn[t * E], f32(l.ffn_norm), E, eps);
    std::vector<float> y(T * E, 0.0f);
    if (!l.is_moe()) {
        swiglu(l.ffn_gate, l.ffn_up, l.ffn_down, 0, xn.data(), T, y.data());
    } else {
        const int64_t X = hp.n_expert;
        std::vector<float> router(T * X), out(E);
        matmul(l.ffn_gate_inp, 0, xn.data(), T, router.data());
        for (int64_t t = 0; t < T; ++t) {
            const ref::Routing rt =
                ref::route(hp, &router[t * X], l.exp_probs_b ? f32(l.exp_probs_b) : nullptr);
            for (size_t k = 0; k < rt.experts.size(); ++k) {
                swiglu(l.ffn_gate_exps, l.ffn_up_exps, l.ffn_down_exps, rt.experts[k], &xn[t * E],
                       1, out.data());
                for (int64_t i = 0; i < E; ++i) y[t * E + i] += rt.weights[k] * out[i];
            }
        }
        if (l.ffn_gate_shexp) {
            std::vector<float> sh(T * E);
            swiglu(l.ffn_gate_shexp, l.ffn_up_shexp, l.ffn_down_shexp, 0, xn.data(), T, sh.data());
            for (int64_t i = 0; i < T * E; ++i) y[i] += sh[i];
        }
    }
    for (int64_t i = 0; i < T * E; ++i) x[i] += y[i];
}

// logits = head * RMSNorm(x; norm) for the last row or every row of x [T][E].
void head(const HParams& hp, const Tensor& norm, const Tensor& out, std::vector<float>& x,
          int64_t T, LogitsMode mode, std::vector<float>& logits) {
    const int64_t E = hp.n_embd;
    const int64_t first = mode == LogitsMode::kLast ? T - 1 : 0, n_out = T - first;
    for (int64_t t = first; t < T; ++t) rms_norm(&x[t * E], f32(norm), E, hp.rms_eps);
    logits.resize(n_out * hp.n_vocab);
    matmul(out, 0, &x[first * E], n_out, logits.data());
}

}  // namespace

Status ReferenceBackend::forward(const Model& model, SeqCache& seq, std::span<const int32_t> tokens,
                                 LogitsMode mode, std::vector<float>& logits) {
    return run(model, seq, tokens, mode, logits, nullptr);
}

Status ReferenceBackend::forward_batch(const Model& model, std::span<const SeqBatch> batch) {
    std::vector<float> unused;
    for (const SeqBatch& b : batch)
        if (Status s =
                run(model, *b.seq, b.tokens, b.mode, b.logits ? *b.logits : unused, b.hidden);
            !s)
            return s;
    return Status::success();
}

Status ReferenceBackend::run(const Model& model, SeqCache& seq, std::span<const int32_t> tokens,
                             LogitsMode mode, std::vector<float>& logits,
                             std::vector<float>* hidden) {
    const HParams& hp = model.hparams();
    const Weights& W = model.weights();
    const int64_t T = static_cast<int64_t>(tokens.size());
    if (Status s = check_tokens(hp, tokens); !s) return s;
    const int32_t n_past = seq.n_tokens();
    if (Status s = seq.reserve(static_cast<int32_t>(T)); !s) return s;
    const int64_t E = hp.n_embd;

    // x [T][E]: the residual stream.
    std::vector<float> x(T * E);
    for (int64_t t = 0; t < T; ++t)
        dequantize_row(W.token_embd.type, W.token_embd.row(tokens[t]), &x[t * E], E);
    for (uint32_t il = 0; il < hp.n_layer; ++il) {
        block(hp, W.layers[il], il, seq, n_past, x, T);
        if (on_layer) on_layer(il + 1, hp.n_layer);
    }
    seq.commit(static_cast<int32_t>(T));
    if (hidden) *hidden = x;
    head(hp, W.output_norm, W.output, x, T, mode, logits);
    return Status::success();
}

Status ReferenceBackend::forward_mtp(const Model& model, std::span<const MtpBatch> batch) {
    const HParams& hp = model.hparams();
    const Weights& W = model.weights();
    if (hp.n_nextn == 0) return make_error("forward_mtp: the model has no MTP block");
    const LayerWeights& l = W.layers[hp.n_layer];
    const int64_t E = hp.n_embd;
    for (const MtpBatch& b : batch) {
        const auto T = static_cast<int64_t>(b.next.size());
        if (Status s = check_tokens(hp, b.next); !s) return s;
        if (b.hidden.size() != static_cast<size_t>(T * E))
            return make_error("forward_mtp: hidden rows do not match the tokens");
        const int32_t n_past = b.seq->n_tokens();
        if (Status s = b.seq->reserve(static_cast<int32_t>(T)); !s) return s;
        // x[t] = eh_proj [RMSNorm(embed(next[t]); enorm) | RMSNorm(hidden[t]; hnorm)].
        const Tensor& embd = l.nextn_embed_tokens ? l.nextn_embed_tokens : W.token_embd;
        std::vector<float> cat(T * 2 * E), x(T * E);
        for (int64_t t = 0; t < T; ++t) {
            float* c = &cat[t * 2 * E];
            dequantize_row(embd.type, embd.row(b.next[t]), c, E);
            rms_norm(c, f32(l.nextn_enorm), E, hp.rms_eps);
            std::copy_n(&b.hidden[t * E], E, c + E);
            rms_norm(c + E, f32(l.nextn_hnorm), E, hp.rms_eps);
        }
        matmul(l.nextn_eh_proj, 0, cat.data(), T, x.data());
        block(hp, l, 0, *b.seq, n_past, x, T);
        b.seq->commit(static_cast<int32_t>(T));
        std::vector<float> unused;
        const Tensor& norm = l.nextn_shared_head_norm ? l.nextn_shared_head_norm : W.output_norm;
        const Tensor& out = l.nextn_shared_head_head ? l.nextn_shared_head_head : W.output;
        head(hp, norm, out, x, T, LogitsMode::kLast, b.logits ? *b.logits : unused);
    }
    return Status::success();
}

}  // namespace latent::engine
