// The boundary between gemma.cpp's translation unit (built for many SIMD targets by
// Highway) and morello_gemma.cc (built with -mavx2 -mfma around the generated kernels).
// Plain C++: no Highway and no intrinsics here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace morello_gemma {

// A thread pool seen through a function pointer: run(ctx, tasks, body, body_ctx) calls
// body(body_ctx, t) for every t in [0, tasks) and returns when all are done.
struct Pool {
  void* ctx;
  void (*run)(void* ctx, std::size_t tasks, void (*body)(void*, std::size_t), void* body_ctx);
};

enum class VecType { kF32, kBF16 };

// out[outer] = mat[outer x inner] (bf16 rows) · vec[inner] (+ add[outer]) with the
// generated kernel for this shape and these types, if the kernel list has one; returns
// false (and touches nothing) if it has none.
bool MatVec(std::size_t outer, std::size_t inner, VecType vec_type, bool add,
            const uint16_t* mat, const void* vec, const float* add_vec, float* out,
            const Pool& pool);

// Whether MatVec has a kernel for this shape and these types.
bool HasMatVec(std::size_t outer, std::size_t inner, VecType vec_type, bool add);

}  // namespace morello_gemma
