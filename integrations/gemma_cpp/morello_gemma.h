// Routes gemma.cpp's bf16-weight MatVec and MatVecAdd calls to morello's generated
// kernels. Include it in gemma/gemma.cc right after "gemma/ops.h"; like ops.h it is
// compiled once per Highway target.
//
// It adds overloads of MatVec and MatVecAdd for CompressedArray<hwy::bfloat16_t, N>
// weights. They are more specialized than gemma's templates, so every call with bf16
// weights in gemma.cc picks them. On x86 targets with AVX2 or better, a call whose shape
// and types (kOuter, kInner, the vector's type, kAdd) match a kernel of the list runs
// that kernel on gemma's thread pool; anything else, and every other target, runs
// gemma's own code, called by naming its template explicitly.

// Per-target include guard, as in gemma/ops.h.
#if defined(MORELLO_GEMMA_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef MORELLO_GEMMA_H_
#undef MORELLO_GEMMA_H_
#else
#define MORELLO_GEMMA_H_
#endif

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "morello_gemma_dispatch.h"

HWY_BEFORE_NAMESPACE();
namespace gcpp {
namespace HWY_NAMESPACE {
namespace morello_detail {

inline morello_gemma::Pool PoolOf(hwy::ThreadPool& pool) {
  return {&pool, [](void* ctx, std::size_t tasks, void (*body)(void*, std::size_t),
                    void* body_ctx) {
            static_cast<hwy::ThreadPool*>(ctx)->Run(
                0, tasks, [&](uint64_t task, std::size_t /*thread*/) { body(body_ctx, task); });
          }};
}

// Whether morello can take the call at all: x86 with AVX2, an f32 or bf16 vector, and an
// f32 bias if any. Which shapes it has is the kernel list's business (MatVec's result).
template <bool kAdd, typename VecT, typename AddT>
constexpr bool Eligible() {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  return (std::is_same_v<VecT, float> || std::is_same_v<VecT, hwy::bfloat16_t>) &&
         (!kAdd || std::is_same_v<AddT, float>);
#else
  return false;
#endif
}

}  // namespace morello_detail

template <bool kAdd, size_t kOuter, size_t kInner, size_t kCapacity, typename VecT,
          typename AddT>
HWY_INLINE void MatVecAdd(const CompressedArray<hwy::bfloat16_t, kCapacity>& mat,
                          const size_t mat_ofs, const VecT* HWY_RESTRICT const vec_aligned,
                          const AddT* HWY_RESTRICT const add,
                          float* HWY_RESTRICT even_odd, float* HWY_RESTRICT out,
                          hwy::ThreadPool& pool) {
  if constexpr (morello_detail::Eligible<kAdd, VecT, AddT>()) {
    const auto vec_type = std::is_same_v<VecT, float> ? morello_gemma::VecType::kF32
                                                      : morello_gemma::VecType::kBF16;
    if (morello_gemma::MatVec(kOuter, kInner, vec_type, kAdd,
                              reinterpret_cast<const uint16_t*>(mat.data() + mat_ofs),
                              vec_aligned, reinterpret_cast<const float*>(add), out,
                              morello_detail::PoolOf(pool))) {
      return;
    }
  }
  // gemma's own MatVecAdd: naming ArrayT excludes this overload, whose fourth template
  // parameter is a size.
  MatVecAdd<kAdd, kOuter, kInner, CompressedArray<hwy::bfloat16_t, kCapacity>, VecT, AddT>(
      mat, mat_ofs, vec_aligned, add, even_odd, out, pool);
}

template <size_t kOuter, size_t kInner, size_t kCapacity, typename VecT>
HWY_INLINE void MatVec(const CompressedArray<hwy::bfloat16_t, kCapacity>& mat,
                       const size_t mat_ofs, const VecT* HWY_RESTRICT const vec_aligned,
                       float* HWY_RESTRICT even_odd, float* HWY_RESTRICT out,
                       hwy::ThreadPool& pool) {
  MatVecAdd</*kAdd=*/false, kOuter, kInner, kCapacity, VecT, VecT>(
      mat, mat_ofs, vec_aligned, static_cast<const VecT*>(nullptr), even_odd, out, pool);
}

}  // namespace HWY_NAMESPACE
}  // namespace gcpp
HWY_AFTER_NAMESPACE();

#endif  // MORELLO_GEMMA_H_
