// The fast CPU forward pass (see backend.h). Buffers are row-major [tokens][width]
// floats unless said otherwise; T = tokens in this call, N = tokens attended.
#include "engine/cpu/backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <tuple>

#include "engine/reference.h"
#include "engine/rope.h"

namespace latent::engine {

using cpu::ActFormat;

namespace {

const float* f32(const Tensor& t) { return reinterpret_cast<const float*>(t.data); }

// Rows of a float matrix quantized into one activation format.
// With the tile matmul, rows of tokens whose sequence has 16+ tokens in the step are float
// rows for it and the others are in the type's format (see Pass::set_tiled_tokens): all of
// one kind (`tiled` says which), or mixed — then `rows` holds every row in the type's
// format and `tiled_rows[i]` the float copy of row i where it is a tiled one (else null).
struct Acts {
    ActFormat format = ActFormat::kF32;
    int64_t n = 0;
    bool tiled = false;  // float rows meant for the tile matmul (Kernels::matmul_packed)
    uint64_t row_bytes = 0;
    std::vector<uint8_t> buf;
    std::vector<const uint8_t*> rows;
    std::vector<uint8_t> tiled_buf;  // mixed: the float rows
    std::vector<const uint8_t*> tiled_rows;
    std::vector<int64_t> token;  // row -> the token it belongs to
    bool mixed() const { return !tiled_rows.empty(); }
};

// One matmul of a job list: y[t * y_stride + r] = W[r] · acts[t] for r < rows, t < n_act.
struct Job {
    const uint8_t* w;
    GgmlType type;
    ActFormat format;
    uint64_t row_bytes;
    int64_t rows;
    int64_t n;
    const uint8_t* const* acts;
    int64_t n_act;
    float* y;
    int64_t y_stride;
    bool tiled;       // acts are float rows for the tile matmul
    const Acts* src;  // where acts point into (mixed sources are split in Pass::run)
};

Job job_for(const Tensor& t, int64_t index, const Acts& a, const uint8_t* const* acts,
            int64_t n_act, float* y, int64_t y_stride) {
    return Job{t.matrix(index), t.type, a.format, t.row_size(), t.ne[1], t.ne[0], acts,
               n_act,           y,      y_stride, a.tiled,      &a};
}

float silu(float x) { return x / (1.0f + std::exp(-x)); }

// The form of MLA for prompt chunks on the tile matmul (CpuBackend::MlaPrefill):
// LATENT_MLA_PREFILL=expanded or absorbed forces one, anything else chooses per chunk.
CpuBackend::MlaPrefill mla_prefill_default() {
    const char* e = std::getenv("LATENT_MLA_PREFILL");
    if (e && std::strcmp(e, "absorbed") == 0) return CpuBackend::MlaPrefill::kAbsorbed;
    if (e && std::strcmp(e, "expanded") == 0) return CpuBackend::MlaPrefill::kExpanded;
    return CpuBackend::MlaPrefill::kAuto;
}

}  // namespace

struct CpuBackend::Impl {
    // Legacy attn_kv_b files: W_UK^T per layer as float, [H][L][n] (see backend.h).
    const Model* model = nullptr;
    std::vector<std::vector<float>> wuk_t;
};

CpuBackend::CpuBackend(int threads, const cpu::Kernels* kernels, bool precise)
    : pool_(threads),
      k_(kernels ? *kernels : cpu::best_kernels()),
      precise_(precise),
      mla_prefill_(mla_prefill_default()),
      impl_(std::make_unique<Impl>()) {}

CpuBackend::~CpuBackend() = default;

namespace {

class Pass {
public:
    Pass(ThreadPool& pool, const cpu::Kernels& k, bool precise)
        : pool_(pool), k_(k), precise_(precise) {}

    // Which tokens of this pass take the tile matmul: those of sequences with at least
    // kTiledMinTokens tokens in it that want only the last logits (prompt chunks; not
    // speculative verification, LogitsMode::kAll, which must round as the one-token steps
    // it replaces), so that a sequence's arithmetic never depends on what else shares its
    // batch. A prompt's rounding does depend on how it is cut into chunks (a prefix-cache
    // hit leaves a shorter one), as llama.cpp's on its batch size. Call once per pass.
    // seq: each token's sequence (a sequence's rows in a job choose tiles or int8 dots by
    // their own count).
    void set_tiled_tokens(std::vector<char> tiled, std::vector<int32_t> seq) {
        tok_tiled_ = std::move(tiled);
        tok_seq_ = std::move(seq);
    }

    // Whether token t's attention takes the tile matmul too (as its rows do).
    bool tiled_attention(int64_t t) const { return k_.matmul_packed && !precise_ && tok_tiled_[t]; }

    // Whether activations for weights of types a and b are quantized alike.
    bool same_acts(GgmlType a, GgmlType b) const {
        return cpu::act_format(a, precise_) == cpu::act_format(b, precise_) && tiles(a) == tiles(b);
    }

    // Quantizes R rows of n values (row i at x + i * stride, of token token_of(i)) into `a`
    // for weights of `type`.
    template <class TokenOf>
    void quantize(GgmlType type, const float* x, int64_t stride, int64_t R, int64_t n, Acts& a,
                  TokenOf token_of) {
        int64_t n_tiled = 0;
        std::vector<char> row_tiled(static_cast<size_t>(R), 0);
        if (tiles(type))
            for (int64_t i = 0; i < R; ++i) n_tiled += row_tiled[i] = tok_tiled_[token_of(i)];
        a.tiled = R > 0 && n_tiled == R;
        a.format = a.tiled ? ActFormat::kF32 : cpu::act_format(type, precise_);
        a.n = n;
        a.row_bytes = cpu::act_row_bytes(a.format, n);
        a.buf.resize(a.row_bytes * static_cast<uint64_t>(R));
        a.rows.resize(static_cast<size_t>(R));
        a.token.resize(static_cast<size_t>(R));
        for (int64_t i = 0; i < R; ++i) {
            a.rows[i] = a.buf.data() + a.row_bytes * i;
            a.token[i] = token_of(i);
        }
        for_rows(R, [&](int64_t i) {
            k_.quantize(a.format, x + i * stride, n, a.buf.data() + a.row_bytes * i);
        });
        a.tiled_rows.clear();
        if (n_tiled == 0 || a.tiled) return;
        const uint64_t fb = cpu::act_row_bytes(ActFormat::kF32, n);
        a.tiled_buf.resize(fb * static_cast<uint64_t>(R));
        a.tiled_rows.assign(static_cast<size_t>(R), nullptr);
        for (int64_t i = 0; i < R; ++i)
            if (row_tiled[i]) {
                uint8_t* dst = a.tiled_buf.data() + fb * i;
                k_.quantize(ActFormat::kF32, x + i * stride, n, dst);
                a.tiled_rows[i] = dst;
            }
    }
    void quantize(GgmlType type, const float* x, int64_t stride, int64_t T, int64_t n, Acts& a) {
        quantize(type, x, stride, T, n, a, [](int64_t i) { return i; });
    }

