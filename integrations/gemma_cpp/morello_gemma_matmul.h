// Routes today's gemma.cpp (3ed403e) decode MatMul calls to morello's generated kernels.
// ops/ops-inl.h includes it at its end (the one line of gemma_3ed403e.patch, which this
// directory's CMakeLists.txt applies); like ops-inl.h it is compiled once per Highway target.
//
// It declares CallMatMul for each A and C type gemma uses (f32 or BF16) as plain functions.
// Beside gemma's template of the same name and parameters, overload resolution prefers a
// non-template, so every call site (attention, FFW, logits) reaches them unchanged. A call
// with one row of A, BF16 weights and no fused callback, on an x86 target with AVX2 or
// better, runs the kernel list's kernel for its K, N, weight row stride and A type, with the
// most threads gemma's pool has workers for, on that pool. Anything else (prefill, other
// weight types, shapes the list lacks, older targets) runs gemma's own template, named
// explicitly.

// Per-target include guard, as in gemma's own -inl headers.
#if defined(MORELLO_GEMMA_MATMUL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef MORELLO_GEMMA_MATMUL_H_
#undef MORELLO_GEMMA_MATMUL_H_
#else
#define MORELLO_GEMMA_MATMUL_H_
#endif

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "morello_gemma_dispatch.h"

HWY_BEFORE_NAMESPACE();
namespace gcpp {
namespace HWY_NAMESPACE {
namespace morello_detail {

template <typename T>
constexpr morello_gemma::VecType VecTypeOf() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, BF16>);
  return std::is_same_v<T, float> ? morello_gemma::VecType::kF32 : morello_gemma::VecType::kBF16;
}

// The workers ParallelFor gives `options`' strategy: a kernel may split into that many tasks.
inline size_t Workers(ThreadingContext& ctx, const MMOptions& options) {
  hwy::ThreadPool& clusters = ctx.pools.AllClusters();
  switch (options.parallelism) {
    case ParallelismStrategy::kNone:
      return 1;
    case ParallelismStrategy::kWithinCluster:
      return ctx.pools.Cluster(options.cluster_idx).NumWorkers();
    case ParallelismStrategy::kAcrossClusters:
      return clusters.NumWorkers();
    case ParallelismStrategy::kFlat:
      return clusters.NumWorkers() == 1 ? ctx.pools.Cluster(options.cluster_idx).NumWorkers()
                                        : clusters.NumWorkers();
    case ParallelismStrategy::kHierarchical:
      break;
  }
  return ctx.pools.MaxWorkers();
}

// gemma's ParallelFor, with its strategy, topology and pinning, as the kernels' pool.
struct PoolContext {
  ThreadingContext* ctx;
  const MMOptions* options;
};

inline void RunOnGemmaPool(void* opaque, size_t tasks, void (*body)(void*, size_t),
                           void* body_ctx) {
  const PoolContext& p = *static_cast<const PoolContext*>(opaque);
  ParallelFor(p.options->parallelism, tasks, *p.ctx, p.options->cluster_idx,
              Callers::kMMHierForN, [&](uint64_t task, size_t /*worker*/) HWY_ATTR {
                body(body_ctx, static_cast<size_t>(task));
              });
}

template <typename TA, typename TC>
HWY_INLINE MMPerKey* RouteMatMul(const MatPtrT<TA>& A, const MatPtr& B,
                                 const float* HWY_RESTRICT add, MatMulEnv& env,
                                 MatPtrT<TC>& C, const MMOptions& options) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  if (A.Rows() == 1 && B.GetType() == Type::kBF16 && options.func == nullptr &&
      A.Cols() == B.Cols() && C.Cols() == B.Rows()) {
    // C's row: through the row pointers when attached (the KV cache), else its storage.
    uint8_t* c_row = C.GetRowPtrs() != nullptr ? C.GetRowPtrs()[0] : C.RowBytes(0);
    PoolContext context{&env.ctx, &options};
    const morello_gemma::Pool pool{&context, &RunOnGemmaPool};
    if (morello_gemma::MatMulRow(B.Cols(), B.Rows(), B.Stride(), VecTypeOf<TA>(), A.Row(0),
                                 reinterpret_cast<const uint16_t*>(B.RowBytes(0)),
                                 A.Scale() * B.Scale(), add, VecTypeOf<TC>(), c_row,
                                 Workers(env.ctx, options), pool)) {
      return nullptr;  // no autotuning state: gemma's MatMul did not run
    }
  }
#endif
  return CallMatMul<TA, TC>(A, B, add, env, C, options);
}

}  // namespace morello_detail

// One plain overload per (A, C) type pair that gemma's template can take.
#define MORELLO_GEMMA_CALL_MATMUL(TA, TC)                                                  \
  HWY_INLINE MMPerKey* CallMatMul(const MatPtrT<TA>& A, const MatPtr& B,                   \
                                  const float* HWY_RESTRICT add, MatMulEnv& env,           \
                                  MatPtrT<TC>& C, const MMOptions& options = MMOptions()) { \
    return morello_detail::RouteMatMul<TA, TC>(A, B, add, env, C, options);                \
  }
MORELLO_GEMMA_CALL_MATMUL(float, float)
MORELLO_GEMMA_CALL_MATMUL(float, BF16)
MORELLO_GEMMA_CALL_MATMUL(BF16, float)
MORELLO_GEMMA_CALL_MATMUL(BF16, BF16)
#undef MORELLO_GEMMA_CALL_MATMUL

}  // namespace HWY_NAMESPACE
}  // namespace gcpp
HWY_AFTER_NAMESPACE();

#endif  // MORELLO_GEMMA_MATMUL_H_
