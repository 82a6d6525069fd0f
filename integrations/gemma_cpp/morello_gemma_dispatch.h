// The boundary between gemma.cpp's translation units (built for many SIMD targets by
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

enum class VecType { kF32, kBF16 };  // f32, or bf16 as its raw 16 bits

// gemma.cpp 6eeef2e's MatVec: out[outer] = mat[outer x inner] (dense bf16 rows) · vec[inner]
// (+ add[outer]) with the list's kernel for this shape and these types, if it has one;
// returns false (and touches nothing) if it has none.
bool MatVec(std::size_t outer, std::size_t inner, VecType vec_type, bool add,
            const uint16_t* mat, const void* vec, const float* add_vec, float* out,
            const Pool& pool);

// Whether MatVec has a kernel for this shape and these types.
bool HasMatVec(std::size_t outer, std::size_t inner, VecType vec_type, bool add);

// Today's gemma.cpp MatMul with one row of A:
//   c[j] = scale * sum_k a[k] * w[j * w_stride + k] (+ add[j]),  j < n,
// w being n bf16 rows of k, w_stride elements apart (gemma pads rows it reads into memory).
// Runs the list's kernel for (k, n, w_stride, a_type) with no more threads than `workers`,
// writing c as f32 or rounded to bf16; returns false (touching nothing) if the list has no
// such kernel. Where several qualify (1 and 2 threads), the first calls of a shape time
// each a few times and the fastest runs from then on.
bool MatMulRow(std::size_t k, std::size_t n, std::size_t w_stride, VecType a_type,
               const void* a, const uint16_t* w, float scale, const float* add,
               VecType c_type, void* c, std::size_t workers, const Pool& pool);

// The most threads among MatMulRow's kernels for these (0: it has none).
int MatMulRowThreads(std::size_t k, std::size_t n, std::size_t w_stride, VecType a_type,
                     std::size_t workers);

}  // namespace morello_gemma
