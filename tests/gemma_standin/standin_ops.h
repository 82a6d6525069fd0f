// Stand-ins for what gemma/gemma.cc has in scope where it includes morello_gemma.h: the
// Highway pieces (hwy_standin.h), gcpp::CompressedArray, and gemma's own MatVec and
// MatVecAdd templates (here plain loops that count their calls, so a test can tell which
// code ran). Compiled without -mavx2, like gemma.cc's baseline.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "hwy_standin.h"

namespace gcpp {

// gemma's holds a std::array; a vector keeps 64 MiB of weights off the stack.
template <typename MatT, std::size_t kCapacity>
class CompressedArray {
 public:
  using value_type = MatT;
  CompressedArray() : data_(kCapacity) {}
  MatT* data() { return data_.data(); }
  const MatT* data() const { return data_.data(); }
  constexpr std::size_t size() const { return kCapacity; }

 private:
  std::vector<MatT> data_;
};

inline std::size_t gemma_own_calls = 0;

inline float ToFloat(float x) { return x; }
inline float ToFloat(hwy::bfloat16_t x) {
  const uint32_t wide = static_cast<uint32_t>(x.bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
}

namespace HWY_NAMESPACE {

template <bool kAdd, std::size_t kOuter, std::size_t kInner, typename ArrayT, typename VecT,
          typename AddT>
HWY_INLINE void MatVecAdd(const ArrayT& mat, const std::size_t mat_ofs,
                          const VecT* HWY_RESTRICT const vec_aligned,
                          const AddT* HWY_RESTRICT const add, float* HWY_RESTRICT even_odd,
                          float* HWY_RESTRICT out, hwy::ThreadPool& pool) {
  (void)even_odd;
  (void)pool;
  ++gemma_own_calls;
  for (std::size_t r = 0; r < kOuter; ++r) {
    double sum = 0;
    for (std::size_t i = 0; i < kInner; ++i) {
      sum += double{ToFloat(mat.data()[mat_ofs + r * kInner + i])} * ToFloat(vec_aligned[i]);
    }
    if constexpr (kAdd) sum += ToFloat(add[r]);
    out[r] = static_cast<float>(sum);
  }
}

template <std::size_t kOuter, std::size_t kInner, typename ArrayT, typename VecT>
HWY_INLINE void MatVec(const ArrayT& mat, const std::size_t mat_ofs,
                       const VecT* HWY_RESTRICT const vec_aligned,
                       float* HWY_RESTRICT even_odd, float* HWY_RESTRICT out,
                       hwy::ThreadPool& pool) {
  MatVecAdd</*kAdd=*/false, kOuter, kInner>(mat, mat_ofs, vec_aligned,
                                            static_cast<VecT*>(nullptr), even_odd, out, pool);
}

}  // namespace HWY_NAMESPACE
}  // namespace gcpp
