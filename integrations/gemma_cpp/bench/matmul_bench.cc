// Today's gemma.cpp (3ed403e): its own CallMatMul with one row of A against the same call
// routed through morello_gemma_matmul.h, in one process. Built by
// `morello bench --gemma-cpp WORKDIR` (morello/bench/gemma_cpp.py) against a checkout
// prepared as ../shared/gemma/head/checkout.sh prepares one.
//
// Compiled once per Highway target, as gemma's sources are: ops-inl.h, then the adapter.
// For each shape, weights are BF16 rows padded as gemma pads what it reads (MatPadding::kOdd),
// in enough copies that every call reads them from DRAM. gemma's autotuning runs to its
// best config first; then both sides are timed call by call, interleaved, on gemma's pools
// (the adapter runs its tasks through gemma's ParallelFor). Each side is checked against a
// double-precision product: ours within the f32 bound with A as given, gemma's within the
// bound of its A rounded to BF16 first.
//
// usage: matmul_bench TARGET THREADS REPS SHAPE...   TARGET: best | avx2
//   SHAPE: name:K:N:A:C with A and C f32 or bf16.
// prints one line per shape: "RESULT name=... key=value ..."
#ifndef MORELLO_MATMUL_BENCH_ONCE
#define MORELLO_MATMUL_BENCH_ONCE
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "compression/types.h"  // GEMMA_DISABLED_TARGETS: the targets gemma is built for
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS GEMMA_DISABLED_TARGETS
#endif

#include "bench_timing.h"

namespace morello_bench {
constexpr size_t kRotationBytes = size_t{512} << 20;  // beyond any L3 of the hosts we run on

struct Shape {
  std::string name;
  size_t k, n;
  bool a_bf16, c_bf16;
};

struct Config {
  int threads = 1, reps = 31;
  std::vector<Shape> shapes;
};

inline Config& Cfg() {
  static Config config;
  return config;
}
}  // namespace morello_bench
#endif  // MORELLO_MATMUL_BENCH_ONCE

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "matmul_bench.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "ops/ops-inl.h"
#include "morello_gemma_matmul.h"  // what gemma_3ed403e.patch adds at the end of ops-inl.h

