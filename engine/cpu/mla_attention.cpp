// MLA attention of the fast CPU forward pass (see mla_attention.h).
#include "engine/cpu/mla_attention.h"

#include <algorithm>

namespace latent::engine::cpu {

void MlaAttention::layer(const LayerWeights& l, uint32_t il, uint32_t cl,
                         const std::vector<float>& xn, std::vector<float>& attn) {
    const HParams& hp = st_.hp;
    d_ = Dims{st_.T,
              st_.S,
              hp.n_embd,
              hp.n_head,
              hp.n_embd_head_qk_nope,
              hp.n_rot,
              hp.n_embd_head_v,
              hp.kv_lora_rank,
              hp.n_embd_head_qk_nope + hp.n_rot,
              hp.rms_eps,
              hp.kq_scale()};
    l_ = &l;
    il_ = il;
    cl_ = cl;
    split_ = static_cast<bool>(l.attn_k_b);
    wuk_.clear();  // the split layout's W_UK rows, made when first needed in this layer
    const int64_t S = d_.S, L = d_.L;
    const std::vector<int64_t>& seg_begin = st_.seg_begin;

    project(xn);

    // Which tiled sequences attend in the expanded form (see MlaPrefill): its K and V
    // expansion covers every cache row, the absorbed form's extra work every new token,
    // so a chunk takes it while it is at least half of what it attends (measured: the
    // small preset's 128-token chunk after 0 / 128 / 384 cached rows, 32.3 / 38.4 /
    // 47.9 ms expanded against 35.1 / 38.1 / 43.8 ms absorbed).
    expanded_.assign(static_cast<size_t>(S), 0);
    by_tiles_.assign(static_cast<size_t>(S), 0);
    for (int64_t sb = 0; sb < S; ++sb) {
        const int64_t len = seg_begin[sb + 1] - seg_begin[sb];
        if (len == 0 || form_ == CpuBackend::MlaPrefill::kPerToken) continue;
        if (!st_.pass.tiled_attention(seg_begin[sb])) {
            // Without the tile matmul, prompt chunks take the blocked absorbed form.
            if (st_.pass.blocked_attention(seg_begin[sb])) by_tiles_[sb] = 2;
            continue;
        }
        // Sequences whose rows take the tile matmul (prompt chunks) take it for attention
        // too; the other tokens take Kernels::attend.
        by_tiles_[sb] = 1;
        expanded_[sb] = form_ == CpuBackend::MlaPrefill::kExpanded ||
                        (form_ == CpuBackend::MlaPrefill::kAuto && st_.pos[seg_begin[sb]] < len);
    }
    absorb_queries();

    rows_.assign(static_cast<size_t>(S), {});  // each sequence's cache rows
    for (int64_t sb = 0; sb < S; ++sb) {
        if (seg_begin[sb + 1] == seg_begin[sb]) continue;
        const int64_t N = st_.pos[seg_begin[sb + 1] - 1] + 1;
        rows_[sb].resize(N);
        for (int64_t j = 0; j < N; ++j)
            rows_[sb][j] = st_.batch[sb].seq->row(static_cast<int32_t>(j), cl);
    }
    o_lat_.resize(static_cast<size_t>(d_.T * d_.H * L));
    o_.resize(static_cast<size_t>(d_.T * d_.H * d_.v));
    for (int64_t sb = 0; sb < S; ++sb) {
        if (by_tiles_[sb] == 1) {
            if (expanded_[sb])
                attend_tiled_expanded(sb);
            else
                attend_tiled_absorbed(sb);
        } else if (by_tiles_[sb] == 2) {
            attend_blocked(sb);
        }
    }
    attend_per_token();
    output(attn);
}

void MlaAttention::project(const std::vector<float>& xn) {
    const LayerWeights& l = *l_;
    const HParams& hp = st_.hp;
    Pass& pass = st_.pass;
    const int64_t T = d_.T, E = d_.E, H = d_.H, n = d_.n, r = d_.r, L = d_.L, qk = d_.qk;
    const float eps = d_.eps;
    q_.resize(static_cast<size_t>(T * H * qk));
    kva_.resize(static_cast<size_t>(T * (L + r)));

    const Tensor& q_in = l.attn_q ? l.attn_q : l.attn_q_a;
    pass.quantize(q_in.type, xn.data(), E, T, E, a_in_);
    jobs_.clear();
    if (l.attn_q) {
        jobs_.push_back(job_for(l.attn_q, 0, a_in_, a_in_.rows.data(), T, q_.data(), H * qk));
    } else {
        cq_.resize(static_cast<size_t>(T * hp.q_lora_rank));
        jobs_.push_back(
            job_for(l.attn_q_a, 0, a_in_, a_in_.rows.data(), T, cq_.data(), hp.q_lora_rank));
    }
    const Acts* kv_in = &a_in_;
    if (!pass.same_acts(l.attn_kv_a_mqa.type, q_in.type)) {
        pass.quantize(l.attn_kv_a_mqa.type, xn.data(), E, T, E, a_aux_);
        kv_in = &a_aux_;
    }
    jobs_.push_back(job_for(l.attn_kv_a_mqa, 0, *kv_in, kv_in->rows.data(), T, kva_.data(), L + r));
    pass.run(jobs_);
    if (!l.attn_q) {
        const int64_t qr = hp.q_lora_rank;
        pass.for_rows(T, [&](int64_t t) { rms_norm(&cq_[t * qr], f32(l.attn_q_a_norm), qr, eps); });
        pass.quantize(l.attn_q_b.type, cq_.data(), qr, T, qr, a_aux_);
        pass.run({job_for(l.attn_q_b, 0, a_aux_, a_aux_.rows.data(), T, q_.data(), H * qk)});
    }

    // Cache rows (normed c_kv, rotated k_pe) and rotated q_pe.
    pass.for_rows(T, [&](int64_t t) {
        float* row = st_.seq_of[t]->row(st_.pos[t], cl_);
        std::copy_n(&kva_[t * (L + r)], L + r, row);
        rms_norm(row, f32(l.attn_kv_a_norm), L, eps);
        const double* c = &st_.rope_cos[t * (r / 2)];
        const double* s = &st_.rope_sin[t * (r / 2)];
        rope_cs(c, s, r, row + L);
        for (int64_t h = 0; h < H; ++h) rope_cs(c, s, r, &q_[(t * H + h) * qk + n]);
    });
}

void MlaAttention::absorb_queries() {
    const LayerWeights& l = *l_;
    Pass& pass = st_.pass;
    const int64_t T = d_.T, H = d_.H, n = d_.n, v = d_.v, L = d_.L, qk = d_.qk;
    q_abs_.resize(static_cast<size_t>(T * H * L));
    // q_abs[t][h] = W_UK[h]^T q_nope[t][h]: L values per head.
    if (!split_ && wuk_t_[il_].empty()) {
        std::vector<float>& wt = wuk_t_[il_];
        wt.resize(H * L * n);
        std::vector<float> rowf(L);
        for (int64_t h = 0; h < H; ++h)
            for (int64_t d = 0; d < n; ++d) {
                dequantize_row(l.attn_kv_b.type, l.attn_kv_b.row(h * (n + v) + d), rowf.data(), L);
                for (int64_t c = 0; c < L; ++c) wt[(h * L + c) * n + d] = rowf[c];
            }
    }
    const GgmlType kb_type = split_ ? l.attn_k_b.type : GgmlType::kF32;
    pass.quantize(kb_type, q_.data(), qk, T * H, n, a_in_,
                  [&](int64_t i) { return i / H; });  // row t*H+h: q_nope of (t, h)
    ptrs_.resize(H * T);
    for (int64_t h = 0; h < H; ++h)
        for (int64_t t = 0; t < T; ++t) ptrs_[h * T + t] = a_in_.rows[t * H + h];
    jobs_.clear();
    // Tokens whose attention runs unabsorbed (prompt chunks on the tiles) never read
    // q_abs: only runs of the others are computed.
    auto reads_q_abs = [&](int64_t t) { return !expanded_[st_.seq_index[t]]; };
    for (int64_t t0 = 0; t0 < T;) {
        const bool need = reads_q_abs(t0);
        int64_t t1 = t0 + 1;
        while (t1 < T && reads_q_abs(t1) == need) ++t1;
        for (int64_t h = 0; need && h < H; ++h) {
            const uint8_t* const* acts = &ptrs_[h * T + t0];
            float* y = &q_abs_[(t0 * H + h) * L];
            if (split_) {
                jobs_.push_back(job_for(l.attn_k_b, h, a_in_, acts, t1 - t0, y, H * L));
            } else {
                const float* wt = wuk_t_[il_].data() + h * L * n;
                jobs_.push_back(Job{reinterpret_cast<const uint8_t*>(wt), GgmlType::kF32,
                                    a_in_.format, static_cast<uint64_t>(n) * 4, L, n, acts, t1 - t0,
                                    y, H * L, a_in_.tiled, &a_in_});
            }
        }
        t0 = t1;
    }
    pass.run(jobs_);
}

// Scores S = Q C^T and then P C_kv as tile matmuls over the cache rows, a plain softmax
// between (a row's scores are all there). Queries in blocks, each against the cache rows
// it can see.
void MlaAttention::attend_tiled_absorbed(int64_t sb) {
    Pass& pass = st_.pass;
    const Kernels& k = pass.k();
    const int64_t H = d_.H, n = d_.n, r = d_.r, L = d_.L, qk = d_.qk;
    const float kq_scale = d_.kq_scale;
    const std::vector<int32_t>& pos = st_.pos;
    const std::vector<const float*>& rows = rows_[sb];
    const auto N = static_cast<int64_t>(rows.size());
    const int64_t Np = (N + 31) / 32 * 32;
    const int64_t RW = L + r, Wp = (RW + 31) / 32 * 32;  // a cache row, padded
    // The cache rows one after another (c_kv | k_pe | zeros to Wp), and C_kv^T
    // (zero-padded to Np columns): the two "weight" matrices.
    cr_.assign(static_cast<size_t>(N * Wp), 0.0f);
    ct_.assign(static_cast<size_t>(L * Np), 0.0f);
    pass.for_rows(N, [&](int64_t j) { std::copy_n(rows[j], RW, &cr_[j * Wp]); });
    pass.for_rows((L + 15) / 16, [&](int64_t cb) {
        const int64_t c0 = cb * 16, c1 = std::min(L, c0 + 16);
        for (int64_t j = 0; j < N; ++j)
            for (int64_t c = c0; c < c1; ++c) ct_[c * Np + j] = rows[j][c];
    });
    const int64_t t_end = st_.seg_begin[sb + 1];
    const int64_t QB = std::clamp<int64_t>((int64_t{1} << 22) / (H * Np), 16, 256);
    for (int64_t tq = st_.seg_begin[sb]; tq < t_end; tq += QB) {
        const int64_t nq = std::min(QB, t_end - tq) * H;
        const int64_t seen = pos[tq + nq / H - 1] + 1;  // cache rows this block sees
        const int64_t Nb = (seen + 31) / 32 * 32;
        qcat_.assign(static_cast<size_t>(nq * Wp), 0.0f);
        sc_.resize(static_cast<size_t>(nq * Np));
        qptr_.resize(nq);
        pass.for_rows(nq, [&](int64_t i) {
            const int64_t row = tq * H + i;  // (t, h) = (tq + i / H, i % H)
            std::copy_n(&q_abs_[row * L], L, &qcat_[i * Wp]);
            std::copy_n(&q_[row * qk + n], r, &qcat_[i * Wp + L]);
            qptr_[i] = reinterpret_cast<const uint8_t*>(&qcat_[i * Wp]);
        });
        pass.run({Job{reinterpret_cast<const uint8_t*>(cr_.data()), GgmlType::kF32, ActFormat::kF32,
                      static_cast<uint64_t>(Wp) * 4, seen, Wp, qptr_.data(), nq, sc_.data(), Np,
                      true, nullptr}});
        pass.for_rows(nq, [&](int64_t i) {
            k.softmax(&sc_[i * Np], pos[tq + i / H] + 1, Nb, kq_scale);
            qptr_[i] = reinterpret_cast<const uint8_t*>(&sc_[i * Np]);
        });
        pass.run({Job{reinterpret_cast<const uint8_t*>(ct_.data()), GgmlType::kF32, ActFormat::kF32,
                      static_cast<uint64_t>(Np) * 4, L, Nb, qptr_.data(), nq, &o_lat_[tq * H * L],
                      L, true, nullptr}});
    }
}

// Unabsorbed: per head h, K_h = [W_UK[h] c_kv_j | k_pe_j] and V_h = W_UV[h] c_kv_j for
// every cache row j (tile matmuls with the c_kv rows as the tokens), then scores of the
// queries [q_nope | q_pe] against K_h, softmax, and P against V_h^T straight into o (no
// W_UV step after).
void MlaAttention::attend_tiled_expanded(int64_t sb) {
    const LayerWeights& l = *l_;
    Pass& pass = st_.pass;
    const Kernels& k = pass.k();
    const int64_t H = d_.H, n = d_.n, r = d_.r, v = d_.v, L = d_.L, qk = d_.qk;
    const float kq_scale = d_.kq_scale;
    const std::vector<int32_t>& pos = st_.pos;
    const std::vector<const float*>& rows = rows_[sb];
    const auto N = static_cast<int64_t>(rows.size());
    const int64_t Np = (N + 31) / 32 * 32, Kp = (n + r + 31) / 32 * 32;
    if (split_ && wuk_.empty()) {  // W_UK rows over the latent, from attn_k_b's [L][n]
        wuk_.resize(static_cast<size_t>(H * n * L));
        pass.for_rows(H, [&](int64_t h) {
            std::vector<float> row(n);
            for (int64_t c = 0; c < L; ++c) {
                dequantize_row(l.attn_k_b.type, l.attn_k_b.matrix(h) + c * l.attn_k_b.row_size(),
                               row.data(), n);
                for (int64_t d = 0; d < n; ++d) wuk_[(h * n + d) * L + c] = row[d];
            }
        });
    }
    kx_.assign(static_cast<size_t>(H * N * Kp), 0.0f);
    vx_.resize(static_cast<size_t>(H * N * v));
    qptr_.resize(N);
    for (int64_t j = 0; j < N; ++j) qptr_[j] = reinterpret_cast<const uint8_t*>(rows[j]);
    jobs_.clear();
    for (int64_t h = 0; h < H; ++h) {
        if (split_) {
            jobs_.push_back(Job{reinterpret_cast<const uint8_t*>(&wuk_[h * n * L]), GgmlType::kF32,
                                ActFormat::kF32, static_cast<uint64_t>(L) * 4, n, L, qptr_.data(),
                                N, &kx_[h * N * Kp], Kp, true, nullptr});
            Job jv = job_for(l.attn_v_b, h, a_in_, qptr_.data(), N, &vx_[h * N * v], v);
            jv.format = ActFormat::kF32;
            jv.tiled = true;
            jv.src = nullptr;
            jobs_.push_back(jv);
        } else {
            const Tensor& kvb = l.attn_kv_b;
            jobs_.push_back(Job{kvb.row(h * (n + v)), kvb.type, ActFormat::kF32, kvb.row_size(), n,
                                L, qptr_.data(), N, &kx_[h * N * Kp], Kp, true, nullptr});
            jobs_.push_back(Job{kvb.row(h * (n + v) + n), kvb.type, ActFormat::kF32, kvb.row_size(),
                                v, L, qptr_.data(), N, &vx_[h * N * v], v, true, nullptr});
        }
    }
    pass.run(jobs_);
    vt_.assign(static_cast<size_t>(H * v * Np), 0.0f);
    pass.for_rows(H, [&](int64_t h) {
        for (int64_t j = 0; j < N; ++j) {
            std::copy_n(rows[j] + L, r, &kx_[(h * N + j) * Kp + n]);
            for (int64_t d = 0; d < v; ++d) vt_[(h * v + d) * Np + j] = vx_[(h * N + j) * v + d];
        }
    });
    const int64_t t_end = st_.seg_begin[sb + 1];
    const int64_t QB = std::clamp<int64_t>((int64_t{1} << 22) / (H * Np), 16, 256);
    for (int64_t tq = st_.seg_begin[sb]; tq < t_end; tq += QB) {
        const int64_t nt = std::min(QB, t_end - tq), nq = nt * H;
        const int64_t seen = pos[tq + nt - 1] + 1;
        const int64_t Nb = (seen + 31) / 32 * 32;
        qcat_.assign(static_cast<size_t>(nq * Kp), 0.0f);
        sc_.resize(static_cast<size_t>(nq * Np));
        pptr_.resize(nq);
        pass.for_rows(nq, [&](int64_t i) {  // row i = (tq + i / H, head i % H)
            std::copy_n(&q_[(tq * H + i) * qk], n + r, &qcat_[i * Kp]);
        });
        // Head-major pointer lists: head h's queries are pptr[h * nt ...].
        for (int64_t h = 0; h < H; ++h)
            for (int64_t t = 0; t < nt; ++t)
                pptr_[h * nt + t] = reinterpret_cast<const uint8_t*>(&qcat_[(t * H + h) * Kp]);
        jobs_.clear();
        for (int64_t h = 0; h < H; ++h)
            jobs_.push_back(Job{reinterpret_cast<const uint8_t*>(&kx_[h * N * Kp]), GgmlType::kF32,
                                ActFormat::kF32, static_cast<uint64_t>(Kp) * 4, seen, Kp,
                                &pptr_[h * nt], nt, &sc_[h * Np], H * Np, true, nullptr});
        pass.run(jobs_);
        pass.for_rows(
            nq, [&](int64_t i) { k.softmax(&sc_[i * Np], pos[tq + i / H] + 1, Nb, kq_scale); });
        for (int64_t h = 0; h < H; ++h)
            for (int64_t t = 0; t < nt; ++t)
                pptr_[h * nt + t] = reinterpret_cast<const uint8_t*>(&sc_[(t * H + h) * Np]);
        jobs_.clear();
        for (int64_t h = 0; h < H; ++h)
            jobs_.push_back(Job{reinterpret_cast<const uint8_t*>(&vt_[h * v * Np]), GgmlType::kF32,
                                ActFormat::kF32, static_cast<uint64_t>(Np) * 4, v, Nb,
                                &pptr_[h * nt], nt, &o_[(tq * H + h) * v], H * v, true, nullptr});
        pass.run(jobs_);
    }
}

// Absorbed, for a prompt chunk without the tile matmul: the scores of all of its query rows
// (tokens × heads) against the cache rows (Kernels::mla_scores), a plain softmax per row,
// then P·C_kv (Kernels::mla_mix) — each cache value loaded once per block of query rows,
// where attend loads it once per token and group of heads. Work items: blocks of query
// rows by blocks of cache rows (scores) or of latent columns (mix); a block of query rows
// reads only the cache rows its last token sees. Tokens in groups whose scores take at
// most 16 MB.
void MlaAttention::attend_blocked(int64_t sb) {
    Pass& pass = st_.pass;
    const Kernels& k = pass.k();
    const int64_t H = d_.H, n = d_.n, r = d_.r, L = d_.L, qk = d_.qk;
    const std::vector<int32_t>& pos = st_.pos;
    const std::vector<const float*>& rows = rows_[sb];
    const auto N = static_cast<int64_t>(rows.size());
    const int64_t Np = (N + 15) / 16 * 16;
    // Query rows per block (a multiple of every table's register block), cache rows and
    // latent columns per work item: a block of queries and one of cache rows fit in L2.
    constexpr int64_t kQB = 48, kRB = 128, kCB = 64;
    const int64_t tb = st_.seg_begin[sb], te = st_.seg_begin[sb + 1];
    const int64_t TG = std::clamp<int64_t>((int64_t{1} << 22) / (H * Np), 1, te - tb);
    for (int64_t t0 = tb; t0 < te; t0 += TG) {
        const int64_t t1 = std::min(te, t0 + TG), nq = (t1 - t0) * H;  // row i: (t0 + i / H, i % H)
        qlat_.resize(nq);
        qpe_.resize(nq);
        outp_.resize(nq);
        for (int64_t i = 0; i < nq; ++i) {
            const int64_t row = t0 * H + i;
            qlat_[i] = &q_abs_[row * L];
            qpe_[i] = &q_[row * qk + n];
            outp_[i] = &o_lat_[row * L];
        }
        sc_.resize(static_cast<size_t>(nq * Np));
        const int64_t nqb = (nq + kQB - 1) / kQB;
        // Cache rows seen by query block b: up to its last token's position.
        auto seen = [&](int64_t b) {
            return static_cast<int64_t>(pos[t0 + (std::min(nq, (b + 1) * kQB) - 1) / H]) + 1;
        };
        std::vector<std::pair<int64_t, int64_t>> items;  // (query block, cache row block)
        for (int64_t b = 0; b < nqb; ++b)
            for (int64_t j0 = 0; j0 < seen(b); j0 += kRB) items.emplace_back(b, j0);
        pass.pool().parallel_chunks(
            static_cast<int64_t>(items.size()), 1, [&](int64_t ib, int64_t ie) {
                for (int64_t it = ib; it < ie; ++it) {
                    const auto [b, j0] = items[it];
                    const int64_t q0 = b * kQB, q1 = std::min(nq, q0 + kQB);
                    const int64_t j1 = std::min(seen(b), j0 + kRB);
                    k.mla_scores(&qlat_[q0], &qpe_[q0], q1 - q0, rows.data() + j0, j1 - j0, L, r,
                                 &sc_[q0 * Np + j0], Np);
                }
            });
        pass.for_rows(nq, [&](int64_t i) {
            k.softmax(&sc_[i * Np], pos[t0 + i / H] + 1, seen(i / kQB), d_.kq_scale);
        });
        const int64_t ncb = (L + kCB - 1) / kCB;
        pass.pool().parallel_chunks(nqb * ncb, 1, [&](int64_t ib, int64_t ie) {
            for (int64_t it = ib; it < ie; ++it) {
                const int64_t b = it / ncb, c0 = (it % ncb) * kCB;
                const int64_t q0 = b * kQB, q1 = std::min(nq, q0 + kQB);
                k.mla_mix(&sc_[q0 * Np], Np, q1 - q0, rows.data(), seen(b), c0,
                          std::min(L, c0 + kCB), &outp_[q0]);
            }
        });
    }
}

// Attention over the latent cache, one pass with an online softmax per (token, head)
// (Kernels::attend). A work item is one new token and a group of up to kAttendRows heads,
// which read each cache row once for all of them.
void MlaAttention::attend_per_token() {
    const Kernels& k = st_.pass.k();
    const int64_t T = d_.T, H = d_.H, n = d_.n, r = d_.r, L = d_.L, qk = d_.qk;
    const float kq_scale = d_.kq_scale;
    std::vector<int64_t> plain;  // tokens for Kernels::attend
    for (int64_t t = 0; t < T; ++t)
        if (!by_tiles_[st_.seq_index[t]]) plain.push_back(t);
    const int64_t G = std::min<int64_t>(kAttendRows, H);
    const int64_t n_groups = (H + G - 1) / G;
    st_.pass.pool().parallel_chunks(
        static_cast<int64_t>(plain.size()) * n_groups, 1, [&](int64_t b, int64_t e) {
            const float* ql[kAttendRows];
            const float* qp[kAttendRows];
            float* out[kAttendRows];
            int64_t last[kAttendRows];
            for (int64_t item = b; item < e; ++item) {
                const int64_t t = plain[item / n_groups], h0 = (item % n_groups) * G;
                const int gh = static_cast<int>(std::min(G, H - h0));
                for (int g = 0; g < gh; ++g) {
                    const int64_t h = h0 + g;
                    ql[g] = &q_abs_[(t * H + h) * L];
                    qp[g] = &q_[(t * H + h) * qk + n];
                    out[g] = &o_lat_[(t * H + h) * L];
                    last[g] = st_.pos[t];
                }
                k.attend(ql, qp, gh, last, rows_[st_.seq_index[t]].data(), L, r, kq_scale, out);
            }
        });
}

void MlaAttention::output(std::vector<float>& attn) {
    const LayerWeights& l = *l_;
    Pass& pass = st_.pass;
    const int64_t T = d_.T, E = d_.E, H = d_.H, n = d_.n, v = d_.v, L = d_.L;
    // o[t][h] = W_UV[h] o_lat[t][h]: v values per head.
    const GgmlType vb_type = split_ ? l.attn_v_b.type : l.attn_kv_b.type;
    pass.quantize(vb_type, o_lat_.data(), L, T * H, L, a_in_, [&](int64_t i) { return i / H; });
    for (int64_t h = 0; h < H; ++h)
        for (int64_t t = 0; t < T; ++t) ptrs_[h * T + t] = a_in_.rows[t * H + h];
    jobs_.clear();
    // (Tokens attended in the expanded form have their o already: runs of the others.)
    for (int64_t t0 = 0; t0 < T;) {
        const bool done = expanded_[st_.seq_index[t0]];
        int64_t t1 = t0 + 1;
        while (t1 < T && expanded_[st_.seq_index[t1]] == done) ++t1;
        for (int64_t h = 0; !done && h < H; ++h) {
            if (split_) {
                jobs_.push_back(job_for(l.attn_v_b, h, a_in_, &ptrs_[h * T + t0], t1 - t0,
                                        &o_[t0 * H * v + h * v], H * v));
            } else {
                const Tensor& kvb = l.attn_kv_b;
                jobs_.push_back(Job{kvb.row(h * (n + v) + n), kvb.type, a_in_.format,
                                    kvb.row_size(), v, L, &ptrs_[h * T + t0], t1 - t0,
                                    &o_[t0 * H * v + h * v], H * v, a_in_.tiled, &a_in_});
            }
        }
        t0 = t1;
    }
    pass.run(jobs_);

    attn.resize(static_cast<size_t>(T * E));
    pass.quantize(l.attn_output.type, o_.data(), H * v, T, H * v, a_in_);
    pass.run({job_for(l.attn_output, 0, a_in_, a_in_.rows.data(), T, attn.data(), E)});
}

}  // namespace latent::engine::cpu
