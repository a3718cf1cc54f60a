#include "engine/thread_pool.h"

#include <sched.h>

#include <algorithm>

namespace latent::engine {

namespace {
// Spins this many times before sleeping: an op of the forward pass follows the previous
// one within microseconds, so a worker that sleeps between ops would lose the wake-up.
constexpr int kSpins = 1 << 16;

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
    for (int i = 1; i < n_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
    stop_.store(true, std::memory_order_release);
    wake();
    for (std::thread& t : threads_) t.join();
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
    if (n_ == 1) {
        fn(0, 1);
        return;
    }
    job_ = &fn;
    pending_.store(n_ - 1, std::memory_order_release);
    wake();
    fn(0, n_);
    for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
        if (spin < kSpins) {
            cpu_relax();
        } else {
            std::this_thread::yield();
        }
    }
    job_ = nullptr;
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

void ThreadPool::worker(int index) {
    // Generation 0 is the one before the first run(): a worker that starts late must
    // still take the jobs published before it first looked.
    uint32_t seen = 0;
    for (;;) {
        uint32_t now = generation_.load(std::memory_order_acquire);
        for (int spin = 0; now == seen && spin < kSpins; ++spin) {
            cpu_relax();
            now = generation_.load(std::memory_order_acquire);
        }
        if (now == seen) {
            std::unique_lock<std::mutex> lock(mu_);
            sleepers_.fetch_add(1);
            cv_.wait(lock, [&] { return generation_.load() != seen; });
            sleepers_.fetch_sub(1);
            continue;
        }
        seen = now;
        if (stop_.load(std::memory_order_acquire)) return;
        (*job_)(index, n_);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

void ThreadPool::parallel_chunks(int64_t n, int64_t chunk,
                                 const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    chunk = std::max<int64_t>(1, chunk);
    if (n_ == 1 || n <= chunk) {
        fn(0, n);
        return;
    }
    std::atomic<int64_t> next{0};
    run([&](int, int) {
        for (;;) {
            const int64_t b = next.fetch_add(chunk, std::memory_order_relaxed);
            if (b >= n) break;
            fn(b, std::min(n, b + chunk));
        }
    });
}

}  // namespace latent::engine
