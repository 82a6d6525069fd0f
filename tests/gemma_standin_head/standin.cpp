// Today's gemma.cpp CallMatMul call sites, with their A and C types, through the adapter
// (integrations/gemma_cpp/morello_gemma_matmul.h, which the patched ops-inl.h includes) on
// stand-ins of gemma's types. One entry takes every variation a call site can have.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <vector>

#include "ops/ops-inl.h"

namespace py = pybind11;
template <class T>
using Arr = py::array_t<T, py::array::c_style>;

namespace gcpp {
namespace HWY_NAMESPACE {

struct Call {
  std::size_t rows, k, n, w_stride;
  bool weights_f32;  // a weight type the kernels do not take
  float scale_a, scale_b;
  bool row_ptrs;  // C through attached row pointers, as the KV cache is written
  std::size_t clusters, per_cluster;
  ParallelismStrategy parallelism;
  bool fused;  // a callback set in MMOptions, as CallTwoMatMul sets one
};

template <typename TA, typename TC>
py::array Run(const Call& call, py::array a_in, py::array w_in, py::object add_in) {
  MatPtrT<TA> A(call.rows, call.k);
  A.SetPtr(const_cast<void*>(a_in.data()), call.k);
  A.SetScale(call.scale_a);
  MatPtr B(call.weights_f32 ? Type::kF32 : Type::kBF16, call.weights_f32 ? 4 : 2, call.n,
           call.k);
  B.SetPtr(const_cast<void*>(w_in.data()), call.w_stride);
  B.SetScale(call.scale_b);
  const float* add = nullptr;
  Arr<float> add_arr;
  if (!add_in.is_none()) {
    add_arr = add_in.cast<Arr<float>>();
    add = add_arr.data();
  }
  // C's rows land at scattered places when row pointers are attached: every other row of
  // a buffer twice as tall, as KV cache rows sit apart.
  std::vector<TC> storage(2 * call.rows * call.n);
  std::vector<uint8_t*> pointers(call.rows);
  MatPtrT<TC> C(call.rows, call.n);
  C.SetPtr(storage.data(), call.n);
  if (call.row_ptrs) {
    for (std::size_t r = 0; r < call.rows; ++r) {
      pointers[r] = reinterpret_cast<uint8_t*>(storage.data() + (2 * r + 1) * call.n);
    }
    C.AttachRowPtrs(pointers.data());
  }
  ThreadingContext ctx(call.clusters, call.per_cluster);
  MatMulEnv env(ctx);
  MMOptions options;
  options.parallelism = call.parallelism;
  if (call.fused) options.func = [](const void*) {};
  CallMatMul(A, B, add, env, C, options);  // unqualified, as gemma's call sites are
  Arr<float> out({call.rows, call.n});
  for (std::size_t r = 0; r < call.rows; ++r) {
    const TC* c = call.row_ptrs ? reinterpret_cast<const TC*>(pointers[r]) : C.Row(r);
    for (std::size_t j = 0; j < call.n; ++j) out.mutable_at(r, j) = ToFloat(c[j]);
  }
  return std::move(out);
}

}  // namespace HWY_NAMESPACE
}  // namespace gcpp

PYBIND11_MODULE(gemma_standin_head, m) {
  using namespace gcpp;
  using namespace gcpp::HWY_NAMESPACE;
  m.def(
      "call_matmul",
      [](py::array a, bool a_bf16, py::array w, std::size_t k, std::size_t n,
         std::size_t w_stride, bool weights_f32, py::object add, bool c_bf16, float scale_a,
         float scale_b, bool row_ptrs, std::size_t clusters, std::size_t per_cluster,
         int parallelism, bool fused) {
        const std::size_t rows = static_cast<std::size_t>(a.size()) / k;
        const Call call{rows, k, n, w_stride, weights_f32, scale_a, scale_b, row_ptrs,
                        clusters, per_cluster, static_cast<ParallelismStrategy>(parallelism),
                        fused};
        if (a_bf16) {
          return c_bf16 ? Run<BF16, BF16>(call, a, w, add) : Run<BF16, float>(call, a, w, add);
        }
        return c_bf16 ? Run<float, BF16>(call, a, w, add) : Run<float, float>(call, a, w, add);
      });
  m.def("gemma_own_calls", [] { return gemma_own_calls; });
  m.def("parallel_fors", [] { return parallel_fors; });
}