    // Runs every job of the list, their rows split in chunks over the pool. Jobs in the
    // tile matmul's form first have their activation rows packed (once per distinct row
    // list: the gate and up matrices of an expert share theirs).
    void run(const std::vector<Job>& given) {
        // Jobs over tiled or mixed activations become one job per run of rows of one kind
        // and one sequence. A sequence with fewer than kTiledMinJobRows rows in a job (a
        // routed expert that got a few of a prompt chunk's tokens, the logits row) takes the
        // int8 dots there instead of the tiles: dequantizing a whole weight matrix to BF16
        // for two tokens costs more than their dot products.
        std::vector<Job> jobs;
        // Row lists of split jobs, and rows quantized anew for them (parts point into the
        // inner vectors, whose buffers stay put as the outer ones grow).
        std::vector<std::vector<const uint8_t*>> run_rows;
        std::vector<std::vector<uint8_t>> requant;
        std::map<std::tuple<const uint8_t* const*, int64_t, int64_t, ActFormat>, size_t> requant_of;
        for (const Job& j : given) {
            if (!j.src || !(j.src->mixed() || j.src->tiled)) {
                jobs.push_back(j);
                continue;
            }
            const Acts& a = *j.src;
            auto row_of = [&](int64_t t) {
                return static_cast<size_t>((j.acts[t] - a.buf.data()) /
                                           static_cast<int64_t>(a.row_bytes));
            };
            auto float_row = [&](int64_t t) {
                return a.tiled ? j.acts[t] : a.tiled_rows[row_of(t)];
            };
            auto seq = [&](int64_t t) { return tok_seq_[a.token[row_of(t)]]; };
            for (int64_t t0 = 0; t0 < j.n_act;) {
                const bool tiled = float_row(t0) != nullptr;
                const int32_t s0 = seq(t0);
                int64_t t1 = t0 + 1;
                while (t1 < j.n_act && (float_row(t1) != nullptr) == tiled &&
                       (!tiled || seq(t1) == s0))
                    ++t1;
                Job part = j;
                part.n_act = t1 - t0;
                part.y = j.y + t0 * j.y_stride;
                part.src = nullptr;
                part.tiled = tiled && part.n_act >= kTiledMinJobRows;
                if (part.tiled && a.tiled) {
                    part.acts = j.acts + t0;  // float rows already (shared: packed once)
                } else if (part.tiled) {
                    run_rows.emplace_back();
                    for (int64_t t = t0; t < t1; ++t) run_rows.back().push_back(float_row(t));
                    part.acts = run_rows.back().data();
                    part.format = ActFormat::kF32;
                } else if (!a.tiled) {
                    part.acts = j.acts + t0;  // the type's format already
                } else {
                    // Float rows only: quantized here (once for the gate and up of an expert).
                    part.format = cpu::act_format(j.type, precise_);
                    const auto key = std::make_tuple(j.acts + t0, part.n_act, j.n, part.format);
                    auto [it, fresh] = requant_of.try_emplace(key, run_rows.size());
                    if (fresh) {
                        const uint64_t rb = cpu::act_row_bytes(part.format, j.n);
                        requant.emplace_back(rb * static_cast<uint64_t>(part.n_act));
                        run_rows.emplace_back();
                        for (int64_t t = t0; t < t1; ++t) {
                            uint8_t* dst = requant.back().data() + rb * (t - t0);
                            k_.quantize(part.format, reinterpret_cast<const float*>(j.acts[t]), j.n,
                                        dst);
                            run_rows.back().push_back(dst);
                        }
                    }
                    part.acts = run_rows[it->second].data();
                }
                jobs.push_back(part);
                t0 = t1;
            }
        }
        std::vector<int64_t> first(jobs.size() + 1, 0);
        std::vector<int64_t> chunk(jobs.size());
        std::vector<size_t> pack_of(jobs.size(), SIZE_MAX);  // job -> its packed rows
        std::vector<size_t> to_pack;                         // jobs whose rows get packed
        std::vector<uint64_t> pack_at;                       // their offsets in packed_
        uint64_t pack_bytes = 0;
        for (size_t j = 0; j < jobs.size(); ++j) {
            const Job& jb = jobs[j];
            if (packs(jb)) {
                const Job* prev = j > 0 && pack_of[j - 1] != SIZE_MAX ? &jobs[j - 1] : nullptr;
                if (prev && prev->acts == jb.acts && prev->n_act == jb.n_act && prev->n == jb.n) {
                    pack_of[j] = pack_of[j - 1];
                } else {
                    pack_of[j] = to_pack.size();
                    to_pack.push_back(j);
                    pack_at.push_back(pack_bytes);
                    pack_bytes += cpu::packed_bytes(jb.n_act, jb.n);
                }
                chunk[j] = cpu::kPackedRows;
            } else {
                // Smaller chunks when there is little work per row (decode), for balance.
                chunk[j] = jb.n_act >= 16 ? 8 : 128;
            }
            first[j + 1] = first[j] + (jb.rows + chunk[j] - 1) / chunk[j];
        }
        if (!to_pack.empty()) {
            packed_.resize(pack_bytes);
            pool_.parallel_chunks(
                static_cast<int64_t>(to_pack.size()), 1, [&](int64_t b, int64_t e) {
                    for (int64_t i = b; i < e; ++i) {
                        const Job& jb = jobs[to_pack[i]];
                        k_.pack_tokens(jb.acts, jb.n_act, jb.n, packed_.data() + pack_at[i]);
                    }
                });
        }
        pool_.parallel_chunks(first.back(), 1, [&](int64_t b, int64_t e) {
            for (int64_t c = b; c < e; ++c) {
                const size_t j = static_cast<size_t>(
                    std::upper_bound(first.begin(), first.end(), c) - first.begin() - 1);
                const Job& jb = jobs[j];
                const int64_t r0 = (c - first[j]) * chunk[j];
                const int64_t r1 = std::min(jb.rows, r0 + chunk[j]);
                if (pack_of[j] != SIZE_MAX) {
                    k_.matmul_packed(jb.type, jb.w, jb.row_bytes, r0, r1,
                                     packed_.data() + pack_at[pack_of[j]], jb.n_act, jb.n, jb.y,
                                     jb.y_stride);
                } else {
                    k_.matmul_rows(jb.type, jb.format, jb.w, jb.row_bytes, r0, r1, jb.acts,
                                   jb.n_act, jb.n, jb.y, jb.y_stride);
                }
            }
        });
    }

