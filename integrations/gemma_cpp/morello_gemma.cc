// The generated kernels behind morello_gemma_dispatch.h. Built with -mavx2 -mfma; gemma
// calls in only from its AVX2-or-better code paths.
#include <cstring>
#include <type_traits>
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

// The most threads among the list's kernels for these that a pool of `workers` can run.
template <class... Kernels>
int BestThreads(morello::KernelList<Kernels...>, std::size_t k, std::size_t n,
                std::size_t w_stride, VecType a_type, std::size_t workers) {
  int best = 0;
  ((IsRowKernel<Kernels>(k, n, w_stride, a_type) && !Kernels::bias &&
            static_cast<std::size_t>(Kernels::threads) <= workers && Kernels::threads > best
        ? (best = Kernels::threads)
        : 0),
   ...);
  return best;
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
  return BestThreads(morello::morello_gemma_kernels{}, k, n, w_stride, a_type, workers);
}

bool MatMulRow(std::size_t k, std::size_t n, std::size_t w_stride, VecType a_type,
               const void* a, const uint16_t* w, float scale, const float* add,
               VecType c_type, void* c, std::size_t workers, const Pool& pool) {
  const int threads = MatMulRowThreads(k, n, w_stride, a_type, workers);
  if (threads == 0) return false;
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
  return true;
}

}  // namespace morello_gemma
