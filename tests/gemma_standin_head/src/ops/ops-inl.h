// Stand-in of today's gemma.cpp ops/ops-inl.h where the adapter meets it: gemma's
// CallMatMul template, here a plain loop that counts its calls (so a test can tell which
// code ran), inside the per-target include guard and namespaces. Its last lines are those
// gemma_3ed403e.patch expects, so the integration's CMakeLists.txt patches this copy.
#ifndef STANDIN_OPS_INL_ONCE
#define STANDIN_OPS_INL_ONCE
#include <cstring>

#include "ops/matmul.h"

namespace gcpp {
inline std::size_t gemma_own_calls = 0;

inline float ToFloat(float x) { return x; }
inline float ToFloat(BF16 x) {
  const uint32_t wide = static_cast<uint32_t>(x.bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
}
inline void Store(float x, float* out) { *out = x; }
inline void Store(float x, BF16* out) {  // truncating: the stand-in is not the reference
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  out->bits = static_cast<uint16_t>(bits >> 16);
}
}  // namespace gcpp
#endif

#if defined(STANDIN_OPS_TOGGLE) == defined(HWY_TARGET_TOGGLE)
#ifdef STANDIN_OPS_TOGGLE
#undef STANDIN_OPS_TOGGLE
#else
#define STANDIN_OPS_TOGGLE
#endif

HWY_BEFORE_NAMESPACE();
namespace gcpp {
namespace HWY_NAMESPACE {

// C = A · B^T * (A.Scale() * B.Scale()) (+ add), B of gemma's type, rows of C through
// their row pointers if attached.
template <typename TA, typename TC>
MMPerKey* CallMatMul(const MatPtrT<TA>& A, const MatPtr& B, const float* HWY_RESTRICT add,
                     MatMulEnv& /*env*/, MatPtrT<TC>& C, const MMOptions& /*options*/ = MMOptions()) {
  ++gemma_own_calls;
  for (std::size_t r = 0; r < A.Rows(); ++r) {
    TC* c = C.GetRowPtrs() ? reinterpret_cast<TC*>(C.GetRowPtrs()[r]) : C.Row(r);
    for (std::size_t j = 0; j < B.Rows(); ++j) {
      float sum = 0.0f;
      for (std::size_t k = 0; k < A.Cols(); ++k) {
        const float b = B.GetType() == Type::kF32
                            ? reinterpret_cast<const float*>(B.RowBytes(j))[k]
                            : ToFloat(reinterpret_cast<const BF16*>(B.RowBytes(j))[k]);
        sum += ToFloat(A.Row(r)[k]) * b;
      }
      Store(sum * A.Scale() * B.Scale() + (add ? add[j] : 0.0f), c + j);
    }
  }
  return nullptr;
}

}  // namespace HWY_NAMESPACE
}  // namespace gcpp
HWY_AFTER_NAMESPACE();

#endif  // NOLINT
