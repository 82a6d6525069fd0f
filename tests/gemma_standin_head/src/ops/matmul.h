// Stand-ins for the types today's gemma.cpp (3ed403e) passes to CallMatMul, with the members
// the adapter (integrations/gemma_cpp/morello_gemma_matmul.h) uses: MatPtr / MatPtrT (rows,
// columns, row stride, per-tensor scale, weight type, row pointers), MatMulEnv with a
// ThreadingContext of cluster pools, MMOptions, ParallelFor with its strategies. Written from
// what those calls need, not from gemma's code; the pools are plain threads.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#include "hwy_standin.h"  // tests/gemma_standin/: the Highway pieces

namespace gcpp {

using BF16 = hwy::bfloat16_t;

enum class Type { kUnknown, kF32, kBF16, kSFP };

class MatPtr {
 public:
  MatPtr(Type type, std::size_t element_bytes, std::size_t rows, std::size_t cols)
      : type_(type), element_bytes_(element_bytes), rows_(rows), cols_(cols), stride_(cols) {}
  virtual ~MatPtr() = default;

  void SetPtr(void* ptr, std::size_t stride) {
    ptr_ = static_cast<uint8_t*>(ptr);
    stride_ = stride;
  }
  void SetScale(float scale) { scale_ = scale; }
  void AttachRowPtrs(uint8_t** row_ptrs) { row_ptrs_ = row_ptrs; }

  Type GetType() const { return type_; }
  std::size_t Rows() const { return rows_; }
  std::size_t Cols() const { return cols_; }
  std::size_t Stride() const { return stride_; }
  float Scale() const { return scale_; }
  uint8_t** GetRowPtrs() const { return row_ptrs_; }
  uint8_t* RowBytes(std::size_t row) { return ptr_ + row * stride_ * element_bytes_; }
  const uint8_t* RowBytes(std::size_t row) const { return ptr_ + row * stride_ * element_bytes_; }

 private:
  Type type_;
  std::size_t element_bytes_, rows_, cols_, stride_;
  uint8_t* ptr_ = nullptr;
  float scale_ = 1.0f;
  uint8_t** row_ptrs_ = nullptr;
};

template <typename T>
constexpr Type TypeOf() {
  return std::is_same_v<T, float> ? Type::kF32 : Type::kBF16;
}

template <typename T>
class MatPtrT : public MatPtr {
 public:
  MatPtrT(std::size_t rows, std::size_t cols) : MatPtr(TypeOf<T>(), sizeof(T), rows, cols) {}
  T* Row(std::size_t row) { return reinterpret_cast<T*>(RowBytes(row)); }
  const T* Row(std::size_t row) const { return reinterpret_cast<const T*>(RowBytes(row)); }
};

enum class ParallelismStrategy : uint8_t {
  kNone,
  kAcrossClusters,
  kWithinCluster,
  kFlat,
  kHierarchical
};
enum class Callers { kMMHierForN, kTest };

// One package of `clusters` clusters of `per_cluster` workers each.
class NestedPools {
 public:
  NestedPools(std::size_t clusters, std::size_t per_cluster) : all_(clusters) {
    for (std::size_t c = 0; c < clusters; ++c) {
      clusters_.push_back(std::make_unique<hwy::ThreadPool>(per_cluster));
    }
  }
  hwy::ThreadPool& AllClusters() { return all_; }
  hwy::ThreadPool& Cluster(std::size_t cluster_idx) { return *clusters_[cluster_idx]; }
  std::size_t MaxWorkers() const { return clusters_.size() * clusters_[0]->NumWorkers(); }

 private:
  hwy::ThreadPool all_;
  std::vector<std::unique_ptr<hwy::ThreadPool>> clusters_;
};

struct ThreadingContext {
  ThreadingContext(std::size_t clusters, std::size_t per_cluster) : pools(clusters, per_cluster) {}
  NestedPools pools;
};

// gemma's strategies, reduced to which pool runs the tasks (the adapter passes the caller's).
inline std::size_t parallel_fors = 0;
template <class Func>
void ParallelFor(ParallelismStrategy parallelism, std::size_t num_tasks, ThreadingContext& ctx,
                 std::size_t cluster_idx, Callers, const Func& func) {
  ++parallel_fors;
  if (parallelism == ParallelismStrategy::kNone) {
    for (std::size_t task = 0; task < num_tasks; ++task) func(task, 0);
    return;
  }
  ctx.pools.Cluster(cluster_idx).Run(0, num_tasks, [&](uint64_t task, std::size_t worker) {
    func(task, worker);
  });
}

struct MMPerKey {};

using MMFunc = void (*)(const void*);
struct MMOptions {
  MMFunc func = nullptr;  // gemma's fused callback (CallTwoMatMul's GELU·gate)
  const void* opaque = nullptr;
  uint32_t cluster_idx = 0;
  ParallelismStrategy parallelism = ParallelismStrategy::kHierarchical;
};

struct MatMulEnv {
  explicit MatMulEnv(ThreadingContext& ctx) : ctx(ctx) {}
  ThreadingContext& ctx;
};

}  // namespace gcpp
