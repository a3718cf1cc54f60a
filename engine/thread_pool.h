// ThreadPool: a fixed set of worker threads started once and reused by every operation
// of the forward pass (no thread creation per op). run(fn) calls fn(i, n) on n threads
// at once — the caller is thread 0 — and returns when all have finished; the fast CPU
// backend splits each op's work by i (static) or through a shared atomic counter
// (dynamic, see parallel_chunks). Idle workers spin briefly, then sleep on a condition variable.
//
// Thread safety: run() must not be called concurrently or from inside fn.
#pragma once

#include <atomic>
#include <cstdint>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace latent::engine {

class ThreadPool {
public:
    // n_threads <= 0: the CPUs this process may run on.
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_; }
    void run(const std::function<void(int thread, int n_threads)>& fn);

    // Calls fn(begin, end) over [0, n) in chunks of `chunk` items, handed out to the
    // threads dynamically (an item count that does not divide evenly still keeps every
    // thread busy to the end).
    void parallel_chunks(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& fn);

    // The CPUs this process may run on (sched_getaffinity), at least 1.
    static int available_cpus();

private:
    void worker(int index);
    void wake();

    int n_;
    std::vector<std::thread> threads_;
    const std::function<void(int, int)>* job_ = nullptr;
    std::atomic<uint32_t> generation_{0};
    std::atomic<int> pending_{0};
    std::atomic<bool> stop_{false};
    std::atomic<int> sleepers_{0};
    std::mutex mu_;
    std::condition_variable cv_;
};

}  // namespace latent::engine
