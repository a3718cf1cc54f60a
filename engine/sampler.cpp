// Sampler, Rng and StopMatcher: see sampler.h for the pipeline and its contracts.
// Nothing here allocates per token once the scratch buffers have grown to the vocabulary.
#include "engine/sampler.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

namespace latent::engine {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Top-k uses a heap of k candidates when k <= n_vocab / kHeapTopKRatio; beyond that the
// heap's log k updates cost more than nth_element's pass over a full candidate array.
constexpr size_t kHeapTopKRatio = 16;
// Top-p without top-k ranks this many candidates first, then 4x more each round.
constexpr size_t kTopPFirstChunk = 256;

std::string format_float(float v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
    return buf;
}

Error bad_param(const char* name, const std::string& value, const char* allowed) {
    return make_error(std::string("invalid sampling parameter ") + name + " = " + value + ": " +
                      allowed);
}

// Total order used everywhere a ranking is needed: higher logit first, then lower id, so
// top-k's cut and the candidate order never depend on the standard library's algorithm.
bool ranks_higher(const TokenProb& a, const TokenProb& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// Bytes at the end of `s` that start a UTF-8 sequence but do not finish it (0 to 3).
// Invalid bytes are not held: they would never complete, and holding them gains nothing.
size_t incomplete_utf8_tail(std::string_view s) {
    const size_t n = s.size();
    for (size_t back = 1; back <= 3 && back <= n; ++back) {
        const auto c = static_cast<unsigned char>(s[n - back]);
        if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
        size_t need = 1;
        if (c >= 0xC2 && c < 0xE0) {
            need = 2;
        } else if (c >= 0xE0 && c < 0xF0) {
            need = 3;
        } else if (c >= 0xF0 && c < 0xF5) {
            need = 4;
        }
        return need > back ? back : 0;
    }
    return 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// SamplingParams
// ---------------------------------------------------------------------------------------

Status SamplingParams::validate() const {
    // Written as !(in range) so that NaN, which fails every comparison, is rejected too.
    if (!(std::isfinite(temperature) && temperature >= 0.0f)) {
        return bad_param("temperature", format_float(temperature),
                         "must be a finite number >= 0 (0 = greedy)");
    }
    if (top_k < 0) {
        return bad_param("top_k", std::to_string(top_k), "must be >= 0 (0 = off)");
    }
    if (!(top_p > 0.0f && top_p <= 1.0f)) {
        return bad_param("top_p", format_float(top_p), "must be in (0, 1] (1 = off)");
    }
    if (!(min_p >= 0.0f && min_p <= 1.0f)) {
        return bad_param("min_p", format_float(min_p), "must be in [0, 1] (0 = off)");
    }
    if (!(std::isfinite(repeat_penalty) && repeat_penalty > 0.0f)) {
        return bad_param("repeat_penalty", format_float(repeat_penalty),
                         "must be a finite number > 0 (1 = off)");
    }
    if (repeat_last_n < 0 || repeat_last_n > kMaxRepeatLastN) {
        return bad_param("repeat_last_n", std::to_string(repeat_last_n),
                         "must be in [0, 1048576] (0 = off)");
    }
    return Status::success();
}

// ---------------------------------------------------------------------------------------
// Rng
// ---------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------
// Sampler
// ---------------------------------------------------------------------------------------

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
    assert(params.validate().ok() && "Sampler: invalid SamplingParams; use create()");
}

Expected<Sampler> Sampler::create(const SamplingParams& params) {
    if (Status status = params.validate(); !status.ok()) return status.error();
    return Sampler(params);
}

void Sampler::accept(int32_t token) {
    if (params_.repeat_last_n <= 0) return;
    history_.push_back(token);
    while (history_.size() > static_cast<size_t>(params_.repeat_last_n)) history_.pop_front();
}

void Sampler::reset() {
    history_.clear();
    rng_ = Rng(params_.seed);
}

void Sampler::build_candidates(const float* logits, int32_t n_vocab, Scratch& scratch) const {
    const size_t n = static_cast<size_t>(n_vocab);
    std::vector<float>& work = scratch.logits;  // F32 [n_vocab], penalized copy
    std::vector<TokenProb>& out = scratch.candidates;
    work.assign(logits, logits + n);
    for (float& l : work) {
        if (std::isnan(l)) l = kNegInf;
    }

    // 1. Repetition penalty. Computed from the caller's logit, not the running value, so
    // a token seen several times in the window is penalized once (llama.cpp's rule).
    const float penalty = params_.repeat_penalty;
    if (penalty != 1.0f) {
        for (const int32_t id : history_) {
            if (id < 0 || id >= n_vocab) continue;
            const float raw = logits[id];
            if (std::isnan(raw)) continue;  // stays -inf from the copy above
            work[static_cast<size_t>(id)] = raw > 0.0f ? raw / penalty : raw * penalty;
        }
    }

    // 2. Greedy, and the fallback for a row whose maximum is not finite.
    size_t best = 0;
    for (size_t i = 1; i < n; ++i) {
        if (work[i] > work[best]) best = i;  // strict: ties keep the lower id
    }
    const float max_logit = work[best];
    if (params_.temperature <= 0.0f || !std::isfinite(max_logit)) {
        out.assign(1, TokenProb{static_cast<int32_t>(best), max_logit, 1.0f});
        return;
    }

    // 3. Top-k. A small k (the usual 40 of 129k) keeps a heap of the k best seen so far:
    // one comparison for most tokens. A large k uses nth_element, O(n) either way. Only
    // the k survivors are then sorted.
    auto fill_all = [&] {
        out.resize(n);
        for (size_t i = 0; i < n; ++i) out[i] = TokenProb{static_cast<int32_t>(i), work[i], 0.0f};
    };
    bool sorted = false;
    const size_t k = static_cast<size_t>(params_.top_k);
    if (k > 0 && k < n) {
        if (k <= n / kHeapTopKRatio) {
            // Max-heap under ranks_higher: the front is the worst kept candidate. Ids only
            // grow during the scan, so a newcomer that ties the worst never displaces it.
            out.clear();
            for (size_t i = 0; i < n; ++i) {
                const TokenProb c{static_cast<int32_t>(i), work[i], 0.0f};
                if (out.size() < k) {
                    out.push_back(c);
                    std::push_heap(out.begin(), out.end(), ranks_higher);
                } else if (c.logit > out.front().logit) {
                    std::pop_heap(out.begin(), out.end(), ranks_higher);
                    out.back() = c;
                    std::push_heap(out.begin(), out.end(), ranks_higher);
                }
            }
        } else {
            fill_all();
            std::nth_element(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(k), out.end(),
                             ranks_higher);
            out.resize(k);
        }
        std::sort(out.begin(), out.end(), ranks_higher);
        sorted = true;
    } else {
        fill_all();
    }

    // 4. Softmax with temperature. `prob` holds the unnormalized weight exp((l - max) / T)
    // until step 7; the maximum's weight is exactly 1. (l - max) / T rather than l / T -
    // max / T: no inf - inf when T is tiny.
    const double temperature = params_.temperature;
    double total = 0.0;
    for (auto& c : out) {
        c.prob =
            static_cast<float>(std::exp((static_cast<double>(c.logit) - max_logit) / temperature));
        total += c.prob;
    }

    // 6 before 5. Both keep a prefix of the ranking computed from the same weights, so
    // their intersection is the same in either order; min-p first is a linear pass that
    // usually leaves few candidates for top-p's sort.
    const float min_p = params_.min_p;
    if (min_p > 0.0f) {
        // The maximum's weight is 1, so the threshold min_p * max is min_p itself.
        out.erase(std::remove_if(out.begin(), out.end(),
                                 [min_p](const TokenProb& c) { return c.prob < min_p; }),
                  out.end());
    }

    // 5. Top-p over the softmax of step 4 (cumulative sums of the un-renormalized weights,
    // so min-p having run first changes nothing). Unsorted candidates are ranked in chunks
    // that grow 4x: nth_element splits off the next chunk, only it is sorted, and the
    // scan stops once the target is reached, which for a peaked distribution is within
    // the first chunk rather than after sorting the whole vocabulary.
    const double top_p = params_.top_p;
    if (top_p < 1.0) {
        const double target = top_p * total;
        double cumulative = 0.0;
        size_t keep = 0;
        bool reached = false;
        for (size_t chunk = kTopPFirstChunk; !reached && keep < out.size(); chunk *= 4) {
            const size_t end = std::min(out.size(), keep + chunk);
            if (!sorted) {
                const auto first = out.begin() + static_cast<std::ptrdiff_t>(keep);
                const auto last = out.begin() + static_cast<std::ptrdiff_t>(end);
                if (last != out.end()) std::nth_element(first, last, out.end(), ranks_higher);
                std::sort(first, last, ranks_higher);
            }
            while (keep < end && !reached) {
                cumulative += out[keep++].prob;
                reached = cumulative >= target;
            }
        }
        out.resize(keep);
    }

    // 7. Renormalize what is left.
    double kept = 0.0;
    for (const auto& c : out) kept += c.prob;
    for (auto& c : out) c.prob = static_cast<float>(c.prob / kept);
}

int32_t Sampler::sample(const float* logits, int32_t n_vocab) {
    assert(logits != nullptr && n_vocab > 0);
    if (logits == nullptr || n_vocab <= 0) return -1;

    build_candidates(logits, n_vocab, scratch_);
    const std::vector<TokenProb>& candidates = scratch_.candidates;
    if (params_.temperature <= 0.0f) return candidates.front().id;

    // Walk the cumulative distribution; the running sum repeats the total's additions in
    // the same order, so it reaches the total exactly and the loop always returns inside.
    double total = 0.0;
    for (const auto& c : candidates) total += c.prob;
    const double target = rng_.next_double() * total;
    double cumulative = 0.0;
    for (const auto& c : candidates) {
        cumulative += c.prob;
        if (cumulative > target) return c.id;
    }
    return candidates.back().id;
}

std::vector<TokenProb> Sampler::candidates_for_test(const float* logits, int32_t n_vocab) const {
    if (logits == nullptr || n_vocab <= 0) return {};
    Scratch scratch;
    build_candidates(logits, n_vocab, scratch);
    return std::move(scratch.candidates);
}

// ---------------------------------------------------------------------------------------
// StopMatcher
// ---------------------------------------------------------------------------------------

Expected<StopMatcher> StopMatcher::create(std::vector<std::string> stops) {
    if (stops.size() > kMaxStopStrings) {
        return make_error("too many stop strings: " + std::to_string(stops.size()) + " (at most " +
                          std::to_string(kMaxStopStrings) + ")");
    }
    StopMatcher matcher;
    for (size_t i = 0; i < stops.size(); ++i) {
        std::string& text = stops[i];
        if (text.size() > kMaxStopBytes) {
            return make_error("stop string " + std::to_string(i) + " is " +
                              std::to_string(text.size()) + " bytes (at most " +
                              std::to_string(kMaxStopBytes) + ")");
        }
        if (text.empty()) continue;
        Stop stop;
        stop.fail.assign(text.size(), 0);
        for (size_t j = 1, border = 0; j < text.size(); ++j) {
            while (border > 0 && text[j] != text[border]) border = stop.fail[border - 1];
            if (text[j] == text[border]) ++border;
            stop.fail[j] = static_cast<uint16_t>(border);
        }
        stop.text = std::move(text);
        matcher.stops_.push_back(std::move(stop));
    }
    return matcher;
}

StopMatcher::Step StopMatcher::push(std::string_view piece) {
    Step step;
    if (stopped_) {
        step.stopped = true;
        return step;
    }

    // Feed each byte to every automaton; the first byte at which one completes is the
    // earliest end. Stops are visited longest-first at that byte by taking the maximum.
    const size_t base = held_.size();
    held_.append(piece);
    for (size_t i = 0; i < piece.size(); ++i) {
        const char c = piece[i];
        const Stop* done = nullptr;
        for (auto& stop : stops_) {
            size_t q = stop.matched;
            while (q > 0 && stop.text[q] != c) q = stop.fail[q - 1];
            if (stop.text[q] == c) ++q;
            stop.matched = q;
            if (q == stop.text.size() && (done == nullptr || q > done->text.size())) {
                done = &stop;
            }
        }
        if (done != nullptr) {
            const size_t end = base + i + 1;
            step.emit = held_.substr(0, end - done->text.size());
            step.stopped = true;
            matched_ = done->text;
            stopped_ = true;
            held_.clear();
            return step;
        }
    }

    // No stop completed, so every automaton is short of its end: the longest partial
    // match is the tail that might still become a stop string.
    size_t hold = incomplete_utf8_tail(held_);
    for (const auto& stop : stops_) hold = std::max(hold, stop.matched);
    step.emit = held_.substr(0, held_.size() - hold);
    held_.erase(0, held_.size() - hold);
    return step;
}

std::string StopMatcher::flush() {
    for (auto& stop : stops_) stop.matched = 0;
    return std::exchange(held_, std::string());
}

// ---------------------------------------------------------------------------------------
// GenerationLimits
// ---------------------------------------------------------------------------------------

Status GenerationLimits::validate() const {
    if (max_tokens < 1) {
        return make_error("invalid generation limit max_tokens = " + std::to_string(max_tokens) +
                          ": must be >= 1");
    }
    auto matcher = StopMatcher::create(stop);
    if (!matcher.ok()) return matcher.error();
    return Status::success();
}

}  // namespace latent::engine