    // fn(i) for i < n, split over the pool when there is enough to split.
    template <class F>
    void for_rows(int64_t n, F&& fn) {
        if (n < 2 || pool_.size() == 1) {
            for (int64_t i = 0; i < n; ++i) fn(i);
            return;
        }
        pool_.parallel_chunks(n, std::max<int64_t>(1, n / (4 * pool_.size())),
                              [&](int64_t b, int64_t e) {
                                  for (int64_t i = b; i < e; ++i) fn(i);
                              });
    }

    ThreadPool& pool() { return pool_; }
    const cpu::Kernels& k() const { return k_; }

    // The tile matmul takes sequences with at least kTiledMinTokens tokens in the pass
    // (below, the int8 dots are as fast and round less), any weight type but F32 (kept
    // exact), not in precise mode.
    static constexpr int64_t kTiledMinTokens = 16;
    // Within such a pass, the fewest rows of one sequence in one job that take the tiles
    // (measured with 0 / 4 / 8 / 16: a 32-token prompt on the lite preset 1,675 / 1,196 /
    // 1,104 ms, 128 tokens 2,286 / - / 2,260 / 2,841 ms).
    static constexpr int64_t kTiledMinJobRows = 8;

private:
    bool tiles(GgmlType type) const {
        return k_.matmul_packed && !precise_ && type != GgmlType::kF32;
    }
    // (Jobs are tiled only where tiles(type) allowed it, or for attention.)
    static bool packs(const Job& j) { return j.tiled && j.n % 32 == 0; }

    ThreadPool& pool_;
    const cpu::Kernels& k_;
    bool precise_;
    std::vector<uint8_t> packed_;
    std::vector<char> tok_tiled_;
    std::vector<int32_t> tok_seq_;
};

// x / sqrt(mean(x^2) + eps) * w, in place (as ref::rms_norm: the sum in double).
void rms_norm(float* x, const float* w, int64_t n, float eps) { ref::rms_norm(x, w, n, eps); }

// Rotates x[0..r) by the precomputed cos/sin pairs of its position (as rope_apply).
void rope_cs(const double* c, const double* s, int64_t r, float* x) {
    for (int64_t i = 0; i < r / 2; ++i) {
        const double x0 = x[2 * i], x1 = x[2 * i + 1];
        x[2 * i] = static_cast<float>(x0 * c[i] - x1 * s[i]);
        x[2 * i + 1] = static_cast<float>(x0 * s[i] + x1 * c[i]);
    }
}

}  // namespace

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
    // The sequences' tokens one after another; for each token its sequence and position.
    const auto S = static_cast<int64_t>(batch.size());
    std::vector<int64_t> seg_begin(S + 1, 0);
    for (int64_t b = 0; b < S; ++b) {
        if (Status s = check_tokens(hp, batch[b].tokens); !s) return s;
        for (int64_t c = 0; c < b; ++c)
            if (batch[c].seq == batch[b].seq)
                return make_error("forward: a sequence appears twice in one batch");
        seg_begin[b + 1] = seg_begin[b] + static_cast<int64_t>(batch[b].tokens.size());
    }
    for (const SeqBatch& sb : batch)
        if (Status s = sb.seq->reserve(static_cast<int32_t>(sb.tokens.size())); !s) return s;
    const int64_t T = seg_begin[S];
    std::vector<int32_t> pos(T), ids(T);
    std::vector<SeqCache*> seq_of(T);
    for (int64_t b = 0; b < S; ++b)
        for (int64_t i = 0; i < seg_begin[b + 1] - seg_begin[b]; ++i) {
            const int64_t t = seg_begin[b] + i;
            pos[t] = batch[b].seq->n_tokens() + static_cast<int32_t>(i);
            ids[t] = batch[b].tokens[i];
            seq_of[t] = batch[b].seq;
        }

    const int64_t E = hp.n_embd, H = hp.n_head, n = hp.n_embd_head_qk_nope, r = hp.n_rot,
                  v = hp.n_embd_head_v, L = hp.kv_lora_rank, qk = n + r;
    const float eps = hp.rms_eps, kq_scale = hp.kq_scale();
    Pass pass(pool_, k_, precise_);
    {
        std::vector<char> tiled(T);
        std::vector<int32_t> seq(T);
        for (int64_t b = 0; b < S; ++b)
            for (int64_t t = seg_begin[b]; t < seg_begin[b + 1]; ++t) {
                tiled[t] = seg_begin[b + 1] - seg_begin[b] >= Pass::kTiledMinTokens &&
                           batch[b].mode == LogitsMode::kLast;
                seq[t] = static_cast<int32_t>(b);
            }
        pass.set_tiled_tokens(std::move(tiled), std::move(seq));
    }
    const cpu::Kernels& k = k_;

