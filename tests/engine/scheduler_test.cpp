// Scheduler: the same tokens as decoding alone, prefix reuse across requests, priorities
// with chunked prefill, cancellation (a storm of them leaks no page), busy, deadlines,
// warm-up pins, speculative decoding that changes nothing but the step count, and steps
// that run all their sequences in one backend call.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <cmath>

#include <cstdint>
#include <map>
#include <random>
#include <thread>

#include "engine/cpu/backend.h"
#include "engine/reference.h"
#include "engine/session.h"
#include "tests/support/test_models.h"

namespace latent::engine {
namespace {

class SchedulerTest : public ::testing::Test {
protected:
    void SetUp() override {
        MakeModelOptions o;
        o.preset = "tiny";
        o.quant = GgmlType::kQ8_0;
        auto m = Model::load(test::make_test_model(o));
        ASSERT_TRUE(m.ok()) << m.error().message;
        model = std::move(*m);
    }
    Scheduler::Options options(bool threaded = false) const {
        Scheduler::Options o;
        o.page_tokens = 4;
        o.prefix_cache_bytes = 1 << 20;
        o.cache_bytes = 16 << 20;
        o.prefill_chunk = 8;
        o.threaded = threaded;
        return o;
    }
    std::unique_ptr<Scheduler> make(const Scheduler::Options& o) {
        auto s = Scheduler::create(*model, backend, o);
        EXPECT_TRUE(s.ok()) << s.error().message;
        return std::move(*s);
    }
    std::vector<int32_t> ids(int n, uint32_t seed) const {
        std::vector<int32_t> v(static_cast<size_t>(n));
        for (int32_t& id : v)
            id = static_cast<int32_t>((seed = seed * 1664525u + 1013904223u) %
                                      model->hparams().n_vocab);
        return v;
    }
    static Request greedy(std::vector<int32_t> prompt, int32_t max_tokens,
                          Priority p = Priority::kChat) {
        Request r;
        r.prompt = std::move(prompt);
        r.sampling.temperature = 0;
        r.max_tokens = max_tokens;
        r.priority = p;
        return r;
    }
    // Submits and runs to the end (threaded = false).
    RequestResult run(Scheduler& s, Request r) {
        RequestResult out;
        r.on_done = [&](const RequestResult& res) { out = res; };
        EXPECT_TRUE(s.submit(std::move(r)).ok());
        s.run_until_idle();
        return out;
    }
    // Submits greedy requests for every prompt (request i at priority(i)) and runs them
    // all to the end (threaded = false); results by request index.
    std::map<size_t, RequestResult> run_all(Scheduler& s,
                                            const std::vector<std::vector<int32_t>>& prompts,
                                            int32_t max_tokens, size_t inline_index = SIZE_MAX) {
        std::map<size_t, RequestResult> got;
        for (size_t i = 0; i < prompts.size(); ++i) {
            auto r = greedy(prompts[i], max_tokens,
                            i == inline_index ? Priority::kInline : Priority::kChat);
            r.on_done = [&got, i](const RequestResult& res) { got[i] = res; };
            EXPECT_TRUE(s.submit(std::move(r)).ok());
        }
        s.run_until_idle();
        return got;
    }
    // Greedy decoding with a plain Session: what the scheduler must reproduce.
    std::vector<int32_t> alone(const std::vector<int32_t>& prompt, int n) {
        return alone_on(backend, prompt, n);
    }
    std::vector<int32_t> alone_on(Backend& be, const std::vector<int32_t>& prompt, int n) {
        const HParams& hp = model->hparams();
        LatentCache cache(LatentCache::Config{hp.n_layer, hp.kv_lora_rank, hp.n_rot, 4});
        Session session(*model, be, cache);
        auto pre = session.prefill(prompt);
        EXPECT_TRUE(pre.ok());
        std::vector<float> logits = pre->logits;
        SamplingParams sp;
        sp.temperature = 0;
        Sampler sampler(sp);
        std::vector<int32_t> out;
        for (int i = 0; i < n; ++i) {
            const int32_t id = sampler.sample(logits.data(), static_cast<int32_t>(hp.n_vocab));
            out.push_back(id);
            if (i + 1 < n) logits = *session.decode(id);
        }
        return out;
    }
    static void expect_no_leak(const Scheduler& s) {
        const auto st = s.stats();
        EXPECT_EQ(st.queue_depth, 0u);
        // Every page still in use is one the prefix cache holds.
        EXPECT_EQ(st.cache_pages_in_use, st.prefix.nodes);
    }

