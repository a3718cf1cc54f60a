// The feed-forward block of the fast CPU forward pass (see moe_ffn.h).
#include "engine/cpu/moe_ffn.h"

#include <utility>

namespace latent::engine::cpu {
namespace {

// SwiGLU on the gate/up outputs g, u (rows of ff), then quantized for `down` into `out`.
// row_tok: the token of each row (null: row i is token i).
void swiglu_rows(Pass& pass, std::vector<float>& g, const std::vector<float>& u, int64_t rows,
                 int64_t ff, GgmlType down_type, Acts& out,
                 const std::vector<int64_t>* row_tok = nullptr) {
    pass.for_rows(rows, [&](int64_t i) { pass.k().swiglu(&g[i * ff], &u[i * ff], ff); });
    pass.quantize(down_type, g.data(), ff, rows, ff, out,
                  [&](int64_t i) { return row_tok ? (*row_tok)[i] : i; });
}

}  // namespace

void FeedForward::dense(const LayerWeights& l, const std::vector<float>& xn,
                        std::vector<float>& y) {
    Pass& pass = st_.pass;
    const int64_t T = st_.T, E = st_.hp.n_embd;
    const int64_t ff = l.ffn_gate.ne[1];
    std::vector<float>& g = g_;
    std::vector<float>& u = u_;
    g.resize(T * ff);
    u.resize(T * ff);
    pass.quantize(l.ffn_gate.type, xn.data(), E, T, E, a_in_);
    const Acts* up_in = &a_in_;
    if (!pass.same_acts(l.ffn_up.type, l.ffn_gate.type)) {
        pass.quantize(l.ffn_up.type, xn.data(), E, T, E, a_aux_);
        up_in = &a_aux_;
    }
    pass.run({job_for(l.ffn_gate, 0, a_in_, a_in_.rows.data(), T, g.data(), ff),
              job_for(l.ffn_up, 0, *up_in, up_in->rows.data(), T, u.data(), ff)});
    swiglu_rows(pass, g, u, T, ff, l.ffn_down.type, a_aux2_);
    pass.run({job_for(l.ffn_down, 0, a_aux2_, a_aux2_.rows.data(), T, y.data(), E)});
}

void FeedForward::moe(const LayerWeights& l, const std::vector<float>& xn, std::vector<float>& y) {
    const HParams& hp = st_.hp;
    Pass& pass = st_.pass;
    const Kernels& k = pass.k();
    const int64_t T = st_.T, E = hp.n_embd;
    const int64_t X = hp.n_expert, f = l.ffn_gate_exps.ne[1];
    jobs_.clear();
    std::vector<float>& router = router_;
    router.resize(T * X);
    pass.quantize(l.ffn_gate_inp.type, xn.data(), E, T, E, a_aux_);
    pass.run({job_for(l.ffn_gate_inp, 0, a_aux_, a_aux_.rows.data(), T, router.data(), X)});

    // Group the batch's tokens by expert.
    std::vector<std::vector<std::pair<int64_t, float>>> members(X);
    std::vector<ref::Routing> routes(T);
    pass.for_rows(T, [&](int64_t t) {
        routes[t] = ref::route(hp, &router[t * X], l.exp_probs_b ? f32(l.exp_probs_b) : nullptr);
    });
    for (int64_t t = 0; t < T; ++t)
        for (size_t kk = 0; kk < routes[t].experts.size(); ++kk)
            members[routes[t].experts[kk]].push_back({t, routes[t].weights[kk]});
    std::vector<int64_t> active, offset;  // experts with tokens; their first hidden row
    std::vector<size_t> slot(X);          // expert -> its index in active
    int64_t n_rows = 0;
    for (int64_t e = 0; e < X; ++e)
        if (!members[e].empty()) {
            slot[e] = active.size();
            active.push_back(e);
            offset.push_back(n_rows);
            n_rows += static_cast<int64_t>(members[e].size());
        }

    pass.quantize(l.ffn_gate_exps.type, xn.data(), E, T, E, a_in_);
    std::vector<const uint8_t*> xptr(n_rows);
    for (size_t i = 0; i < active.size(); ++i)
        for (size_t m = 0; m < members[active[i]].size(); ++m)
            xptr[offset[i] + m] = a_in_.rows[members[active[i]][m].first];
    std::vector<float>& g = g_;
    std::vector<float>& u = u_;
    g.resize(n_rows * f);
    u.resize(n_rows * f);
    for (size_t i = 0; i < active.size(); ++i) {
        const int64_t cnt = static_cast<int64_t>(members[active[i]].size());
        jobs_.push_back(job_for(l.ffn_gate_exps, active[i], a_in_, &xptr[offset[i]], cnt,
                                &g[offset[i] * f], f));
        jobs_.push_back(
            job_for(l.ffn_up_exps, active[i], a_in_, &xptr[offset[i]], cnt, &u[offset[i] * f], f));
    }
    const bool shared = static_cast<bool>(l.ffn_gate_shexp);
    const int64_t fs = shared ? l.ffn_gate_shexp.ne[1] : 0;
    std::vector<float>& gs = gs_;
    std::vector<float>& us = us_;
    std::vector<float>& ys = ys_;
    gs.resize(T * fs);
    us.resize(T * fs);
    ys.resize(shared ? T * E : 0);
    if (shared) {
        const Acts* sh_in = &a_in_;
        if (!pass.same_acts(l.ffn_gate_shexp.type, l.ffn_gate_exps.type)) {
            pass.quantize(l.ffn_gate_shexp.type, xn.data(), E, T, E, a_sh_);
            sh_in = &a_sh_;
        }
        jobs_.push_back(job_for(l.ffn_gate_shexp, 0, *sh_in, sh_in->rows.data(), T, gs.data(), fs));
        jobs_.push_back(job_for(l.ffn_up_shexp, 0, *sh_in, sh_in->rows.data(), T, us.data(), fs));
    }
    pass.run(jobs_);

    std::vector<int64_t> row_tok(n_rows);
    for (size_t i = 0; i < active.size(); ++i)
        for (size_t m = 0; m < members[active[i]].size(); ++m)
            row_tok[offset[i] + m] = members[active[i]][m].first;
    swiglu_rows(pass, g, u, n_rows, f, l.ffn_down_exps.type, a_aux_, &row_tok);
    std::vector<float>& out = out_;
    out.resize(n_rows * E);
    jobs_.clear();
    for (size_t i = 0; i < active.size(); ++i) {
        const int64_t cnt = static_cast<int64_t>(members[active[i]].size());
        jobs_.push_back(job_for(l.ffn_down_exps, active[i], a_aux_, &a_aux_.rows[offset[i]], cnt,
                                &out[offset[i] * E], E));
    }
    if (shared) {
        swiglu_rows(pass, gs, us, T, fs, l.ffn_down_shexp.type, a_aux2_);
        jobs_.push_back(
            job_for(l.ffn_down_shexp, 0, a_aux2_, a_aux2_.rows.data(), T, ys.data(), E));
    }
    pass.run(jobs_);

    // y[t] = Σ weight · expert output (in routing order, as the reference) + shared.
    std::vector<int64_t> row_of(T * hp.n_expert_used);
    std::vector<size_t> seen(X, 0);
    for (int64_t t = 0; t < T; ++t)
        for (size_t kk = 0; kk < routes[t].experts.size(); ++kk) {
            const int32_t e = routes[t].experts[kk];
            row_of[t * hp.n_expert_used + kk] = offset[slot[e]] + static_cast<int64_t>(seen[e]++);
        }
    pass.for_rows(T, [&](int64_t t) {
        float* yt = &y[t * E];
        for (size_t kk = 0; kk < routes[t].experts.size(); ++kk)
            k.axpy(routes[t].weights[kk], &out[row_of[t * hp.n_expert_used + kk] * E], yt, E);
        if (shared)
            for (int64_t i = 0; i < E; ++i) yt[i] += ys[t * E + i];
    });
}

void FeedForward::layer(const LayerWeights& l, const std::vector<float>& xn,
                        std::vector<float>& y) {
    y.assign(static_cast<size_t>(st_.T * st_.hp.n_embd), 0.0f);
    if (l.is_moe())
        moe(l, xn, y);
    else
        dense(l, xn, y);
}

}  // namespace latent::engine::cpu
