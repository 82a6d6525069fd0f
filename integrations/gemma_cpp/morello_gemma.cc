// The generated kernels behind morello_gemma_dispatch.h. Built with -mavx2 -mfma; gemma
// calls in only from its AVX2-or-better code paths.
#include <type_traits>

#include "morello_gemma_dispatch.h"
#include "morello_gemma_kernels.hpp"  // the umbrella of kernels.toml: morello::morello_gemma_kernels

namespace morello_gemma {
namespace {

template <class K>
bool Matches(std::size_t outer, std::size_t inner, VecType vec_type, bool add) {
  using morello::Dtype;
  using morello::Layout;
  const Dtype vec = vec_type == VecType::kBF16 ? Dtype::bf16 : Dtype::f32;
  return K::m == 1 && static_cast<std::size_t>(K::n) == outer &&
         static_cast<std::size_t>(K::k) == inner && K::a_dtype == vec &&
         K::b_dtype == Dtype::bf16 && K::b_layout == Layout::col && !K::accumulate &&
         K::bias == add;
}

template <class K>
void Run(const uint16_t* mat, const void* vec, const float* add_vec, float* out,
         const Pool& pool) {
  auto parallel_for = [&pool](std::size_t tasks, auto&& body) {
    using Body = std::remove_reference_t<decltype(body)>;
    pool.run(
        pool.ctx, tasks,
        [](void* b, std::size_t t) { (*static_cast<Body*>(b))(static_cast<int64_t>(t)); },
        const_cast<void*>(static_cast<const void*>(&body)));
  };
  const auto* a = static_cast<const typename K::a_type*>(vec);
  if constexpr (K::bias) {
    K::run(a, mat, add_vec, out, parallel_for);
  } else {
    K::run(a, mat, out, parallel_for);
  }
}

template <class... Kernels>
bool Dispatch(morello::KernelList<Kernels...>, std::size_t outer, std::size_t inner,
              VecType vec_type, bool add, const uint16_t* mat, const void* vec,
              const float* add_vec, float* out, const Pool& pool) {
  return ((Matches<Kernels>(outer, inner, vec_type, add)
               ? (Run<Kernels>(mat, vec, add_vec, out, pool), true)
               : false) ||
          ...);
}

template <class... Kernels>
bool Has(morello::KernelList<Kernels...>, std::size_t outer, std::size_t inner,
         VecType vec_type, bool add) {
  return (Matches<Kernels>(outer, inner, vec_type, add) || ...);
}

}  // namespace

bool MatVec(std::size_t outer, std::size_t inner, VecType vec_type, bool add,
            const uint16_t* mat, const void* vec, const float* add_vec, float* out,
            const Pool& pool) {
  return Dispatch(morello::morello_gemma_kernels{}, outer, inner, vec_type, add, mat, vec,
                  add_vec, out, pool);
}

bool HasMatVec(std::size_t outer, std::size_t inner, VecType vec_type, bool add) {
  return Has(morello::morello_gemma_kernels{}, outer, inner, vec_type, add);
}

}  // namespace morello_gemma