    std::unique_ptr<Model> model;
    ReferenceBackend backend;
};

TEST_F(SchedulerTest, OneRequestGivesWhatASessionGives) {
    auto s = make(options());
    const auto p = ids(11, 1);
    const auto r = run(*s, greedy(p, 6));
    EXPECT_EQ(r.finish_reason, "length");
    EXPECT_EQ(r.tokens, alone(p, 6));
    EXPECT_EQ(r.prompt_tokens, 11);
    EXPECT_EQ(r.cached_tokens, 0);
    EXPECT_EQ(r.computed_tokens, 11);
    expect_no_leak(*s);
}

TEST_F(SchedulerTest, ASecondPromptReusesTheFirstOnesPrefix) {
    auto s = make(options());
    const auto p = ids(10, 2);
    auto q = p;
    for (int32_t id : ids(5, 3)) q.push_back(id);
    run(*s, greedy(p, 2));
    const auto r = run(*s, greedy(q, 4));
    EXPECT_EQ(r.cached_tokens, 10);
    EXPECT_EQ(r.computed_tokens, 5);
    EXPECT_EQ(r.tokens, alone(q, 4));
    // The same prompt again: everything but its last token is cached.
    const auto again = run(*s, greedy(q, 4));
    EXPECT_EQ(again.cached_tokens, 14);
    EXPECT_EQ(again.tokens, r.tokens);
    const auto st = s->stats();
    EXPECT_EQ(st.cached_tokens, 24u);
    EXPECT_EQ(st.prompt_tokens, 10u + 15u + 15u);
    EXPECT_EQ(st.prefilled_tokens, 10u + 5u + 1u);  // rows the model ran
    expect_no_leak(*s);
}

TEST_F(SchedulerTest, ARequestWaitsForAPromptStillBeingPrefilledThatItStartsWith) {
    // A 40-token warm-up prefills in chunks of 8; after two steps (16 tokens) a completion
    // with the same first 30 tokens arrives: the warm-up's chunks run first until they
    // cover those, then the completion finds all 30 (the warm-up has passed them; the last,
    // partial page is shared too) and computes only its own 3; both give what they give
    // alone. (Without the wait it found the 16 done and computed 17.)
    auto s = make(options());
    const auto doc = ids(40, 41);
    RequestResult warm_res, inline_res;
    auto warm = greedy(doc, 1, Priority::kWarm);
    warm.on_done = [&](const RequestResult& r) { warm_res = r; };
    ASSERT_TRUE(s->submit(std::move(warm)).ok());
    s->step();
    s->step();
    std::vector<int32_t> q(doc.begin(), doc.begin() + 30);
    for (int32_t id : ids(3, 42)) q.push_back(id);
    auto comp = greedy(q, 4, Priority::kInline);
    comp.on_done = [&](const RequestResult& r) { inline_res = r; };
    ASSERT_TRUE(s->submit(std::move(comp)).ok());
    s->run_until_idle();
    EXPECT_EQ(inline_res.cached_tokens, 30);
    EXPECT_EQ(inline_res.computed_tokens, 3);
    EXPECT_EQ(inline_res.tokens, alone(q, 4));
    EXPECT_EQ(warm_res.finish_reason, "length");
    EXPECT_EQ(warm_res.tokens, alone(doc, 1));
    EXPECT_EQ(s->stats().prefilled_tokens, 40u + 3u);  // no row twice
    expect_no_leak(*s);
}

TEST_F(SchedulerTest, WithoutThePrefixCacheEveryPromptIsComputed) {
    auto o = options();
    o.prefix_cache = false;
    auto s = make(o);
    const auto p = ids(9, 4);
    run(*s, greedy(p, 2));
    const auto r = run(*s, greedy(p, 2));
    EXPECT_EQ(r.cached_tokens, 0);
    EXPECT_EQ(r.computed_tokens, 9);
    EXPECT_EQ(s->stats().cache_pages_in_use, 0u);
}

TEST_F(SchedulerTest, ConcurrentRequestsGiveWhatEachGivesAlone) {
    std::vector<std::vector<int32_t>> prompts;
    const auto shared = ids(9, 5);
    for (uint32_t i = 0; i < 6; ++i) {
        auto p = i % 2 ? shared : std::vector<int32_t>{};
        for (int32_t id : ids(3 + static_cast<int>(i), 10 + i)) p.push_back(id);
        prompts.push_back(p);
    }
    auto s = make(options(/*threaded=*/true));
    std::mutex mu;
    std::map<size_t, RequestResult> got;
    std::vector<std::thread> clients;
    for (size_t i = 0; i < prompts.size(); ++i) {
        clients.emplace_back([&, i] {
            auto r = greedy(prompts[i], 5, i % 3 == 0 ? Priority::kInline : Priority::kChat);
            r.on_done = [&, i](const RequestResult& res) {
                std::lock_guard lock(mu);
                got[i] = res;
            };
            EXPECT_TRUE(s->submit(std::move(r)).ok());
        });
    }
    for (auto& t : clients) t.join();
    s->wait_idle();
    ASSERT_EQ(got.size(), prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) {
        EXPECT_EQ(got[i].finish_reason, "length");
        EXPECT_EQ(got[i].tokens, alone(prompts[i], 5)) << "request " << i;
    }
    expect_no_leak(*s);
}

TEST_F(SchedulerTest, ACompletionWaitsAtMostOneChunkOfALongPrefill) {
    auto o = options();
    o.prefill_chunk = 4;
    auto s = make(o);
    std::vector<std::string> events;
    auto chat = greedy(ids(40, 6), 2, Priority::kChat);
    chat.on_token = [&](int32_t) {
        events.push_back("chat");
        return true;
    };
    ASSERT_TRUE(s->submit(std::move(chat)).ok());
    ASSERT_TRUE(s->step());
    ASSERT_TRUE(s->step());  // 8 of the chat's 40 prompt tokens are in
    auto inline_req = greedy(ids(3, 7), 2, Priority::kInline);
    inline_req.on_token = [&](int32_t) {
        events.push_back("inline");
        return true;
    };
    ASSERT_TRUE(s->submit(std::move(inline_req)).ok());
    ASSERT_TRUE(s->step());  // the completion's whole prompt goes first
    EXPECT_EQ(events, std::vector<std::string>{"inline"});
    s->run_until_idle();
    EXPECT_EQ(events.size(), 4u);
    EXPECT_EQ(events.back(), "chat");
    expect_no_leak(*s);
}

TEST_F(SchedulerTest, CancelledRequestsEndAndGiveTheirPagesBack) {
    auto s = make(options());
    RequestResult res;
    auto r = greedy(ids(20, 8), 50);
    r.on_done = [&](const RequestResult& x) { res = x; };
    auto h = s->submit(std::move(r));
    ASSERT_TRUE(h.ok());
    for (int i = 0; i < 4; ++i) s->step();  // prefilled (chunks of 8) and decoding
    EXPECT_GT(s->stats().cache_pages_in_use, 0u);
    s->cancel(*h);
    s->step();
    EXPECT_EQ(res.finish_reason, "cancelled");
    EXPECT_LT(res.tokens.size(), 50u);
    EXPECT_FALSE(s->step());
    expect_no_leak(*s);
    s->cancel(*h);  // again, and an unknown handle: nothing happens
    s->cancel(12345);
    s->run_until_idle();
}

TEST_F(SchedulerTest, ARequestWaitsForCachePagesInsteadOfFailing) {
    // A cache of 10 pages of 4 tokens. A needs 7 (20 prompt + 8 generated tokens), B 4
    // (12 + 4): both are admitted, and when A wants its 7th page every page is held while
    // B still decodes; A waits until B ends and gives its pages back, then finishes. Both
    // give what they give alone.
    auto o = options();
    o.prefix_cache = false;
    const HParams& hp = model->hparams();
    const uint64_t page = uint64_t{o.page_tokens} * hp.n_layer * (hp.kv_lora_rank + hp.n_rot) * 4;
    o.cache_bytes = 10 * page;
    auto s = make(o);
    const std::vector<std::vector<int32_t>> prompts = {ids(20, 31), ids(12, 32)};
    const int32_t gen[] = {8, 4};
    std::map<size_t, RequestResult> got;
    for (size_t i = 0; i < prompts.size(); ++i) {
        auto r = greedy(prompts[i], gen[i]);
        r.on_done = [&got, i](const RequestResult& res) { got[i] = res; };
        ASSERT_TRUE(s->submit(std::move(r)).ok());
    }
    s->run_until_idle();
    ASSERT_EQ(got.size(), 2u);
    for (size_t i = 0; i < prompts.size(); ++i) {
        EXPECT_EQ(got[i].finish_reason, "length") << i << ": " << got[i].error;
        EXPECT_EQ(got[i].tokens, alone(prompts[i], gen[i])) << i;
    }
    EXPECT_GT(s->stats().cache_waits, 0u);
    expect_no_leak(*s);

    // When no sequence can move (both want a page and none is free), the newest fails and
    // frees its pages; the other finishes as alone.
    o.cache_bytes = 12 * page;
    auto s2 = make(o);
    auto both = run_all(*s2, {ids(20, 33), ids(20, 34)}, 8);
    ASSERT_EQ(both.size(), 2u);
    EXPECT_EQ(both[0].finish_reason, "length") << both[0].error;
    EXPECT_EQ(both[0].tokens, alone(ids(20, 33), 8));
    EXPECT_EQ(both[1].finish_reason, "error");
    EXPECT_NE(both[1].error.find("latent cache is full"), std::string::npos) << both[1].error;
    expect_no_leak(*s2);
}

TEST_F(SchedulerTest, CancellationStormLeaksNothingAndNeverStalls) {
    auto o = options();
    o.max_queue = 2000;
    o.prefix_cache_bytes = 64 * 1024;  // small: eviction happens during the storm
    auto s = make(o);
    std::mt19937 rng(42);
    std::vector<std::vector<int32_t>> prompts;
    for (uint32_t i = 0; i < 8; ++i) prompts.push_back(ids(5 + static_cast<int>(i), 20 + i));
    std::vector<int> done(1000, 0);
    std::vector<Scheduler::Handle> handles;
    for (int i = 0; i < 1000; ++i) {
        auto r = greedy(prompts[rng() % prompts.size()], 1 + static_cast<int32_t>(rng() % 4));
        const int cancel_after = static_cast<int>(rng() % 4);  // tokens before cancelling
        r.on_token = [&, i, cancel_after, n = 0](int32_t) mutable {
            if (++n == cancel_after) s->cancel(handles[static_cast<size_t>(i)]);
            return true;
        };
        r.on_done = [&done, i](const RequestResult&) { ++done[static_cast<size_t>(i)]; };
        auto h = s->submit(std::move(r));
        ASSERT_TRUE(h.ok());
        handles.push_back(*h);
        if (rng() % 3 == 0) s->cancel(handles[rng() % handles.size()]);
        if (rng() % 4 == 0) s->step();
    }
    s->run_until_idle();
    for (int i = 0; i < 1000; ++i) EXPECT_EQ(done[static_cast<size_t>(i)], 1) << i;
    expect_no_leak(*s);
    const auto st = s->stats();
    EXPECT_EQ(st.finished, 1000u);
    EXPECT_GT(st.cancelled, 100u);
}

TEST_F(SchedulerTest, AFullQueueAnswersBusy) {
    auto o = options();
    o.max_queue = 2;
    auto s = make(o);
    ASSERT_TRUE(s->submit(greedy(ids(3, 9), 1)).ok());
    ASSERT_TRUE(s->submit(greedy(ids(3, 9), 1)).ok());
    auto third = s->submit(greedy(ids(3, 9), 1));
    ASSERT_FALSE(third.ok());
    EXPECT_EQ(third.error().message, "busy");
    EXPECT_EQ(s->stats().rejected_busy, 1u);
    s->run_until_idle();
    EXPECT_TRUE(s->submit(greedy(ids(3, 9), 1)).ok());
    s->run_until_idle();
}

TEST_F(SchedulerTest, BadRequestsAreErrors) {
    auto s = make(options());
    EXPECT_FALSE(s->submit(greedy({}, 1)).ok());
    EXPECT_FALSE(s->submit(greedy({-1}, 1)).ok());
    auto r = greedy(ids(3, 9), 1);
    r.sampling.temperature = -1;
    EXPECT_FALSE(s->submit(std::move(r)).ok());
    EXPECT_FALSE(s->submit(greedy(ids(3, 9), 1 << 30)).ok());
}

TEST_F(SchedulerTest, APassedDeadlineEndsTheRequest) {
    auto s = make(options());
    auto r = greedy(ids(5, 10), 10);
    r.deadline = std::chrono::steady_clock::now() - std::chrono::seconds(1);
    const auto res = run(*s, std::move(r));
    EXPECT_EQ(res.finish_reason, "deadline");
    expect_no_leak(*s);
}

TEST_F(SchedulerTest, EndTokensAndOnTokenStopGeneration) {
    auto s = make(options());
    const auto p = ids(6, 11);
    const auto want = alone(p, 3);
    auto r = greedy(p, 10);
    r.end_tokens = {want[1]};
    auto res = run(*s, std::move(r));
    EXPECT_EQ(res.finish_reason, "stop");
    EXPECT_EQ(res.tokens, std::vector<int32_t>{want[0]});
    auto r2 = greedy(p, 10);
    r2.on_token = [](int32_t) { return false; };
    res = run(*s, std::move(r2));
    EXPECT_EQ(res.finish_reason, "stop");
    EXPECT_EQ(res.tokens.size(), 1u);
}

TEST_F(SchedulerTest, WarmPinsAPrefixUntilReleased) {
    auto o = options();
    o.prefix_cache_bytes = 4 * 4 * 1024;  // a handful of pages of the tiny model
    auto s = make(o);
    const auto file = ids(12, 12);
    ASSERT_TRUE(s->warm("file:///a.cpp", file).ok());
    s->run_until_idle();
    auto st = s->stats();
    EXPECT_EQ(st.prefix.pinned_nodes, 3u);
    EXPECT_EQ(st.computed_tokens, 12u);
    // Other prompts fill the budget; the pinned file stays.
    for (uint32_t i = 0; i < 6; ++i) run(*s, greedy(ids(12, 100 + i), 1));
    auto q = file;
    q.push_back(7);
    const auto r = run(*s, greedy(q, 1));
    EXPECT_EQ(r.cached_tokens, 12);
    s->release("file:///a.cpp");
    s->run_until_idle();
    EXPECT_EQ(s->stats().prefix.pinned_nodes, 0u);
}

// A backend that takes a set time per row on an injected clock: 10 ms per prompt row, 30
// ms per decode step; records each call's rows.
class TimedBackend final : public Backend {
public:
    std::string name() const override { return "timed"; }
    Status forward(const Model& model, SeqCache& seq, std::span<const int32_t> tokens,
                   LogitsMode mode, std::vector<float>& logits) override {
        return ref.forward(model, seq, tokens, mode, logits);
    }
    Status forward_batch(const Model& model, std::span<const SeqBatch> batch) override {
        int64_t ms = 0;
        batches.emplace_back();
        for (const SeqBatch& b : batch) {
            rows.push_back(b.tokens.size());
            batches.back().push_back(b.tokens.size());
            ms = std::max<int64_t>(ms, b.tokens.size() > 1 ? 10 * int64_t(b.tokens.size()) : 30);
        }
        now += std::chrono::milliseconds(ms);
        return ref.forward_batch(model, batch);
    }
    ReferenceBackend ref;
    std::vector<size_t> rows;
    std::vector<std::vector<size_t>> batches;  // each call's rows per sequence
    std::chrono::steady_clock::time_point now{};
};

// The scheduler measures prefill per token and decode per step from its own steps, and a
// warm-up chunk then takes about warm_chunk_ms (not fewer than 16 tokens); a request's
// progress follows what it has in the cache.
TEST_F(SchedulerTest, MeasuredSpeedsSizeWarmUpChunks) {
    TimedBackend timed;
    auto o = options();
    o.prefill_chunk = 64;
    o.warm_chunk = 64;
    o.warm_chunk_ms = 200;
    o.now = [&timed] { return timed.now; };
    auto sched = Scheduler::create(*model, timed, o);
    ASSERT_TRUE(sched.ok());
    Scheduler& s = **sched;
    EXPECT_EQ(s.stats().prefill_ms_per_token, 0.0);
    // Before anything is measured a warm-up takes warm_chunk rows a step.
    ASSERT_TRUE(s.warm("a", ids(70, 1)).ok());
    s.run_until_idle();
    ASSERT_GE(timed.rows.size(), 2u);
    EXPECT_EQ(timed.rows[0], 64u);
    EXPECT_DOUBLE_EQ(s.stats().prefill_ms_per_token, 10.0);
    Request r = greedy(ids(40, 2), 4);
    r.progress = std::make_shared<std::atomic<int32_t>>(0);
    auto progress = r.progress;
    run(s, std::move(r));
    EXPECT_DOUBLE_EQ(s.stats().prefill_ms_per_token, 10.0);
    EXPECT_DOUBLE_EQ(s.stats().decode_ms_per_step, 30.0);
    EXPECT_GE(progress->load(), 40);
    // Measured: 200 ms of warm-up is 20 rows.
    timed.rows.clear();
    ASSERT_TRUE(s.warm("b", ids(50, 3)).ok());
    s.run_until_idle();
    ASSERT_EQ(timed.rows.size(), 3u);
    EXPECT_EQ(timed.rows[0], 20u);
    EXPECT_EQ(timed.rows[1], 20u);
    EXPECT_EQ(timed.rows[2], 10u);
    // And never below 16 rows, however slow.
    o.warm_chunk_ms = 50;
    auto slow = Scheduler::create(*model, timed, o);
    ASSERT_TRUE(slow.ok());
    ASSERT_TRUE((*slow)->warm("c", ids(40, 4)).ok());  // measures: 64 rows would be one step
    (*slow)->run_until_idle();
    timed.rows.clear();
    ASSERT_TRUE((*slow)->warm("d", ids(40, 5)).ok());
    (*slow)->run_until_idle();
    ASSERT_FALSE(timed.rows.empty());
    EXPECT_EQ(timed.rows[0], 16u);
}

// A warm-up waits while a request decodes: no step runs a warm-up chunk beside a decode
// row, and it runs once the request is done.
TEST_F(SchedulerTest, AWarmUpWaitsWhileARequestDecodes) {
    TimedBackend timed;
    auto o = options();
    o.prefill_chunk = 64;
    o.warm_chunk = 16;
    o.now = [&timed] { return timed.now; };
    auto sched = Scheduler::create(*model, timed, o);
    ASSERT_TRUE(sched.ok());
    Scheduler& s = **sched;
    RequestResult got;
    Request r = greedy(ids(10, 7), 6, Priority::kInline);
    r.on_done = [&](const RequestResult& res) { got = res; };
    ASSERT_TRUE(s.submit(std::move(r)).ok());
    ASSERT_TRUE(s.warm("w", ids(48, 8)).ok());
    s.run_until_idle();
    EXPECT_EQ(got.tokens.size(), 6u);
    // Calls: the request's prompt (10 rows), its 5 decode steps alone, then the warm-up
    // in 16-row chunks.
    ASSERT_EQ(timed.batches.size(), 9u);
    EXPECT_EQ(timed.batches[0], std::vector<size_t>{10});
    for (size_t i = 1; i <= 5; ++i) EXPECT_EQ(timed.batches[i], std::vector<size_t>{1}) << i;
    for (size_t i = 6; i < 9; ++i) EXPECT_EQ(timed.batches[i], std::vector<size_t>{16}) << i;
}

TEST(StepSpeed, AveragesPrefillAndDecodeApart) {
    StepSpeed s;
    EXPECT_EQ(s.prefill_ms_per_token(), 0.0);
    s.observe(4, 0, 100);  // too few rows to say
    EXPECT_EQ(s.prefill_ms_per_token(), 0.0);
    s.observe(64, 1, 700);  // with a decode row, before decode is known: skipped
    EXPECT_EQ(s.prefill_ms_per_token(), 0.0);
    s.observe(0, 1, 40);
    EXPECT_DOUBLE_EQ(s.decode_ms_per_step(), 40.0);
    s.observe(64, 1, 680);  // (680 - 40) / 64 = 10
    EXPECT_DOUBLE_EQ(s.prefill_ms_per_token(), 10.0);
    s.observe(32, 0, 640);  // 20 a token, moved a quarter of the way
    EXPECT_DOUBLE_EQ(s.prefill_ms_per_token(), 12.5);
    s.observe(0, 2, 60);
    EXPECT_DOUBLE_EQ(s.decode_ms_per_step(), 45.0);
}

// Penalties, logprobs and a constraint's mask, against a plain Session that applies the
// same arithmetic by hand: the OpenAI penalties over generated tokens, log-softmax in
// double, and a mask that lets only even ids through.
class EvenIdsOnly final : public TokenConstraint {
public:
    void mask(float* logits, int32_t n_vocab, int32_t remaining) override {
        for (int32_t id = 1; id < n_vocab; id += 2) logits[id] = -INFINITY;
        remainings.push_back(remaining);
    }
    void accept(int32_t token) override { accepted.push_back(token); }
    std::vector<int32_t> remainings, accepted;
};

TEST_F(SchedulerTest, PenaltiesLogprobsAndAConstraintMatchThePlainArithmetic) {
    const auto p = ids(9, 5);
    const int n = 8;
    const float freq = 1.5f, pres = 0.75f;
    // The reference: a Session, penalties and the mask applied by hand.
    const HParams& hp = model->hparams();
    const int32_t V = static_cast<int32_t>(hp.n_vocab);
    LatentCache cache(LatentCache::Config{hp.n_layer, hp.kv_lora_rank, hp.n_rot, 4});
    Session session(*model, backend, cache);
    std::vector<float> logits = session.prefill(p)->logits;
    std::map<int32_t, int> counts;
    std::vector<int32_t> want;
    std::vector<double> want_lp;
    for (int i = 0; i < n; ++i) {
        for (const auto& [id, c] : counts) logits[size_t(id)] -= freq * float(c) + pres;
        for (int32_t id = 1; id < V; id += 2) logits[size_t(id)] = -INFINITY;
        int32_t best = 0;
        for (int32_t id = 1; id < V; ++id)
            if (logits[size_t(id)] > logits[size_t(best)]) best = id;
        double z = 0;
        for (int32_t id = 0; id < V; id += 2)
            z += std::exp(double(logits[size_t(id)]) - logits[size_t(best)]);
        want_lp.push_back(-std::log(z));
        want.push_back(best);
        ++counts[best];
        if (i + 1 < n) logits = *session.decode(best);
    }

    auto s = make(options());
    auto even = std::make_shared<EvenIdsOnly>();
    Request r = greedy(p, n);
    r.frequency_penalty = freq;
    r.presence_penalty = pres;
    r.constraint = even;
    r.logprobs = 3;
    std::vector<TokenLogprobs> got_lp;
    r.on_logprobs = [&](const TokenLogprobs& lp) { got_lp.push_back(lp); };
    const auto res = run(*s, std::move(r));
    EXPECT_EQ(res.tokens, want);
    EXPECT_EQ(even->accepted, want);
    EXPECT_EQ(even->remainings, (std::vector<int32_t>{8, 7, 6, 5, 4, 3, 2, 1}));
    ASSERT_EQ(got_lp.size(), size_t(n));
    for (int i = 0; i < n; ++i) {
        EXPECT_EQ(got_lp[size_t(i)].token, want[size_t(i)]);
        EXPECT_NEAR(got_lp[size_t(i)].logprob, want_lp[size_t(i)], 1e-4);
        ASSERT_EQ(got_lp[size_t(i)].top.size(), 3u);
        EXPECT_EQ(got_lp[size_t(i)].top[0].first, want[size_t(i)]);  // greedy: the best
        for (const auto& [id, lp] : got_lp[size_t(i)].top) EXPECT_EQ(id % 2, 0);
    }
    // Out of range.
    Request bad = greedy(p, 2);
    bad.frequency_penalty = 3;
    EXPECT_FALSE(s->submit(std::move(bad)).ok());
}

TEST(PromptLookupDraft, FindsTheLongestRecentMatch) {
    const std::vector<int32_t> t = {1, 2, 3, 4, 5, 9, 2, 3, 4, 6, 7, 2, 3, 4};
    // "2 3 4" occurred twice before; the most recent one was followed by 6 7.
    EXPECT_EQ(prompt_lookup_draft(t, 2), (std::vector<int32_t>{6, 7}));
    EXPECT_EQ(prompt_lookup_draft(t, 5), (std::vector<int32_t>{6, 7, 2, 3, 4}));
    EXPECT_TRUE(prompt_lookup_draft(std::vector<int32_t>{1, 2, 3}, 4).empty());
    EXPECT_TRUE(prompt_lookup_draft(std::vector<int32_t>{}, 4).empty());
}

TEST_F(SchedulerTest, SpeculativeDecodingGivesTheSameTokens) {
    // A prompt that repeats itself, so prompt lookup has drafts to offer.
    auto p = ids(8, 13);
    const auto again = p;
    p.insert(p.end(), again.begin(), again.end());
    p.insert(p.end(), again.begin(), again.begin() + 3);
    auto plain = make(options());
    const auto want = run(*plain, greedy(p, 12));
    auto o = options();
    o.draft_tokens = 4;
    auto spec = make(o);
    const auto got = run(*spec, greedy(p, 12));
    EXPECT_EQ(got.tokens, want.tokens);
    EXPECT_EQ(got.tokens, alone(p, 12));
    EXPECT_GT(got.drafted_tokens, 0);
    EXPECT_LT(spec->stats().steps, plain->stats().steps + 1);
    expect_no_leak(*spec);
}

// Records each forward_batch call (how many sequences, how many tokens), then runs it
// through the reference one sequence at a time.
class RecordingBackend final : public Backend {
public:
    std::string name() const override { return "recording"; }
    Status forward(const Model& model, SeqCache& seq, std::span<const int32_t> tokens,
                   LogitsMode mode, std::vector<float>& logits) override {
        if (!in_batch) ++single_calls;  // the scheduler's own one-sequence calls
        return ref.forward(model, seq, tokens, mode, logits);
    }
    Status forward_batch(const Model& model, std::span<const SeqBatch> batch) override {
        calls.push_back(batch.size());
        if (throw_bad_alloc) throw std::bad_alloc();
        if (fail_batches && batch.size() > 1) return make_error("batch refused");
        in_batch = true;
        const Status st = Backend::forward_batch(model, batch);
        in_batch = false;
        return st;
    }
    ReferenceBackend ref;
    std::vector<size_t> calls;
    int single_calls = 0;
    bool fail_batches = false;
    bool throw_bad_alloc = false;
    bool in_batch = false;
};

// A backend that throws (bad_alloc) fails the step's requests with an error; the scheduler
// stays up and the next request is served.
TEST_F(SchedulerTest, ABackendThatThrowsFailsItsRequestsNotTheScheduler) {
    RecordingBackend rec;
    rec.throw_bad_alloc = true;
    auto sched = Scheduler::create(*model, rec, options());
    ASSERT_TRUE(sched.ok());
    Scheduler& s = **sched;
    auto got = run_all(s, {ids(5, 41), ids(6, 42)}, 3);
    for (size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(got[i].finish_reason, "error") << i;
        EXPECT_NE(got[i].error.find("out of memory"), std::string::npos) << got[i].error;
    }
    EXPECT_EQ(s.stats().errors, 2u);
    rec.throw_bad_alloc = false;
    const auto ok = run(s, greedy(ids(5, 43), 3));
    EXPECT_EQ(ok.finish_reason, "length") << ok.error;
    EXPECT_EQ(ok.tokens, alone(ids(5, 43), 3));
    expect_no_leak(s);
}

TEST_F(SchedulerTest, AStepRunsEverySequenceInOneBackendCall) {
    RecordingBackend rec;
    auto o = options();
    o.prefill_chunk = 64;
    auto sched = Scheduler::create(*model, rec, o);
    ASSERT_TRUE(sched.ok());
    Scheduler& s = **sched;
    std::vector<std::vector<int32_t>> prompts = {ids(5, 21), ids(6, 22), ids(7, 23)};
    auto got = run_all(s, prompts, 6);
    // Three prefill steps (one prompt each, joined by the decodes of those already in),
    // then the three decode together.
    ASSERT_FALSE(rec.calls.empty());
    EXPECT_EQ(rec.calls.size(), s.stats().steps);
    EXPECT_EQ(*std::max_element(rec.calls.begin(), rec.calls.end()), 3u);
    EXPECT_EQ(s.stats().max_batch_sequences, 3u);
    EXPECT_EQ(rec.single_calls, 0);
    EXPECT_LT(rec.calls.size(), 3u * 6u);  // fewer calls than tokens computed one by one
    for (size_t i = 0; i < prompts.size(); ++i) {
        EXPECT_EQ(got[i].finish_reason, "length");
        EXPECT_EQ(got[i].tokens, alone(prompts[i], 6)) << "request " << i;
    }
    expect_no_leak(s);
}

TEST_F(SchedulerTest, AFailedBatchIsRetriedOneSequenceAtATime) {
    RecordingBackend rec;
    rec.fail_batches = true;
    auto sched = Scheduler::create(*model, rec, options());
    ASSERT_TRUE(sched.ok());
    Scheduler& s = **sched;
    const std::vector<std::vector<int32_t>> prompts = {ids(5, 31), ids(6, 32)};
    auto got = run_all(s, prompts, 3);
    // Refused batches of two, each followed by its two sequences one at a time.
    const auto twos = std::count(rec.calls.begin(), rec.calls.end(), 2u);
    EXPECT_GT(twos, 0);
    EXPECT_GE(std::count(rec.calls.begin(), rec.calls.end(), 1u), 2 * twos);
    for (size_t i = 0; i < prompts.size(); ++i) {
        EXPECT_EQ(got[i].finish_reason, "length") << got[i].error;
        EXPECT_EQ(got[i].tokens, alone(prompts[i], 3)) << "request " << i;
    }
    expect_no_leak(s);
}

TEST_F(SchedulerTest, WithoutBatchingEachSequenceHasItsOwnCall) {
    RecordingBackend rec;
    auto o = options();
    o.batch = false;
    auto sched = Scheduler::create(*model, rec, o);
    ASSERT_TRUE(sched.ok());
    Scheduler& s = **sched;
    const std::vector<std::vector<int32_t>> prompts = {ids(5, 71), ids(6, 72), ids(3, 73)};
    auto got = run_all(s, prompts, 4);
    EXPECT_EQ(std::count(rec.calls.begin(), rec.calls.end(), 1u),
              static_cast<std::ptrdiff_t>(rec.calls.size()));
    EXPECT_GT(rec.calls.size(), s.stats().steps);  // some steps ran several sequences
    for (size_t i = 0; i < prompts.size(); ++i)
        EXPECT_EQ(got[i].tokens, alone(prompts[i], 4)) << "request " << i;
    expect_no_leak(s);
}

TEST_F(SchedulerTest, TheCpuBackendBatchesConcurrentRequestsAsItRunsThemAlone) {
    // Precise mode (float activations): the batch's per-token arithmetic is the same as a
    // sequence alone, so greedy tokens must agree exactly.
    CpuBackend cpu(2, nullptr, /*precise=*/true);
    auto o = options();
    o.draft_tokens = 3;
    auto sched = Scheduler::create(*model, cpu, o);
    ASSERT_TRUE(sched.ok());
    Scheduler& s = **sched;
    std::vector<std::vector<int32_t>> prompts;
    for (uint32_t i = 0; i < 5; ++i) prompts.push_back(ids(4 + 3 * static_cast<int>(i), 40 + i));
    auto got = run_all(s, prompts, 8, 2);
    EXPECT_GE(s.stats().max_batch_sequences, 4u);
    CpuBackend one(2, nullptr, /*precise=*/true);
    for (size_t i = 0; i < prompts.size(); ++i) {
        const auto want = alone_on(one, prompts[i], 8);
        EXPECT_EQ(got[i].tokens, want) << "request " << i;
    }
    expect_no_leak(s);
}

// The reference with its MTP block's logits replaced by a one-hot guess from an oracle
// (the sequence greedy decoding gives), right or wrong on purpose, so tests can steer how
// many drafts are accepted; the block itself still runs and keeps its cache.
class OracleMtpBackend final : public Backend {
public:
    std::string name() const override { return "oracle"; }
    Status forward(const Model& model, SeqCache& seq, std::span<const int32_t> tokens,
                   LogitsMode mode, std::vector<float>& logits) override {
        return ref.forward(model, seq, tokens, mode, logits);
    }
    Status forward_batch(const Model& model, std::span<const SeqBatch> batch) override {
        return ref.forward_batch(model, batch);
    }
    bool supports_mtp() const override { return true; }
    Status forward_mtp(const Model& model, std::span<const MtpBatch> batch) override {
        if (Status st = ref.forward_mtp(model, batch); !st) return st;
        for (const MtpBatch& b : batch) {
            // The last row is position p = n_tokens - 1 (no cached prefix here); its guess
            // is for the token at p + 2.
            const size_t at = static_cast<size_t>(b.seq->n_tokens()) + 1;
            if (at >= truth.size()) continue;
            ++guesses;
            int32_t id = truth[at];
            if (wrong_every && guesses % wrong_every == 0)
                id = (id + 1) % int32_t(b.logits->size());
            std::fill(b.logits->begin(), b.logits->end(), 0.0f);
            (*b.logits)[static_cast<size_t>(id)] = 1.0f;
        }
        return Status::success();
    }
    ReferenceBackend ref;
    std::vector<int32_t> truth;  // prompt + the greedy continuation
    int wrong_every = 0;         // every n-th guess wrong (0: never)
    int guesses = 0;
};

class SchedulerMtpTest : public SchedulerTest {
protected:
    void SetUp() override {
        MakeModelOptions o;
        o.preset = "tiny";
        o.quant = GgmlType::kQ8_0;
        o.mtp = true;
        auto m = Model::load(test::make_test_model(o));
        ASSERT_TRUE(m.ok()) << m.error().message;
        model = std::move(*m);
        ASSERT_EQ(model->hparams().n_nextn, 1u);
    }
};

TEST_F(SchedulerMtpTest, MtpDraftsLeaveGreedyOutputUnchanged) {
    const auto p = ids(13, 51);
    const auto want = alone(p, 10);
    auto o = options();
    o.mtp = true;
    auto s = make(o);  // the real block (random weights: its guesses are mostly wrong)
    const auto r = run(*s, greedy(p, 10));
    EXPECT_EQ(r.tokens, want);
    EXPECT_GT(r.drafted_tokens, 0);
    EXPECT_LE(r.accepted_tokens, r.drafted_tokens);
    expect_no_leak(*s);
}

TEST_F(SchedulerMtpTest, AcceptedAndRejectedDraftsKeepTheBlocksInputInStep) {
    const auto p = ids(9, 52);
    const int n = 12;
    const auto want = alone(p, n);
    for (int wrong_every : {0, 2, 3}) {
        OracleMtpBackend oracle;
        oracle.truth = p;
        oracle.truth.insert(oracle.truth.end(), want.begin(), want.end());
        oracle.wrong_every = wrong_every;
        auto o = options();
        o.mtp = true;
        o.prefix_cache = false;  // the oracle counts positions from the first token
        auto sched = Scheduler::create(*model, oracle, o);
        ASSERT_TRUE(sched.ok());
        const auto r = run(**sched, greedy(p, n));
        EXPECT_EQ(r.tokens, want) << "wrong_every " << wrong_every;
        EXPECT_GT(r.drafted_tokens, 0);
        if (wrong_every == 0) {
            EXPECT_EQ(r.accepted_tokens, r.drafted_tokens);
            // Two tokens a step after the first: about half the steps.
            EXPECT_LE((*sched)->stats().steps, static_cast<uint64_t>(2 + n / 2));
        } else {
            EXPECT_GT(r.accepted_tokens, 0);
            EXPECT_LT(r.accepted_tokens, r.drafted_tokens);
        }
    }
}

TEST_F(SchedulerMtpTest, ConcurrentRequestsWithMtpOnTheCpuBackend) {
    CpuBackend cpu(2, nullptr, /*precise=*/true);
    auto o = options();
    o.mtp = true;
    auto sched = Scheduler::create(*model, cpu, o);
    ASSERT_TRUE(sched.ok());
    Scheduler& s = **sched;
    std::vector<std::vector<int32_t>> prompts = {ids(6, 61), ids(11, 62), ids(4, 63)};
    prompts[1].insert(prompts[1].begin(), prompts[0].begin(), prompts[0].end());  // shared prefix
    auto got = run_all(s, prompts, 7);
    CpuBackend one(2, nullptr, /*precise=*/true);
    for (size_t i = 0; i < prompts.size(); ++i) {
        const auto want = alone_on(one, prompts[i], 7);
        EXPECT_EQ(got[i].tokens, want) << "request " << i;
        EXPECT_GT(got[i].drafted_tokens, 0) << "request " << i;
    }
    expect_no_leak(s);
}

}  // namespace
}  // namespace latent::engine
