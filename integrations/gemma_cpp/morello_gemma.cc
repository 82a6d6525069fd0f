// The generated kernels behind morello_gemma_dispatch.h. Built with -mavx2 -mfma; gemma
// calls in only from its AVX2-or-better code paths.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "morello_gemma_dispatch.h"
#include "morello_gemma_kernels.hpp"  // the umbrella of the kernel list: morello::morello_gemma_kernels

namespace morello_gemma {
namespace {

using morello::Dtype;
using morello::Layout;

Dtype DtypeOf(VecType type) { return type == VecType::kBF16 ? Dtype::bf16 : Dtype::f32; }

// One row of A against dense or padded bf16 weight rows (B col), C = A·B, no bias: what
// both entries run (MatVec's bias is the list's own kernel variant).
template <class K>
bool IsRowKernel(std::size_t k, std::size_t n, std::size_t w_stride, VecType a_type) {
  return K::m == 1 && static_cast<std::size_t>(K::k) == k &&
         static_cast<std::size_t>(K::n) == n && static_cast<std::size_t>(K::b_ld) == w_stride &&
         K::a_dtype == DtypeOf(a_type) && K::b_dtype == Dtype::bf16 &&
         K::b_layout == Layout::col && K::c_layout == Layout::row && !K::accumulate;
}

template <class K>
void Run(const void* a, const uint16_t* w, const float* add, float* out, const Pool& pool) {
  auto parallel_for = [&pool](std::size_t tasks, auto&& body) {
    using Body = std::remove_reference_t<decltype(body)>;
    pool.run(
        pool.ctx, tasks,
        [](void* b, std::size_t t) { (*static_cast<Body*>(b))(static_cast<int64_t>(t)); },
        const_cast<void*>(static_cast<const void*>(&body)));
  };
  const auto* a_typed = static_cast<const typename K::a_type*>(a);
  if constexpr (K::bias) {
    K::run(a_typed, w, add, out, parallel_for);
  } else {
    K::run(a_typed, w, out, parallel_for);
  }
}

template <class... Kernels>
bool DispatchMatVec(morello::KernelList<Kernels...>, std::size_t outer, std::size_t inner,
                    VecType vec_type, bool add, const uint16_t* mat, const void* vec,
                    const float* add_vec, float* out, const Pool& pool) {
  return ((IsRowKernel<Kernels>(inner, outer, inner, vec_type) && Kernels::bias == add
               ? (Run<Kernels>(vec, mat, add_vec, out, pool), true)
               : false) ||
          ...);
}

template <class... Kernels>
bool HasMatVecIn(morello::KernelList<Kernels...>, std::size_t outer, std::size_t inner,
                 VecType vec_type, bool add) {
  return ((IsRowKernel<Kernels>(inner, outer, inner, vec_type) && Kernels::bias == add) || ...);
}

// The thread counts of the list's kernels for these that a pool of `workers` can run.
template <class... Kernels>
std::vector<int> ThreadCounts(morello::KernelList<Kernels...>, std::size_t k, std::size_t n,
                              std::size_t w_stride, VecType a_type, std::size_t workers) {
  std::vector<int> counts;
  ((IsRowKernel<Kernels>(k, n, w_stride, a_type) && !Kernels::bias &&
            static_cast<std::size_t>(Kernels::threads) <= workers
        ? (counts.push_back(Kernels::threads), 0)
        : 0),
   ...);
  std::sort(counts.rbegin(), counts.rend());  // most threads first
  counts.erase(std::unique(counts.begin(), counts.end()), counts.end());
  return counts;
}

// Which of a shape's kernels runs, when the pool could run several (1 and 2 threads): the
// cost model prices a parallel loop's dispatch as a spinning pool's, and a caller's pool
// may wake slower. Like gemma's own MatMul autotuning, the first calls of each shape time
// every candidate kTrials times; the fastest (by its best time) runs from then on.
class Tuner {
 public:
  static constexpr int kTrials = 3;

  // The candidate to run next for `key`, and whether this call is a timed trial.
  std::pair<int, bool> Next(const std::vector<std::size_t>& key, std::size_t candidates) {
    std::lock_guard<std::mutex> lock(mu_);
    Entry& e = entries_[key];
    if (e.best.empty()) e.best.assign(candidates, 1e30);
    if (e.chosen >= 0) return {e.chosen, false};
    return {e.calls % static_cast<int>(candidates), true};
  }

