// GeneratorHost: the last setting wins, a stale load is never installed, at most one backend
// is alive at a time, loads run on one owned thread (joined at stop), a throwing factory
// fails only its load; all decided by events (latches), not sleeps.
#include "agent/generator_host.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <thread>

namespace latent::agent {
namespace {

// Counts live backends (the "models resident") and the most ever alive at once.
struct Census {
    std::atomic<int> alive{0}, peak{0}, made{0};
};

class CountedGenerator : public ScriptedGenerator {
public:
    CountedGenerator(Census& c, std::string name)
        : ScriptedGenerator({name}), census_(c), name_(std::move(name)) {
        const int now = ++census_.alive;
        int p = census_.peak.load();
        while (now > p && !census_.peak.compare_exchange_weak(p, now)) {
        }
        ++census_.made;
    }
    ~CountedGenerator() override { --census_.alive; }
    std::string describe() const override { return name_; }

private:
    Census& census_;
    std::string name_;
};

// A latch the factory waits on, so a test decides when a load ends.
struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
    int waiting = 0;
    void pass() {
        std::unique_lock<std::mutex> lock(mu);
        ++waiting;
        cv.notify_all();
        cv.wait(lock, [&] { return open; });
    }
    void wait_for_waiter() {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return waiting > 0; });
    }
    void release() {
        std::lock_guard<std::mutex> lock(mu);
        open = true;
        cv.notify_all();
    }
};

Settings named(const std::string& model) {
    Settings s;
    s.model = model;
    return s;
}

GeneratorHost::Lease wait_ready(GeneratorHost& host) {
    std::promise<GeneratorHost::Lease> p;
    host.when_ready([&](const GeneratorHost::Lease& l) { p.set_value(l); });
    return p.get_future().get();
}

TEST(GeneratorHost, AStormOfReloadsEndsWithTheLastOneAndOneBackendAtATime) {
    Census census;
    GeneratorHostOptions o;
    o.factory = [&](const Settings& s) -> engine::Expected<std::shared_ptr<Generator>> {
        if (s.model == "none") return std::shared_ptr<Generator>();
        if (s.model == "bad") return engine::make_error("cannot load bad");
        return std::shared_ptr<Generator>(std::make_shared<CountedGenerator>(census, s.model));
    };
    GeneratorHost host(o);
    // Requests hold the backend they got while the storm goes on, as real ones do.
    std::atomic<bool> stop{false};
    std::thread user([&] {
        while (!stop) {
            auto lease = host.current();
            if (lease.backend) (void)lease.backend->describe();
        }
    });
    const char* kinds[] = {"local-a", "remote", "none", "bad", "local-b"};
    for (int i = 0; i < 100; ++i) host.reload(named(std::string(kinds[i % 5]) + std::to_string(i)));
    host.reload(named("final"));
    const auto lease = wait_ready(host);
    stop = true;
    user.join();
    ASSERT_TRUE(lease.backend);
    EXPECT_EQ(lease.backend->describe(), "final");
    EXPECT_EQ(host.error(), "");
    EXPECT_FALSE(host.loading());
    EXPECT_LE(census.peak.load(), 1) << "two backends were resident at once";
    EXPECT_LT(census.made.load(), 101) << "every reload was loaded, none skipped";
}

TEST(GeneratorHost, ALoadFinishingAfterANewerReloadIsDropped) {
    Census census;
    Gate gate;
    GeneratorHostOptions o;
    o.factory = [&](const Settings& s) -> engine::Expected<std::shared_ptr<Generator>> {
        if (s.model == "slow") gate.pass();
        return std::shared_ptr<Generator>(std::make_shared<CountedGenerator>(census, s.model));
    };
    GeneratorHost host(o);
    host.reload(named("slow"));
    gate.wait_for_waiter();  // "slow" is loading
    EXPECT_TRUE(host.loading());
    host.reload(named("fast"));
    gate.release();
    const auto lease = wait_ready(host);
    ASSERT_TRUE(lease.backend);
    EXPECT_EQ(lease.backend->describe(), "fast");
    EXPECT_EQ(host.loads(), 1u);  // "slow" was made and dropped, never installed
    EXPECT_EQ(census.made.load(), 2);
}

TEST(GeneratorHost, TheOldBackendIsFreedBeforeTheNewLoadsAndItsUsersSeeStale) {
    Census census;
    GeneratorHostOptions o;
    std::atomic<int> alive_at_load{-1};
    o.factory = [&](const Settings& s) -> engine::Expected<std::shared_ptr<Generator>> {
        alive_at_load = census.alive.load();
        return std::shared_ptr<Generator>(std::make_shared<CountedGenerator>(census, s.model));
    };
    GeneratorHost host(o);
    host.reload(named("one"));
    auto held = wait_ready(host);  // a request holding it
    ASSERT_TRUE(held.backend);
    EXPECT_FALSE(host.stale(held.generation));
    host.reload(named("two"));
    EXPECT_TRUE(host.stale(held.generation));  // so the request ends...
    held.backend.reset();                      // ...and lets go
    const auto lease = wait_ready(host);
    EXPECT_EQ(lease.backend->describe(), "two");
    EXPECT_EQ(alive_at_load.load(), 0) << "the new one loaded while the old was resident";
}

TEST(GeneratorHost, StopDuringALoadJoinsAndDropsWaiters) {
    Gate gate;
    GeneratorHostOptions o;
    o.factory = [&](const Settings&) -> engine::Expected<std::shared_ptr<Generator>> {
        gate.pass();
        return std::shared_ptr<Generator>(
            std::make_shared<ScriptedGenerator>(std::vector<std::string>{"x"}));
    };
    auto host = std::make_unique<GeneratorHost>(o);
    host->reload(named("m"));
    gate.wait_for_waiter();
    bool called = false;
    auto token = std::make_shared<int>(0);
    std::weak_ptr<int> watch = token;
    host->when_ready([&called, token](const GeneratorHost::Lease&) { called = true; });
    token.reset();
    std::thread stopper([&] { host->stop(); });
    // stop() has begun once the lease of generation 1 reads stale (waiting on that state,
    // not guessing it with a sleep); then the load in progress may finish.
    while (!host->stale(1)) std::this_thread::yield();
    gate.release();  // stop joins the loader
    stopper.join();
    EXPECT_FALSE(called);
    EXPECT_TRUE(watch.expired()) << "a pending callback outlived stop()";
    host.reset();
}

TEST(GeneratorHost, AThrowingFactoryFailsItsLoadOnly) {
    GeneratorHostOptions o;
    o.factory = [&](const Settings& s) -> engine::Expected<std::shared_ptr<Generator>> {
        if (s.model == "oom") throw std::bad_alloc();
        return std::shared_ptr<Generator>(
            std::make_shared<ScriptedGenerator>(std::vector<std::string>{"x"}));
    };
    GeneratorHost host(o);
    host.reload(named("oom"));
    EXPECT_FALSE(wait_ready(host).backend);
    EXPECT_NE(host.error().find("out of memory"), std::string::npos);
    host.reload(named("ok"));
    EXPECT_TRUE(wait_ready(host).backend);
    EXPECT_EQ(host.error(), "");
}

}  // namespace
}  // namespace latent::agent
