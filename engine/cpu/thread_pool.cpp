#include "engine/cpu/thread_pool.h"

#include <sched.h>

#include <algorithm>

namespace latent::engine {

namespace {
// About 50-100 µs of spinning before a worker sleeps: longer than the gap between two ops
// of a forward pass, short enough not to steal a busy machine's CPU for long.
constexpr int kSpins = 1 << 12;
constexpr uint64_t kClosed = uint64_t{1} << 31;
constexpr uint64_t kInsideMask = kClosed - 1;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}
}  // namespace

int ThreadPool::available_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
    return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(int n_threads) : n_(n_threads > 0 ? n_threads : available_cpus()) {
    threads_.reserve(static_cast<size_t>(n_ - 1));
    for (int i = 1; i < n_; ++i) threads_.emplace_back([this] { worker(); });
}

ThreadPool::~ThreadPool() {
    stop_.store(true);
    wake();
    for (std::thread& t : threads_) t.join();
}

// Publishes a new generation and wakes sleeping workers. A worker registers as a sleeper
// before it checks the generation under the mutex, so either it sees the new generation
// or this sees it sleeping and notifies under the same mutex: no lost wake-up.
void ThreadPool::wake() {
    generation_.fetch_add(1);
    if (sleepers_.load() > 0) {
        std::lock_guard<std::mutex> lock(mu_);
        cv_.notify_all();
    }
}

void ThreadPool::take_items() {
    for (;;) {
        const int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
        if (i >= n_items_) return;
        (*fn_)(i);
    }
}

void ThreadPool::execute(int64_t n_items, const std::function<void(int64_t)>& fn) {
    if (n_ == 1 || n_items <= 1) {
        for (int64_t i = 0; i < n_items; ++i) fn(i);
        return;
    }
    fn_ = &fn;
    n_items_ = n_items;
    next_.store(0, std::memory_order_relaxed);
    const uint32_t gen = generation_.load() + 1;
    state_.store(static_cast<uint64_t>(gen) << 32);
    wake();
    take_items();
    state_.fetch_or(kClosed);
    for (int spin = 0; (state_.load() & kInsideMask) != 0; ++spin) {
        if (spin < kSpins) {
            cpu_relax();
        } else {
            std::this_thread::yield();
        }
    }
    fn_ = nullptr;
}

void ThreadPool::worker() {
    uint32_t seen = 0;  // generation 0: before the first operation
    for (;;) {
        uint32_t now = generation_.load();
        for (int spin = 0; now == seen && spin < kSpins; ++spin) {
            cpu_relax();
            now = generation_.load();
        }
        if (now == seen) {
            std::unique_lock<std::mutex> lock(mu_);
            sleepers_.fetch_add(1);
            cv_.wait(lock, [&] { return generation_.load() != seen; });
            sleepers_.fetch_sub(1);
            continue;
        }
        seen = now;
        if (stop_.load()) return;
        // Join the operation if it is still the one announced and still open.
        uint64_t s = state_.load();
        while (static_cast<uint32_t>(s >> 32) == seen && (s & kClosed) == 0) {
            if (state_.compare_exchange_weak(s, s + 1)) {
                take_items();
                state_.fetch_sub(1);
                break;
            }
        }
    }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
    const std::function<void(int64_t)> item = [&](int64_t i) { fn(static_cast<int>(i), n_); };
    execute(n_, item);
}

void ThreadPool::parallel_chunks(int64_t n, int64_t chunk,
                                 const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    chunk = std::max<int64_t>(1, chunk);
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    const std::function<void(int64_t)> item = [&](int64_t c) {
        fn(c * chunk, std::min(n, (c + 1) * chunk));
    };
    execute(n_chunks, item);
}

void ThreadPool::parallel_guided(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    std::atomic<int64_t> next{0};
    const int64_t div = 2 * static_cast<int64_t>(n_);
    run([&](int, int) {
        int64_t cur = next.load(std::memory_order_relaxed);
        while (cur < n) {
            const int64_t take = std::max<int64_t>(1, (n - cur) / div);
            if (next.compare_exchange_weak(cur, cur + take, std::memory_order_relaxed)) {
                fn(cur, cur + take);
                cur = next.load(std::memory_order_relaxed);
            }
        }
    });
}

}  // namespace latent::engine