  void Record(const std::vector<std::size_t>& key, int candidate, double seconds) {
    std::lock_guard<std::mutex> lock(mu_);
    Entry& e = entries_[key];
    e.best[candidate] = std::min(e.best[candidate], seconds);
    if (++e.calls == kTrials * static_cast<int>(e.best.size())) {
      e.chosen = static_cast<int>(std::min_element(e.best.begin(), e.best.end()) - e.best.begin());
    }
  }

 private:
  struct Entry {
    std::vector<double> best;  // each candidate's fastest trial
    int calls = 0;
    int chosen = -1;
  };
  std::mutex mu_;
  std::map<std::vector<std::size_t>, Entry> entries_;
};

Tuner& TheTuner() {
  static Tuner tuner;
  return tuner;
}

template <class... Kernels>
bool DispatchRow(morello::KernelList<Kernels...>, std::size_t k, std::size_t n,
                 std::size_t w_stride, VecType a_type, int threads, const void* a,
                 const uint16_t* w, float* out, const Pool& pool) {
  return ((IsRowKernel<Kernels>(k, n, w_stride, a_type) && !Kernels::bias &&
                   Kernels::threads == threads
               ? (Run<Kernels>(a, w, nullptr, out, pool), true)
               : false) ||
          ...);
}

// Round to nearest, ties to even, as gemma rounds f32 to bf16; NaN stays NaN.
uint16_t RoundToBF16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace

bool MatVec(std::size_t outer, std::size_t inner, VecType vec_type, bool add,
            const uint16_t* mat, const void* vec, const float* add_vec, float* out,
            const Pool& pool) {
  return DispatchMatVec(morello::morello_gemma_kernels{}, outer, inner, vec_type, add, mat, vec,
                        add_vec, out, pool);
}

bool HasMatVec(std::size_t outer, std::size_t inner, VecType vec_type, bool add) {
  return HasMatVecIn(morello::morello_gemma_kernels{}, outer, inner, vec_type, add);
}

int MatMulRowThreads(std::size_t k, std::size_t n, std::size_t w_stride, VecType a_type,
                     std::size_t workers) {
  const std::vector<int> counts =
      ThreadCounts(morello::morello_gemma_kernels{}, k, n, w_stride, a_type, workers);
  return counts.empty() ? 0 : counts.front();
}

bool MatMulRow(std::size_t k, std::size_t n, std::size_t w_stride, VecType a_type,
               const void* a, const uint16_t* w, float scale, const float* add,
               VecType c_type, void* c, std::size_t workers, const Pool& pool) {
  const std::vector<int> counts =
      ThreadCounts(morello::morello_gemma_kernels{}, k, n, w_stride, a_type, workers);
  if (counts.empty()) return false;
  int candidate = 0;
  bool trial = false;
  const std::vector<std::size_t> key{k, n, w_stride, static_cast<std::size_t>(a_type), workers};
  if (counts.size() > 1) std::tie(candidate, trial) = TheTuner().Next(key, counts.size());
  const int threads = counts[candidate];
  const auto start = std::chrono::steady_clock::now();
  // A bf16 C (the gated FFW input) is computed in f32 beside it, then rounded once.
  thread_local std::vector<float> scratch;
  float* out = static_cast<float*>(c);
  if (c_type == VecType::kBF16) {
    scratch.resize(n);
    out = scratch.data();
  }
  DispatchRow(morello::morello_gemma_kernels{}, k, n, w_stride, a_type, threads, a, w, out,
              pool);
  // gemma's scale (A's times B's) and bias, in one pass over the n outputs, which reading
  // the n x k weights far outweighs.
  if (scale != 1.0f || add != nullptr) {
    for (std::size_t j = 0; j < n; ++j) out[j] = out[j] * scale + (add ? add[j] : 0.0f);
  }
  if (c_type == VecType::kBF16) {
    auto* c16 = static_cast<uint16_t*>(c);
    for (std::size_t j = 0; j < n; ++j) c16[j] = RoundToBF16(out[j]);
  }
  if (trial) {
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    TheTuner().Record(key, candidate, took.count());
  }
  return true;
}

}  // namespace morello_gemma
