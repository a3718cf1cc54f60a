// Pass::run (see pass.h): the job list split, packed for the tile matmul, and run over
// the pool.
#include <algorithm>
#include <map>
#include <tuple>

#include "engine/cpu/pass.h"

namespace latent::engine::cpu {

// Runs every job of the list, their rows split in chunks over the pool. Jobs in the
// tile matmul's form first have their activation rows packed (once per distinct row
// list: the gate and up matrices of an expert share theirs).
void Pass::run(const std::vector<Job>& given) {
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
        auto float_row = [&](int64_t t) { return a.tiled ? j.acts[t] : a.tiled_rows[row_of(t)]; };
        auto seq = [&](int64_t t) { return tok_seq_[a.token[row_of(t)]]; };
        for (int64_t t0 = 0; t0 < j.n_act;) {
            const bool tiled = float_row(t0) != nullptr;
            const int32_t s0 = seq(t0);
            int64_t t1 = t0 + 1;
            while (t1 < j.n_act && (float_row(t1) != nullptr) == tiled && (!tiled || seq(t1) == s0))
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
    // Decode (every job has fewer than 16 activation rows and none packs): the rows of all
    // jobs are one list of 16-row granules handed out by ThreadPool::parallel_guided (long
    // runs first for the prefetchers, one-granule runs at the end so that no thread waits
    // on another's long last chunk). Else in fixed chunks, each one item of the pool.
    const bool guided = std::all_of(jobs.begin(), jobs.end(),
                                    [](const Job& jb) { return !packs(jb) && jb.n_act < 16; });
    std::vector<int64_t> first(jobs.size() + 1, 0);
    std::vector<int64_t> chunk(jobs.size());
    std::vector<size_t> pack_of(jobs.size(), SIZE_MAX);     // job -> its packed rows
    std::vector<const uint8_t*> r16(jobs.size(), nullptr);  // job -> its R16 weights
    std::vector<size_t> to_pack;                            // jobs whose rows get packed
    std::vector<uint64_t> pack_at;                          // their offsets in packed_
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
            if (repacked_ && !jb.tiled && jb.format == cpu::act_format(jb.type, precise_))
                r16[j] = repacked_->find(jb.w);
            if (guided) {
                chunk[j] = 16;  // granules (an R16 group)
            } else if (r16[j]) {
                // One group of 16 rows per chunk for a prompt's tokens; 128 rows for an
                // expert that got a few of them.
                chunk[j] = jb.n_act >= 16 ? 16 : 128;
            } else {
                // Smaller chunks when there is little work per row, for balance — and at
                // least two per thread.
                chunk[j] =
                    jb.n_act >= 16
                        ? 8
                        : std::clamp<int64_t>((jb.rows + 2 * pool_.size() - 1) / (2 * pool_.size()),
                                              16, 128);
            }
        }
        first[j + 1] = first[j] + (jb.rows + chunk[j] - 1) / chunk[j];
    }
    if (!to_pack.empty()) {
        packed_.resize(pack_bytes);
        pool_.parallel_chunks(static_cast<int64_t>(to_pack.size()), 1, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) {
                const Job& jb = jobs[to_pack[i]];
                k_.pack_tokens(jb.acts, jb.n_act, jb.n, packed_.data() + pack_at[i]);
            }
        });
    }
    // Chunks [b, e) of the list, which may span jobs: each job's part in one kernel call.
    auto run_range = [&](int64_t b, int64_t e) {
        auto j = static_cast<size_t>(std::upper_bound(first.begin(), first.end(), b) -
                                     first.begin() - 1);
        for (int64_t c = b; c < e; ++j) {
            const int64_t ce = std::min(e, first[j + 1]);
            if (ce <= c) continue;
            const Job& jb = jobs[j];
            const int64_t r0 = (c - first[j]) * chunk[j];
            const int64_t r1 = std::min(jb.rows, (ce - first[j]) * chunk[j]);
            if (r16[j]) {
                k_.matmul_r16(jb.type, r16[j], jb.row_bytes, r0, r1, jb.acts, jb.n_act, jb.n, jb.y,
                              jb.y_stride);
            } else if (pack_of[j] != SIZE_MAX) {
                k_.matmul_packed(jb.type, jb.w, jb.row_bytes, r0, r1,
                                 packed_.data() + pack_at[pack_of[j]], jb.n_act, jb.n, jb.y,
                                 jb.y_stride);
            } else {
                k_.matmul_rows(jb.type, jb.format, jb.w, jb.row_bytes, r0, r1, jb.acts, jb.n_act,
                               jb.n, jb.y, jb.y_stride);
            }
            c = ce;
        }
    };
    if (guided)
        pool_.parallel_guided(first.back(), run_range);
    else
        pool_.parallel_chunks(first.back(), 1, run_range);
}

}  // namespace latent::engine::cpu
