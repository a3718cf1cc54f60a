// ThreadPool: a fixed set of worker threads started once and reused by every operation
// of the forward pass (no thread creation per op). An operation is a number of items
// handed out through one atomic counter; the caller works on them too. A worker joins
// an operation only while it is open: once the caller has taken the last item it closes
// the operation and waits only for the workers already inside — a worker that the OS
// has not scheduled in time (a busy machine) costs nothing instead of stalling the op.
// Idle workers spin briefly (ops follow each other within microseconds), then sleep.
//
// Thread safety: run() / parallel_chunks() must not be called concurrently or from inside
// their own functions.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
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

    // Calls fn(i, size()) once for every i < size(), on whichever threads take them.
    void run(const std::function<void(int item, int n_items)>& fn);

    // Calls fn(begin, end) over [0, n) in chunks of `chunk` items, handed out dynamically.
    void parallel_chunks(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& fn);

    // Calls fn(begin, end) over [0, n) by guided self-scheduling: each grab takes what is
    // left divided by twice the threads (at least one item), so runs start long and the
    // last ones are one item each. For work bound by memory streams (decode), where long
    // runs keep the prefetchers ahead but a long last run would leave the others waiting.
    void parallel_guided(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

    // The CPUs this process may run on (sched_getaffinity), at least 1.
    static int available_cpus();

private:
    void execute(int64_t n_items, const std::function<void(int64_t)>& fn);
    void take_items();
    void worker();
    void wake();

    int n_;
    std::vector<std::thread> threads_;
    // The open operation: its function, item count and next item.
    const std::function<void(int64_t)>* fn_ = nullptr;
    int64_t n_items_ = 0;
    std::atomic<int64_t> next_{0};
    // generation (high 32 bits) | closed (bit 31) | workers inside (low bits).
    std::atomic<uint64_t> state_{0};
    std::atomic<uint32_t> generation_{0};
    std::atomic<bool> stop_{false};
    std::atomic<int> sleepers_{0};
    std::mutex mu_;
    std::condition_variable cv_;
};

}  // namespace latent::engine