    // Legacy layout: W_UK^T as float, once per model.
    if (impl_->model != &model) {
        impl_->model = &model;
        impl_->wuk_t.assign(hp.n_layer + hp.n_nextn, {});
    }

    // cos/sin of every rotated pair at every new position, shared by all layers and heads.
    const RopeParams rope = rope_params(hp);
    std::vector<double> rc(T * (r / 2)), rs(T * (r / 2));
    for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < r / 2; ++i) {
            const double th = rope_theta(rope, pos[t], static_cast<int32_t>(i));
            rc[t * (r / 2) + i] = std::cos(th) * rope.magnitude;
            rs[t * (r / 2) + i] = std::sin(th) * rope.magnitude;
        }

    std::vector<float> x(T * E), xn(T * E);
    Acts a_in, a_aux, a_aux2;
    if (!mtp) {
        for (int64_t t = 0; t < T; ++t)
            dequantize_row(W.token_embd.type, W.token_embd.row(ids[t]), &x[t * E], E);
    } else {
        // x[t] = eh_proj [RMSNorm(embedding of next[t]; enorm) | RMSNorm(hidden[t]; hnorm)].
        const LayerWeights& l = W.layers[hp.n_layer];
        const Tensor& embd = l.nextn_embed_tokens ? l.nextn_embed_tokens : W.token_embd;
        std::vector<float> cat(T * 2 * E);
        for (int64_t b = 0; b < S; ++b)
            for (int64_t i = 0; i < seg_begin[b + 1] - seg_begin[b]; ++i) {
                float* c = &cat[(seg_begin[b] + i) * 2 * E];
                dequantize_row(embd.type, embd.row(batch[b].tokens[i]), c, E);
                rms_norm(c, f32(l.nextn_enorm), E, eps);
                std::copy_n(&mtp_hidden[b][i * E], E, c + E);
                rms_norm(c + E, f32(l.nextn_hnorm), E, eps);
            }
        pass.quantize(l.nextn_eh_proj.type, cat.data(), 2 * E, T, 2 * E, a_in);
        pass.run({job_for(l.nextn_eh_proj, 0, a_in, a_in.rows.data(), T, x.data(), E)});
    }

    std::vector<float> q(T * H * qk), kva(T * (L + r)), q_abs(T * H * L), o_lat(T * H * L),
        o(T * H * v), attn(T * E), cq, cr, ct, qcat, sc, kx, vx, vt;
    std::vector<const uint8_t*> ptrs, qptr, pptr;
    std::vector<Job> jobs;

    for (uint32_t il = first_layer; il < end_layer; ++il) {
        const LayerWeights& l = W.layers[il];
        const uint32_t cl = il - first_layer;  // the layer's rows in the cache

        // ---- Attention (MLA, absorbed) ----
        xn = x;
        pass.for_rows(T, [&](int64_t t) { rms_norm(&xn[t * E], f32(l.attn_norm), E, eps); });

        const Tensor& q_in = l.attn_q ? l.attn_q : l.attn_q_a;
        pass.quantize(q_in.type, xn.data(), E, T, E, a_in);
        jobs.clear();
        if (l.attn_q) {
            jobs.push_back(job_for(l.attn_q, 0, a_in, a_in.rows.data(), T, q.data(), H * qk));
        } else {
            cq.resize(T * hp.q_lora_rank);
            jobs.push_back(
                job_for(l.attn_q_a, 0, a_in, a_in.rows.data(), T, cq.data(), hp.q_lora_rank));
        }
        const Acts* kv_in = &a_in;
        if (!pass.same_acts(l.attn_kv_a_mqa.type, q_in.type)) {
            pass.quantize(l.attn_kv_a_mqa.type, xn.data(), E, T, E, a_aux);
            kv_in = &a_aux;
        }
        jobs.push_back(
            job_for(l.attn_kv_a_mqa, 0, *kv_in, kv_in->rows.data(), T, kva.data(), L + r));
        pass.run(jobs);
        if (!l.attn_q) {
            const int64_t qr = hp.q_lora_rank;
            pass.for_rows(T,
                          [&](int64_t t) { rms_norm(&cq[t * qr], f32(l.attn_q_a_norm), qr, eps); });
            pass.quantize(l.attn_q_b.type, cq.data(), qr, T, qr, a_aux);
            pass.run({job_for(l.attn_q_b, 0, a_aux, a_aux.rows.data(), T, q.data(), H * qk)});
        }

        // Cache rows (normed c_kv, rotated k_pe) and rotated q_pe.
        pass.for_rows(T, [&](int64_t t) {
            float* row = seq_of[t]->row(pos[t], cl);
            std::copy_n(&kva[t * (L + r)], L + r, row);
            rms_norm(row, f32(l.attn_kv_a_norm), L, eps);
            const double* c = &rc[t * (r / 2)];
            const double* s = &rs[t * (r / 2)];
            rope_cs(c, s, r, row + L);
            for (int64_t h = 0; h < H; ++h) rope_cs(c, s, r, &q[(t * H + h) * qk + n]);
        });

        // q_abs[t][h] = W_UK[h]^T q_nope[t][h]: L values per head.
        const bool split = static_cast<bool>(l.attn_k_b);
        if (!split && impl_->wuk_t[il].empty()) {
            std::vector<float>& wt = impl_->wuk_t[il];
            wt.resize(H * L * n);
            std::vector<float> rowf(L);
            for (int64_t h = 0; h < H; ++h)
                for (int64_t d = 0; d < n; ++d) {
                    dequantize_row(l.attn_kv_b.type, l.attn_kv_b.row(h * (n + v) + d), rowf.data(),
                                   L);
                    for (int64_t c = 0; c < L; ++c) wt[(h * L + c) * n + d] = rowf[c];
                }
        }
        const GgmlType kb_type = split ? l.attn_k_b.type : GgmlType::kF32;
        pass.quantize(kb_type, q.data(), qk, T * H, n, a_in,
                      [&](int64_t i) { return i / H; });  // row t*H+h: q_nope of (t, h)
        ptrs.resize(H * T);
        for (int64_t h = 0; h < H; ++h)
            for (int64_t t = 0; t < T; ++t) ptrs[h * T + t] = a_in.rows[t * H + h];
        jobs.clear();
        // Tokens whose attention runs unabsorbed (prompt chunks on the tiles) never read
        // q_abs: only runs of the others are computed.
        // Which tiled sequences attend in the expanded form (see MlaPrefill): its K and V
        // expansion covers every cache row, the absorbed form's extra work every new token,
        // so a chunk takes it while it is at least half of what it attends (measured: the
        // small preset's 128-token chunk after 0 / 128 / 384 cached rows, 32.3 / 38.4 /
        // 47.9 ms expanded against 35.1 / 38.1 / 43.8 ms absorbed).
        std::vector<int64_t> seq_index(T);
        for (int64_t sb = 0; sb < S; ++sb)
            for (int64_t t = seg_begin[sb]; t < seg_begin[sb + 1]; ++t) seq_index[t] = sb;
        std::vector<char> expanded(S, 0);
        for (int64_t sb = 0; sb < S; ++sb) {
            const int64_t len = seg_begin[sb + 1] - seg_begin[sb];
            if (len == 0 || !pass.tiled_attention(seg_begin[sb])) continue;
            expanded[sb] = mla_prefill_ == MlaPrefill::kExpanded ||
                           (mla_prefill_ == MlaPrefill::kAuto && pos[seg_begin[sb]] < len);
        }
        auto reads_q_abs = [&](int64_t t) { return !expanded[seq_index[t]]; };
        for (int64_t t0 = 0; t0 < T;) {
            const bool need = reads_q_abs(t0);
            int64_t t1 = t0 + 1;
            while (t1 < T && reads_q_abs(t1) == need) ++t1;
            for (int64_t h = 0; need && h < H; ++h) {
                const uint8_t* const* acts = &ptrs[h * T + t0];
                float* y = &q_abs[(t0 * H + h) * L];
                if (split) {
                    jobs.push_back(job_for(l.attn_k_b, h, a_in, acts, t1 - t0, y, H * L));
                } else {
                    const float* wt = impl_->wuk_t[il].data() + h * L * n;
                    jobs.push_back(Job{reinterpret_cast<const uint8_t*>(wt), GgmlType::kF32,
                                       a_in.format, static_cast<uint64_t>(n) * 4, L, n, acts,
                                       t1 - t0, y, H * L, a_in.tiled, &a_in});
                }
            }
            t0 = t1;
        }
        pass.run(jobs);

        // Attention over the latent cache, one pass with an online softmax per (token, head)
        // (Kernels::attend). A work item is one new token and a group of up to
        // kAttendRows heads, which read each cache row once for all of them.
        std::vector<std::vector<const float*>> rows_of(S);  // each sequence's cache rows
        for (int64_t sb = 0; sb < S; ++sb) {
            if (seg_begin[sb + 1] == seg_begin[sb]) continue;
            const int64_t N = pos[seg_begin[sb + 1] - 1] + 1;
            rows_of[sb].resize(N);
            for (int64_t j = 0; j < N; ++j)
                rows_of[sb][j] = batch[sb].seq->row(static_cast<int32_t>(j), cl);
        }

        // Sequences whose rows take the tile matmul (prompt chunks) take it for attention
        // too: scores S = Q C^T and then P C_kv as tile matmuls over the cache rows, a
        // plain softmax between (a row's scores are all there). Queries in blocks, each
        // against the cache rows it can see. The other tokens take Kernels::attend.
        const int64_t RW = L + r, Wp = (RW + 31) / 32 * 32;  // a cache row, padded
        std::vector<char> by_tiles(S, 0);
        for (int64_t sb = 0; sb < S; ++sb)
            by_tiles[sb] = seg_begin[sb + 1] > seg_begin[sb] && pass.tiled_attention(seg_begin[sb]);
        std::vector<float> wuk;  // split layout: W_UK[h] as n rows of L, when first needed
        // Unabsorbed: per head h, K_h = [W_UK[h] c_kv_j | k_pe_j] and V_h = W_UV[h] c_kv_j for
        // every cache row j (tile matmuls with the c_kv rows as the tokens), then scores of
        // the queries [q_nope | q_pe] against K_h, softmax, and P against V_h^T straight
        // into o (no W_UV step after).
        auto attend_expanded = [&](int64_t sb, const std::vector<const float*>& rows) {
            const auto N = static_cast<int64_t>(rows.size());
            const int64_t Np = (N + 31) / 32 * 32, Kp = (n + r + 31) / 32 * 32;
            if (split && wuk.empty()) {  // W_UK rows over the latent, from attn_k_b's [L][n]
                wuk.resize(static_cast<size_t>(H * n * L));
                pass.for_rows(H, [&](int64_t h) {
                    std::vector<float> row(n);
                    for (int64_t c = 0; c < L; ++c) {
                        dequantize_row(l.attn_k_b.type,
                                       l.attn_k_b.matrix(h) + c * l.attn_k_b.row_size(), row.data(),
                                       n);
                        for (int64_t d = 0; d < n; ++d) wuk[(h * n + d) * L + c] = row[d];
                    }
                });
            }
            kx.assign(static_cast<size_t>(H * N * Kp), 0.0f);
            vx.resize(static_cast<size_t>(H * N * v));
            qptr.resize(N);
            for (int64_t j = 0; j < N; ++j) qptr[j] = reinterpret_cast<const uint8_t*>(rows[j]);
            jobs.clear();
            for (int64_t h = 0; h < H; ++h) {
                if (split) {
                    jobs.push_back(Job{reinterpret_cast<const uint8_t*>(&wuk[h * n * L]),
                                       GgmlType::kF32, ActFormat::kF32,
                                       static_cast<uint64_t>(L) * 4, n, L, qptr.data(), N,
                                       &kx[h * N * Kp], Kp, true, nullptr});
                    Job jv = job_for(l.attn_v_b, h, a_in, qptr.data(), N, &vx[h * N * v], v);
                    jv.format = ActFormat::kF32;
                    jv.tiled = true;
                    jv.src = nullptr;
                    jobs.push_back(jv);
                } else {
                    const Tensor& kvb = l.attn_kv_b;
                    jobs.push_back(Job{kvb.row(h * (n + v)), kvb.type, ActFormat::kF32,
                                       kvb.row_size(), n, L, qptr.data(), N, &kx[h * N * Kp], Kp,
                                       true, nullptr});
                    jobs.push_back(Job{kvb.row(h * (n + v) + n), kvb.type, ActFormat::kF32,
                                       kvb.row_size(), v, L, qptr.data(), N, &vx[h * N * v], v,
                                       true, nullptr});
                }
            }
            pass.run(jobs);
            vt.assign(static_cast<size_t>(H * v * Np), 0.0f);
            pass.for_rows(H, [&](int64_t h) {
                for (int64_t j = 0; j < N; ++j) {
                    std::copy_n(rows[j] + L, r, &kx[(h * N + j) * Kp + n]);
                    for (int64_t d = 0; d < v; ++d)
                        vt[(h * v + d) * Np + j] = vx[(h * N + j) * v + d];
                }
            });
            const int64_t t_end = seg_begin[sb + 1];
            const int64_t QB = std::clamp<int64_t>((int64_t{1} << 22) / (H * Np), 16, 256);
            for (int64_t tq = seg_begin[sb]; tq < t_end; tq += QB) {
                const int64_t nt = std::min(QB, t_end - tq), nq = nt * H;
                const int64_t seen = pos[tq + nt - 1] + 1;
                const int64_t Nb = (seen + 31) / 32 * 32;
                qcat.assign(static_cast<size_t>(nq * Kp), 0.0f);
                sc.resize(static_cast<size_t>(nq * Np));
                pptr.resize(nq);
                pass.for_rows(nq, [&](int64_t i) {  // row i = (tq + i / H, head i % H)
                    std::copy_n(&q[(tq * H + i) * qk], n + r, &qcat[i * Kp]);
                });
                // Head-major pointer lists: head h's queries are pptr[h * nt ...].
                for (int64_t h = 0; h < H; ++h)
                    for (int64_t t = 0; t < nt; ++t)
                        pptr[h * nt + t] =
                            reinterpret_cast<const uint8_t*>(&qcat[(t * H + h) * Kp]);
                jobs.clear();
                for (int64_t h = 0; h < H; ++h)
                    jobs.push_back(Job{reinterpret_cast<const uint8_t*>(&kx[h * N * Kp]),
                                       GgmlType::kF32, ActFormat::kF32,
                                       static_cast<uint64_t>(Kp) * 4, seen, Kp, &pptr[h * nt], nt,
                                       &sc[h * Np], H * Np, true, nullptr});
                pass.run(jobs);
                pass.for_rows(nq, [&](int64_t i) {
                    k.softmax(&sc[i * Np], pos[tq + i / H] + 1, Nb, kq_scale);
                });
                for (int64_t h = 0; h < H; ++h)
                    for (int64_t t = 0; t < nt; ++t)
                        pptr[h * nt + t] = reinterpret_cast<const uint8_t*>(&sc[(t * H + h) * Np]);
                jobs.clear();
                for (int64_t h = 0; h < H; ++h)
                    jobs.push_back(Job{reinterpret_cast<const uint8_t*>(&vt[h * v * Np]),
                                       GgmlType::kF32, ActFormat::kF32,
                                       static_cast<uint64_t>(Np) * 4, v, Nb, &pptr[h * nt], nt,
                                       &o[(tq * H + h) * v], H * v, true, nullptr});
                pass.run(jobs);
            }
        };
        for (int64_t sb = 0; sb < S; ++sb) {
            if (!by_tiles[sb]) continue;
            const std::vector<const float*>& rows = rows_of[sb];
            const auto N = static_cast<int64_t>(rows.size());
            const int64_t Np = (N + 31) / 32 * 32;
            if (expanded[sb]) {
                attend_expanded(sb, rows);
                continue;
            }
            // The cache rows one after another (c_kv | k_pe | zeros to Wp), and C_kv^T
            // (zero-padded to Np columns): the two "weight" matrices.
            cr.assign(static_cast<size_t>(N * Wp), 0.0f);
            ct.assign(static_cast<size_t>(L * Np), 0.0f);
            pass.for_rows(N, [&](int64_t j) { std::copy_n(rows[j], RW, &cr[j * Wp]); });
            pass.for_rows((L + 15) / 16, [&](int64_t cb) {
                const int64_t c0 = cb * 16, c1 = std::min(L, c0 + 16);
                for (int64_t j = 0; j < N; ++j)
                    for (int64_t c = c0; c < c1; ++c) ct[c * Np + j] = rows[j][c];
            });
            const int64_t t_end = seg_begin[sb + 1];
            const int64_t QB = std::clamp<int64_t>((int64_t{1} << 22) / (H * Np), 16, 256);
            for (int64_t tq = seg_begin[sb]; tq < t_end; tq += QB) {
                const int64_t nq = std::min(QB, t_end - tq) * H;
                const int64_t seen = pos[tq + nq / H - 1] + 1;  // cache rows this block sees
                const int64_t Nb = (seen + 31) / 32 * 32;
                qcat.assign(static_cast<size_t>(nq * Wp), 0.0f);
                sc.resize(static_cast<size_t>(nq * Np));
                qptr.resize(nq);
                pass.for_rows(nq, [&](int64_t i) {
                    const int64_t row = tq * H + i;  // (t, h) = (tq + i / H, i % H)
                    std::copy_n(&q_abs[row * L], L, &qcat[i * Wp]);
                    std::copy_n(&q[row * qk + n], r, &qcat[i * Wp + L]);
                    qptr[i] = reinterpret_cast<const uint8_t*>(&qcat[i * Wp]);
                });
                pass.run({Job{reinterpret_cast<const uint8_t*>(cr.data()), GgmlType::kF32,
                              ActFormat::kF32, static_cast<uint64_t>(Wp) * 4, seen, Wp, qptr.data(),
                              nq, sc.data(), Np, true, nullptr}});
                pass.for_rows(nq, [&](int64_t i) {
                    k.softmax(&sc[i * Np], pos[tq + i / H] + 1, Nb, kq_scale);
                    qptr[i] = reinterpret_cast<const uint8_t*>(&sc[i * Np]);
                });
                pass.run({Job{reinterpret_cast<const uint8_t*>(ct.data()), GgmlType::kF32,
                              ActFormat::kF32, static_cast<uint64_t>(Np) * 4, L, Nb, qptr.data(),
                              nq, &o_lat[tq * H * L], L, true, nullptr}});
            }
        }
        std::vector<int64_t> plain;  // tokens for Kernels::attend
        for (int64_t t = 0; t < T; ++t)
            if (!by_tiles[seq_index[t]]) plain.push_back(t);

        const int64_t G = std::min<int64_t>(cpu::kAttendRows, H);
        const int64_t n_groups = (H + G - 1) / G;
        pool_.parallel_chunks(
            static_cast<int64_t>(plain.size()) * n_groups, 1, [&](int64_t b, int64_t e) {
                const float* ql[cpu::kAttendRows];
                const float* qp[cpu::kAttendRows];
                float* out[cpu::kAttendRows];
                int64_t last[cpu::kAttendRows];
                for (int64_t item = b; item < e; ++item) {
                    const int64_t t = plain[item / n_groups], h0 = (item % n_groups) * G;
                    const int gh = static_cast<int>(std::min(G, H - h0));
                    for (int g = 0; g < gh; ++g) {
                        const int64_t h = h0 + g;
                        ql[g] = &q_abs[(t * H + h) * L];
                        qp[g] = &q[(t * H + h) * qk + n];
                        out[g] = &o_lat[(t * H + h) * L];
                        last[g] = pos[t];
                    }
                    k.attend(ql, qp, gh, last, rows_of[seq_index[t]].data(), L, r, kq_scale, out);
                }
            });

        // o[t][h] = W_UV[h] o_lat[t][h]: v values per head.
        const GgmlType vb_type = split ? l.attn_v_b.type : l.attn_kv_b.type;
        pass.quantize(vb_type, o_lat.data(), L, T * H, L, a_in, [&](int64_t i) { return i / H; });
        for (int64_t h = 0; h < H; ++h)
            for (int64_t t = 0; t < T; ++t) ptrs[h * T + t] = a_in.rows[t * H + h];
        jobs.clear();
        // (Tokens attended in the expanded form have their o already: runs of the others.)
        for (int64_t t0 = 0; t0 < T;) {
            const bool done = expanded[seq_index[t0]];
            int64_t t1 = t0 + 1;
            while (t1 < T && expanded[seq_index[t1]] == done) ++t1;
            for (int64_t h = 0; !done && h < H; ++h) {
                if (split) {
                    jobs.push_back(job_for(l.attn_v_b, h, a_in, &ptrs[h * T + t0], t1 - t0,
                                           &o[t0 * H * v + h * v], H * v));
                } else {
                    const Tensor& kvb = l.attn_kv_b;
                    jobs.push_back(Job{kvb.row(h * (n + v) + n), kvb.type, a_in.format,
                                       kvb.row_size(), v, L, &ptrs[h * T + t0], t1 - t0,
                                       &o[t0 * H * v + h * v], H * v, a_in.tiled, &a_in});
                }
            }
            t0 = t1;
        }
        pass.run(jobs);

        pass.quantize(l.attn_output.type, o.data(), H * v, T, H * v, a_in);
        pass.run({job_for(l.attn_output, 0, a_in, a_in.rows.data(), T, attn.data(), E)});
        for (int64_t i = 0; i < T * E; ++i) x[i] += attn[i];

        // ---- FFN ----
        xn = x;
        pass.for_rows(T, [&](int64_t t) { rms_norm(&xn[t * E], f32(l.ffn_norm), E, eps); });
        std::vector<float> y(T * E, 0.0f);

        // SwiGLU on the gate/up outputs g, u (rows of ff), then quantized for `down`.
        // row_tok: the token of each row (null: row i is token i).
        auto swiglu_rows = [&](std::vector<float>& g, const std::vector<float>& u, int64_t rows,
                               int64_t ff, GgmlType down_type, Acts& out,
                               const std::vector<int64_t>* row_tok = nullptr) {
            pass.for_rows(rows, [&](int64_t i) {
                for (int64_t c = 0; c < ff; ++c)
                    g[i * ff + c] = silu(g[i * ff + c]) * u[i * ff + c];
            });
            pass.quantize(down_type, g.data(), ff, rows, ff, out,
                          [&](int64_t i) { return row_tok ? (*row_tok)[i] : i; });
        };

        if (!l.is_moe()) {
            const int64_t ff = l.ffn_gate.ne[1];
            std::vector<float> g(T * ff), u(T * ff);
            pass.quantize(l.ffn_gate.type, xn.data(), E, T, E, a_in);
            const Acts* up_in = &a_in;
            if (!pass.same_acts(l.ffn_up.type, l.ffn_gate.type)) {
                pass.quantize(l.ffn_up.type, xn.data(), E, T, E, a_aux);
                up_in = &a_aux;
            }
            pass.run({job_for(l.ffn_gate, 0, a_in, a_in.rows.data(), T, g.data(), ff),
                      job_for(l.ffn_up, 0, *up_in, up_in->rows.data(), T, u.data(), ff)});
            swiglu_rows(g, u, T, ff, l.ffn_down.type, a_aux2);
            pass.run({job_for(l.ffn_down, 0, a_aux2, a_aux2.rows.data(), T, y.data(), E)});
        } else {
            const int64_t X = hp.n_expert, f = l.ffn_gate_exps.ne[1];
            std::vector<float> router(T * X);
            pass.quantize(l.ffn_gate_inp.type, xn.data(), E, T, E, a_aux);
            pass.run({job_for(l.ffn_gate_inp, 0, a_aux, a_aux.rows.data(), T, router.data(), X)});

            // Group the batch's tokens by expert.
            std::vector<std::vector<std::pair<int64_t, float>>> members(X);
            std::vector<ref::Routing> routes(T);
            pass.for_rows(T, [&](int64_t t) {
                routes[t] =
                    ref::route(hp, &router[t * X], l.exp_probs_b ? f32(l.exp_probs_b) : nullptr);
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

            pass.quantize(l.ffn_gate_exps.type, xn.data(), E, T, E, a_in);
            std::vector<const uint8_t*> xptr(n_rows);
            for (size_t i = 0; i < active.size(); ++i)
                for (size_t m = 0; m < members[active[i]].size(); ++m)
                    xptr[offset[i] + m] = a_in.rows[members[active[i]][m].first];
            std::vector<float> g(n_rows * f), u(n_rows * f);
            jobs.clear();
            for (size_t i = 0; i < active.size(); ++i) {
                const int64_t cnt = static_cast<int64_t>(members[active[i]].size());
                jobs.push_back(job_for(l.ffn_gate_exps, active[i], a_in, &xptr[offset[i]], cnt,
                                       &g[offset[i] * f], f));
                jobs.push_back(job_for(l.ffn_up_exps, active[i], a_in, &xptr[offset[i]], cnt,
                                       &u[offset[i] * f], f));
            }
            const bool shared = static_cast<bool>(l.ffn_gate_shexp);
            const int64_t fs = shared ? l.ffn_gate_shexp.ne[1] : 0;
            std::vector<float> gs(T * fs), us(T * fs), ys(shared ? T * E : 0);
            Acts a_sh;
            if (shared) {
                const Acts* sh_in = &a_in;
                if (!pass.same_acts(l.ffn_gate_shexp.type, l.ffn_gate_exps.type)) {
                    pass.quantize(l.ffn_gate_shexp.type, xn.data(), E, T, E, a_sh);
                    sh_in = &a_sh;
                }
                jobs.push_back(
                    job_for(l.ffn_gate_shexp, 0, *sh_in, sh_in->rows.data(), T, gs.data(), fs));
                jobs.push_back(
                    job_for(l.ffn_up_shexp, 0, *sh_in, sh_in->rows.data(), T, us.data(), fs));
            }
            pass.run(jobs);

            std::vector<int64_t> row_tok(n_rows);
            for (size_t i = 0; i < active.size(); ++i)
                for (size_t m = 0; m < members[active[i]].size(); ++m)
                    row_tok[offset[i] + m] = members[active[i]][m].first;
            swiglu_rows(g, u, n_rows, f, l.ffn_down_exps.type, a_aux, &row_tok);
            std::vector<float> out(n_rows * E);
            jobs.clear();
            for (size_t i = 0; i < active.size(); ++i) {
                const int64_t cnt = static_cast<int64_t>(members[active[i]].size());
                jobs.push_back(job_for(l.ffn_down_exps, active[i], a_aux, &a_aux.rows[offset[i]],
                                       cnt, &out[offset[i] * E], E));
            }
            if (shared) {
                swiglu_rows(gs, us, T, fs, l.ffn_down_shexp.type, a_aux2);
                jobs.push_back(
                    job_for(l.ffn_down_shexp, 0, a_aux2, a_aux2.rows.data(), T, ys.data(), E));
            }
            pass.run(jobs);

            // y[t] = Σ weight · expert output (in routing order, as the reference) + shared.
            std::vector<int64_t> row_of(T * hp.n_expert_used);
            std::vector<size_t> seen(X, 0);
            for (int64_t t = 0; t < T; ++t)
                for (size_t kk = 0; kk < routes[t].experts.size(); ++kk) {
                    const int32_t e = routes[t].experts[kk];
                    row_of[t * hp.n_expert_used + kk] =
                        offset[slot[e]] + static_cast<int64_t>(seen[e]++);
                }
            pass.for_rows(T, [&](int64_t t) {
                float* yt = &y[t * E];
                for (size_t kk = 0; kk < routes[t].experts.size(); ++kk)
                    k.axpy(routes[t].weights[kk], &out[row_of[t * hp.n_expert_used + kk] * E], yt,
                           E);
                if (shared)
                    for (int64_t i = 0; i < E; ++i) yt[i] += ys[t * E + i];
            });
        }
        for (int64_t i = 0; i < T * E; ++i) x[i] += y[i];
    }
    for (const SeqBatch& sb : batch) sb.seq->commit(static_cast<int32_t>(sb.tokens.size()));
    for (int64_t b = 0; b < S; ++b)
        if (batch[b].hidden)
            batch[b].hidden->assign(x.begin() + seg_begin[b] * E, x.begin() + seg_begin[b + 1] * E);
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
    if (n_out == 0) return Status::success();
    std::vector<float> xo(n_out * E);
    for (int64_t i = 0; i < n_out; ++i) {
        std::copy_n(&x[out_rows[i] * E], E, &xo[i * E]);
        rms_norm(&xo[i * E], f32(out_norm), E, eps);
    }
    const int64_t V = hp.n_vocab;
    std::vector<float> all;
    std::vector<float>* dst = S == 1 ? batch[0].logits : &all;  // one sequence: in place
    dst->resize(n_out * V);
    pass.quantize(out_head.type, xo.data(), E, n_out, E, a_in,
                  [&](int64_t i) { return out_rows[i]; });
    pass.run({job_for(out_head, 0, a_in, a_in.rows.data(), n_out, dst->data(), V)});
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
    return Status::success();
}

}  // namespace latent::engine
