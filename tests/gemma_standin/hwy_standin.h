// Stand-ins for the Highway pieces both gemma.cpp revisions' stand-ins need: the target
// macros of an AVX2 pass, hwy::bfloat16_t, and hwy::ThreadPool with gemma's
// Run(begin, end, closure(task, thread)) shape, on plain threads.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#define HWY_ARCH_X86 1
#define HWY_AVX2 (1LL << 9)
#define HWY_TARGET HWY_AVX2
#define HWY_NAMESPACE N_AVX2
#define HWY_BEFORE_NAMESPACE()
#define HWY_AFTER_NAMESPACE()
#define HWY_INLINE inline
#define HWY_ATTR
#define HWY_RESTRICT __restrict__

namespace hwy {

struct bfloat16_t {
  uint16_t bits;
};

class ThreadPool {
 public:
  explicit ThreadPool(std::size_t workers) : workers_(workers) {}
  std::size_t NumWorkers() const { return workers_; }

  template <class Closure>
  void Run(uint64_t begin, uint64_t end, const Closure& closure) {
    std::atomic<uint64_t> next{begin};
    auto work = [&](std::size_t thread) {
      for (uint64_t task; (task = next.fetch_add(1)) < end;) closure(task, thread);
    };
    std::vector<std::thread> threads;
    for (std::size_t t = 1; t < workers_; ++t) threads.emplace_back(work, t);
    work(0);
    for (auto& t : threads) t.join();
    ++runs;
  }

  std::size_t runs = 0;

 private:
  std::size_t workers_;
};

}  // namespace hwy
