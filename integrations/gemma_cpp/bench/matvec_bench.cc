// gemma.cpp's own bf16 MatVec against the same call routed through morello_gemma.h, in one
// process, on every shape of kernels.toml (Gemma 2B and 7B decoding). Built by
// `morello bench --gemma-cpp WORKDIR` (morello/bench/gemma_cpp.py) against a gemma.cpp
// checkout at 6eeef2e whose build has the adapter (integrations/gemma_cpp/README.md).
//
// Compiled once per Highway target, as gemma.cc is: ops.h, then the adapter. Each shape is
// checked against a double-precision product, then both sides are timed call by call,
// interleaved, on gemma's hwy::ThreadPool. Every call reads the next copy of the weights
// in a buffer of at least 256 MiB, so the weights come from DRAM as in a decode step.
//
// usage: matvec_bench TARGETS THREADS REPS     TARGETS: best (Highway's choice) | avx2
// prints one line per shape: "RESULT name=... key=value ..."
#ifndef MORELLO_GEMMA_BENCH_ONCE
#define MORELLO_GEMMA_BENCH_ONCE
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "compression/compress.h"
#include "hwy/aligned_allocator.h"
#include "hwy/contrib/thread_pool/thread_pool.h"

#include "bench_timing.h"

namespace morello_bench {
// The largest weights of the list: Gemma 7B's vocabulary projection.
constexpr size_t kCapacity = size_t{256000} * 3072;
constexpr size_t kRotationBytes = size_t{256} << 20;
using Weights = gcpp::CompressedArray<hwy::bfloat16_t, kCapacity>;
}  // namespace morello_bench
#endif  // MORELLO_GEMMA_BENCH_ONCE

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "matvec_bench.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "compression/compress-inl.h"
#include "gemma/ops.h"
#include "morello_gemma.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace gcpp {
namespace HWY_NAMESPACE {
namespace morello_bench_impl {
using morello_bench::Weights;

// A call as gemma.cc writes it: with the adapter included, bf16 weights select its overload.
template <size_t kOuter, size_t kInner, typename VecT>
void Routed(const Weights& w, size_t ofs, const VecT* x, float* eo, float* out,
            hwy::ThreadPool& pool) {
  MatVec<kOuter, kInner>(w, ofs, x, eo, out, pool);
}

// gemma's own template, named with its array type (the adapter's third parameter is a size).
template <size_t kOuter, size_t kInner, typename VecT>
void Own(const Weights& w, size_t ofs, const VecT* x, float* eo, float* out,
         hwy::ThreadPool& pool) {
  MatVec<kOuter, kInner, Weights, VecT>(w, ofs, x, eo, out, pool);
}

// Max over rows of |ours - exact| / sum_k |w x|, and whether every row is within the
// bound of a K-term f32 dot product, (K + 2) 2^-24 (the project's tests use the same).
template <size_t kOuter, size_t kInner, typename VecT>
double WorstError(const Weights& w, const VecT* x, const float* out, bool* within) {
  double worst = 0.0;
  *within = true;
  for (size_t r = 0; r < kOuter; ++r) {
    double exact = 0.0, scale = 0.0;
    for (size_t k = 0; k < kInner; ++k) {
      const double p = static_cast<double>(hwy::ConvertScalarTo<float>(w.data()[r * kInner + k])) *
                       static_cast<double>(hwy::ConvertScalarTo<float>(x[k]));
      exact += p;
      scale += std::fabs(p);
    }
    const double error = std::fabs(out[r] - exact) / std::max(scale, 1e-30);
    worst = std::max(worst, error);
    *within = *within && error <= (kInner + 2) * std::ldexp(1.0, -24);
  }
  return worst;
}

template <size_t kOuter, size_t kInner, typename VecT>
void Shape(const char* name, const Weights& w, hwy::ThreadPool& pool, int threads, int reps) {
  constexpr size_t kElems = kOuter * kInner;
  static_assert(kElems <= morello_bench::kCapacity);
  const size_t copies = std::max<size_t>(
      1, std::min(morello_bench::kCapacity / kElems,
                  (morello_bench::kRotationBytes + 2 * kElems - 1) / (2 * kElems)));
  auto x = hwy::AllocateAligned<VecT>(kInner);
  for (size_t k = 0; k < kInner; ++k) {
    x[k] = hwy::ConvertScalarTo<VecT>(static_cast<float>((k * 7919) % 1999) / 999.5f - 1.0f);
  }
  auto eo = hwy::AllocateAligned<float>(kInner * (pool.NumWorkers() + 1));
  auto out_own = hwy::AllocateAligned<float>(kOuter);
  auto out_ours = hwy::AllocateAligned<float>(kOuter);
  const auto vec = std::is_same_v<VecT, float> ? morello_gemma::VecType::kF32
                                               : morello_gemma::VecType::kBF16;
  const bool routed = morello_gemma::HasMatVec(kOuter, kInner, vec, false);

  Routed<kOuter, kInner>(w, 0, x.get(), eo.get(), out_ours.get(), pool);
  Own<kOuter, kInner>(w, 0, x.get(), eo.get(), out_own.get(), pool);
  bool ours_ok = false, own_ok = false;
  const double ours_error = WorstError<kOuter, kInner>(w, x.get(), out_ours.get(), &ours_ok);
  const double own_error = WorstError<kOuter, kInner>(w, x.get(), out_own.get(), &own_ok);

  size_t next = 0;
  auto timed = [&](bool ours) {
    const size_t ofs = (next++ % copies) * kElems;
    const double start = morello_bench::Seconds();
    if (ours) {
      Routed<kOuter, kInner>(w, ofs, x.get(), eo.get(), out_ours.get(), pool);
    } else {
      Own<kOuter, kInner>(w, ofs, x.get(), eo.get(), out_own.get(), pool);
    }
    return morello_bench::Seconds() - start;
  };
  for (int i = 0; i < 4; ++i) timed(i % 2 == 0);  // warm both, and gemma's pool
  std::vector<double> own, ours;
  for (int i = 0; i < reps; ++i) {
    // Swap who goes first every other pair, so neither always reads the same copies.
    const bool ours_first = (i / 2) % 2 == 1;
    const double first = timed(ours_first), second = timed(!ours_first);
    own.push_back(ours_first ? second : first);
    ours.push_back(ours_first ? first : second);
  }
  const double own_s = morello_bench::Median(own), ours_s = morello_bench::Median(ours);
  std::printf(
      "RESULT name=%s k=%zu n=%zu vec=%s target=%s threads=%d reps=%d routed=%d "
      "gemma_ms=%.4f ours_ms=%.4f ratio=%.4f gemma_gbps=%.2f ours_gbps=%.2f "
      "ours_error=%.3e ours_within=%d gemma_error=%.3e gemma_within=%d\n",
      name, kInner, kOuter, std::is_same_v<VecT, float> ? "f32" : "bf16",
      hwy::TargetName(HWY_TARGET), threads, reps, routed ? 1 : 0, own_s * 1e3, ours_s * 1e3,
      own_s / ours_s, 2.0 * kElems / own_s / 1e9, 2.0 * kElems / ours_s / 1e9, ours_error,
      ours_ok ? 1 : 0, own_error, own_ok ? 1 : 0);
  std::fflush(stdout);
}

}  // namespace morello_bench_impl

// Every MatVec<kOuter, kInner> of kernels.toml: kOuter = N rows of weights, kInner = K.
void RunShapes(const morello_bench::Weights& w, hwy::ThreadPool& pool, int threads, int reps) {
  using morello_bench_impl::Shape;
  using BF16 = hwy::bfloat16_t;
  Shape<2048, 2048, float>("gemma2b_q", w, pool, threads, reps);
  Shape<512, 2048, float>("gemma2b_kv", w, pool, threads, reps);
  Shape<2048, 256, float>("gemma2b_attn_out", w, pool, threads, reps);
  Shape<16384, 2048, BF16>("gemma2b_ffw_gating", w, pool, threads, reps);
  Shape<2048, 16384, float>("gemma2b_ffw_down", w, pool, threads, reps);
  Shape<256000, 2048, float>("gemma2b_vocab", w, pool, threads, std::max(5, reps / 8));
  Shape<12288, 3072, float>("gemma7b_qkv", w, pool, threads, reps);
  Shape<3072, 256, float>("gemma7b_attn_out", w, pool, threads, reps);
  Shape<24576, 3072, BF16>("gemma7b_ffw_gating", w, pool, threads, reps);
  Shape<3072, 24576, float>("gemma7b_ffw_down", w, pool, threads, reps);
  Shape<256000, 3072, float>("gemma7b_vocab", w, pool, threads, std::max(5, reps / 8));
}

}  // namespace HWY_NAMESPACE
}  // namespace gcpp
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gcpp {
HWY_EXPORT(RunShapes);
void DispatchShapes(const morello_bench::Weights& w, hwy::ThreadPool& pool, int threads,
                    int reps) {
  HWY_DYNAMIC_DISPATCH(RunShapes)(w, pool, threads, reps);
}
}  // namespace gcpp

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s best|avx2 THREADS REPS\n", argv[0]);
    return 2;
  }
  const std::string targets = argv[1];
  const int threads = std::atoi(argv[2]), reps = std::atoi(argv[3]);
  if (targets == "avx2") {
    hwy::SetSupportedTargetsForTest(HWY_AVX2);
  } else if (targets != "best") {
    std::fprintf(stderr, "targets must be best or avx2, not %s\n", targets.c_str());
    return 2;
  }
  if (threads < 1 || reps < 1) {
    std::fprintf(stderr, "THREADS and REPS must be positive\n");
    return 2;
  }
  auto weights = std::make_unique<morello_bench::Weights>();
  uint64_t state = 0x9E3779B97F4A7C15ull;  // xorshift: values in [-0.5, 0.5)
  for (size_t i = 0; i < weights->size(); ++i) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    weights->data()[i] = hwy::BF16FromF32(static_cast<float>(state >> 40) / 16777216.0f - 0.5f);
  }
  weights->set_scale(1.0f);
  hwy::ThreadPool pool(threads == 1 ? 0 : threads);
  pool.SetWaitMode(hwy::PoolWaitMode::kSpin);  // as gemma's generation loop runs it
  gcpp::DispatchShapes(*weights, pool, threads, reps);
  pool.SetWaitMode(hwy::PoolWaitMode::kBlock);
  return 0;
}
#endif  // HWY_ONCE
