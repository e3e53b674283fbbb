// Minimal fork-join helper used by walk/ and scan/.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace fastcollect {

/// Number of worker threads to use when the caller asks for 0 ("automatic"): the hardware concurrency,
/// at least 1.
inline unsigned default_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1U : n;
}

/// Runs `worker(thread_index, next)` on `threads` threads (0 = default_threads(), capped at `n`), where
/// `next()` hands out the indices 0..n-1 exactly once across all threads (returns false when exhausted).
/// Each worker owns its per-thread state (e.g. a tree-sitter parser) for its whole lifetime. Blocks until
/// every thread has joined. The worker must not throw: exceptions are the caller's to catch per item.
template <typename Worker>
void run_workers(std::size_t n, unsigned threads, Worker&& worker) {
  if (n == 0) return;
  if (threads == 0) threads = default_threads();
  threads = static_cast<unsigned>(std::min<std::size_t>(threads, n));
  std::atomic<std::size_t> counter{0};
  auto next = [&counter, n](std::size_t& index) {
    index = counter.fetch_add(1, std::memory_order_relaxed);
    return index < n;
  };
  if (threads <= 1) {
    worker(0U, next);
    return;
  }
  // Joins on every exit path, including a forced unwind of the calling thread (e.g. an interpreter that
  // ends a daemon thread at shutdown): a joinable std::thread destroyed unjoined would call std::terminate.
  struct Joiner {
    std::vector<std::thread> pool;
    ~Joiner() {
      for (auto& th : pool)
        if (th.joinable()) th.join();
    }
  } joiner;
  joiner.pool.reserve(threads - 1);
  for (unsigned t = 1; t < threads; ++t) joiner.pool.emplace_back([&worker, &next, t] { worker(t, next); });
  worker(0U, next);
}

}  // namespace fastcollect