HWY_BEFORE_NAMESPACE();
namespace gcpp {
namespace HWY_NAMESPACE {
namespace morello_bench_impl {
using morello_bench::Seconds;
using morello_bench::Shape;

template <typename T>
float Get(const T& x) {
  if constexpr (hwy::IsSame<T, BF16>()) {
    return hwy::F32FromBF16(x);
  } else {
    return x;
  }
}

template <typename T>
T Make(float x) {
  if constexpr (hwy::IsSame<T, BF16>()) {
    return hwy::BF16FromF32(x);
  } else {
    return x;
  }
}

// Whether every output is within `u_a` (A's rounding before the products: 0, or 2^-8 for
// gemma's BF16 A) plus the f32 dot-product bound, plus one BF16 rounding of a BF16 C.
template <typename TC>
bool Within(const MatPtrT<TC>& C, const std::vector<double>& ref,
            const std::vector<double>& magnitude, size_t k, double u_a) {
  const double u32 = std::ldexp(1.0, -24), u_c = hwy::IsSame<TC, BF16>() ? std::ldexp(1.0, -8) : 0;
  const TC* c = reinterpret_cast<const TC*>(C.GetRowPtrs()[0]);
  for (size_t j = 0; j < ref.size(); ++j) {
    const double bound = (u_a + (k + 2) * u32) * magnitude[j];
    if (std::fabs(Get(c[j]) - ref[j]) > bound + u_c * (std::fabs(ref[j]) + bound)) return false;
  }
  return true;
}

template <typename TA, typename TC>
void BenchShape(const Shape& s, ThreadingContext& ctx, const char* target) {
  const size_t K = s.k, N = s.n;
  MatMulEnv env(ctx);
  MatStorageT<TA> A("A", Extents2D(1, K), ctx.allocator, MatPadding::kPacked);
  std::vector<double> a64(K);
  uint64_t state = K * 7919 + N;
  auto uniform = [&state] {  // a fixed LCG: the same inputs every run
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>((state >> 40) * (1.0 / (1 << 24))) - 0.5f;
  };
  for (size_t k = 0; k < K; ++k) {
    A.Row(0)[k] = Make<TA>(uniform());
    a64[k] = Get(A.Row(0)[k]);
  }
  const size_t bytes = N * K * sizeof(BF16);
  // Enough copies that a pass over them all is far larger than any cache: as in a decode
  // step, where every layer's weights come by, each call reads its weights from DRAM.
  const size_t copies = std::max<size_t>(2, hwy::DivCeil(morello_bench::kRotationBytes, bytes));
  std::vector<MatStorageT<BF16>> B;
  for (size_t c = 0; c < copies; ++c) {
    B.emplace_back("B", Extents2D(N, K), ctx.allocator, MatPadding::kOdd);
  }
  std::vector<double> ref(N), magnitude(N);
  for (size_t n = 0; n < N; ++n) {
    double sum = 0, abs_sum = 0;
    for (size_t k = 0; k < K; ++k) {
      const BF16 w = hwy::BF16FromF32(uniform());
      for (auto& copy : B) copy.Row(n)[k] = w;
      const double p = a64[k] * hwy::F32FromBF16(w);
      sum += p;
      abs_sum += std::fabs(p);
    }
    ref[n] = sum;
    magnitude[n] = abs_sum;
  }
  MatStorageT<TC> C("C", Extents2D(1, N), ctx.allocator, MatPadding::kOdd);
  C.AllocateAndAttachRowPtrs(env.row_ptrs);
  const size_t workers = ctx.pools.MaxWorkers();
  const int threads = morello_gemma::MatMulRowThreads(
      K, N, B[0].Stride(), hwy::IsSame<TA, BF16>() ? morello_gemma::VecType::kBF16
                                                   : morello_gemma::VecType::kF32,
      workers);

  // gemma: autotune to its best config, then until three groups of calls agree.
  size_t copy = 0, autotune_calls = 0;
  for (;; ++autotune_calls) {
    MMPerKey* key = CallMatMul<TA, TC>(A, B[copy], nullptr, env, C);
    copy = (copy + 1) % B.size();
    if (key->autotune.Best() || autotune_calls > 100000) break;
  }
  double previous = 0;
  for (int stable = 0, groups = 0; stable < 3 && groups < 40; ++groups) {
    std::vector<double> times;
    for (int i = 0; i < 8; ++i) {
      const double t0 = Seconds();
      CallMatMul<TA, TC>(A, B[copy], nullptr, env, C);
      times.push_back(Seconds() - t0);
      copy = (copy + 1) % B.size();
      CallMatMul(A, B[copy], nullptr, env, C);  // ours, warmed alike
      copy = (copy + 1) % B.size();
    }
    const double m = morello_bench::Median(times);
    stable = previous > 0 && std::fabs(m - previous) < 0.03 * previous ? stable + 1 : 0;
    previous = m;
  }

  CallMatMul<TA, TC>(A, B[0], nullptr, env, C);
  const bool gemma_within = Within(C, ref, magnitude, K, hwy::IsSame<TA, BF16>() ? 0 : std::ldexp(1.0, -8));
  CallMatMul(A, B[0], nullptr, env, C);
  const bool ours_within = Within(C, ref, magnitude, K, 0);

  std::vector<double> gemma_t, ours_t;
  for (int r = 0; r < morello_bench::Cfg().reps; ++r) {
    for (int side = 0; side < 2; ++side) {  // alternate which goes first
      const bool gemma_first = (r + side) % 2 == 0;
      const double t0 = Seconds();
      if (gemma_first) {
        CallMatMul<TA, TC>(A, B[copy], nullptr, env, C);
      } else {
        CallMatMul(A, B[copy], nullptr, env, C);
      }
      (gemma_first ? gemma_t : ours_t).push_back(Seconds() - t0);
      copy = (copy + 1) % B.size();
    }
  }
  const double g = morello_bench::Median(gemma_t), o = morello_bench::Median(ours_t);
  printf("RESULT name=%s k=%zu n=%zu a=%s c=%s stride=%zu target=%s threads=%zu "
         "isa=%s routed=%d kernel_threads=%d gemma_ms=%.4f ours_ms=%.4f ratio=%.4f ours_gbps=%.2f "
         "gemma_gbps=%.2f ours_within=%d gemma_within=%d autotune_calls=%zu copies=%zu\n",
         s.name.c_str(), K, N, s.a_bf16 ? "bf16" : "f32", s.c_bf16 ? "bf16" : "f32",
         B[0].Stride(), target, workers, hwy::TargetName(HWY_TARGET), threads > 0, threads, g * 1e3, o * 1e3, g / o,
         bytes / o * 1e-9, bytes / g * 1e-9, ours_within, gemma_within, autotune_calls,
         B.size());
  fflush(stdout);
}

}  // namespace morello_bench_impl

void MorelloBenchRunAll(const char* target) {
  using morello_bench_impl::BenchShape;
  ThreadingArgs args;
  args.max_threads = static_cast<size_t>(morello_bench::Cfg().threads);
  ThreadingContext ctx(args);
  fprintf(stderr, "gemma dispatched to %s; %zu workers in %zu clusters, pinning '%s'\n",
          hwy::TargetName(HWY_TARGET), ctx.pools.MaxWorkers(), ctx.pools.NumClusters(),
          ctx.pools.PinString());
  for (const morello_bench::Shape& s : morello_bench::Cfg().shapes) {
    if (s.a_bf16) {
      s.c_bf16 ? BenchShape<BF16, BF16>(s, ctx, target) : BenchShape<BF16, float>(s, ctx, target);
    } else {
      s.c_bf16 ? BenchShape<float, BF16>(s, ctx, target)
               : BenchShape<float, float>(s, ctx, target);
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace gcpp
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gcpp {
HWY_EXPORT(MorelloBenchRunAll);
}  // namespace gcpp

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s best|avx2 THREADS REPS name:K:N:A:C...\n", argv[0]);
    return 2;
  }
  const std::string target = argv[1];
  morello_bench::Config& config = morello_bench::Cfg();
  config.threads = atoi(argv[2]);
  config.reps = atoi(argv[3]);
  for (int i = 4; i < argc; ++i) {
    char name[128], a[8], c[8];
    size_t k = 0, n = 0;
    if (sscanf(argv[i], "%127[^:]:%zu:%zu:%7[^:]:%7s", name, &k, &n, a, c) != 5) {
      fprintf(stderr, "bad shape %s (name:K:N:A:C)\n", argv[i]);
      return 2;
    }
    config.shapes.push_back({name, k, n, std::string(a) == "bf16", std::string(c) == "bf16"});
  }
  if (target == "avx2") {
    hwy::SetSupportedTargetsForTest(HWY_AVX2);
  } else if (target != "best") {
    fprintf(stderr, "target is best or avx2, not %s\n", target.c_str());
    return 2;
  }
  HWY_DYNAMIC_DISPATCH(gcpp::MorelloBenchRunAll)(target.c_str());
  return 0;
}
#endif  // HWY_ONCE
