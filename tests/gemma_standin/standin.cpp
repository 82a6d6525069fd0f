// gemma.cpp's MatVec call sites, with their template arguments and types, through the
// adapter (integrations/gemma_cpp/morello_gemma.h) on stand-ins of gemma's types.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <memory>
#include <vector>

#include "standin_ops.h"
// clang-format off
#include "morello_gemma.h"  // where gemma.cc includes it: after ops.h
// clang-format on

namespace py = pybind11;
template <class T>
using Arr = py::array_t<T, py::array::c_style>;

namespace gcpp {
namespace HWY_NAMESPACE {

constexpr std::size_t kModelDim = 2048, kFFHiddenDim = 16384, kHeads = 8, kQKVDim = 256;

template <class MatT, std::size_t kCapacity>
std::unique_ptr<CompressedArray<MatT, kCapacity>> Weights(const Arr<uint16_t>& bits) {
  if (static_cast<std::size_t>(bits.size()) != kCapacity) throw std::length_error("weights");
  auto mat = std::make_unique<CompressedArray<MatT, kCapacity>>();
  std::memcpy(mat->data(), bits.data(), kCapacity * sizeof(uint16_t));
  return mat;
}

std::vector<hwy::bfloat16_t> Bf16(const Arr<uint16_t>& bits) {
  std::vector<hwy::bfloat16_t> v(static_cast<std::size_t>(bits.size()));
  std::memcpy(v.data(), bits.data(), v.size() * sizeof(uint16_t));
  return v;
}

// FFW gating: both halves of gating_einsum_w, bf16 vector, kFFBiases = false.
Arr<float> FfwGating(const Arr<uint16_t>& w, const Arr<uint16_t>& vec_bits, hwy::ThreadPool& pool) {
  auto mat = Weights<hwy::bfloat16_t, 2 * kFFHiddenDim * kModelDim>(w);
  const std::vector<hwy::bfloat16_t> vec = Bf16(vec_bits);
  std::vector<float> biases(2 * kFFHiddenDim), even_odd(kModelDim);
  Arr<float> out({2 * kFFHiddenDim});
  float* out_mul = out.mutable_data() + kFFHiddenDim;
  MatVecAdd<false, kFFHiddenDim, kModelDim>(*mat, kFFHiddenDim * kModelDim, vec.data(),
                                            biases.data() + kFFHiddenDim, even_odd.data(),
                                            out_mul, pool);
  MatVecAdd<false, kFFHiddenDim, kModelDim>(*mat, 0, vec.data(), biases.data(),
                                            even_odd.data(), out.mutable_data(), pool);
  return out;
}

// Attention output: MatVecAdd for head 0, MatVec for the others (f32 vectors).
Arr<float> AttnOut(const Arr<uint16_t>& w, const Arr<float>& att_out, hwy::ThreadPool& pool) {
  auto mat = Weights<hwy::bfloat16_t, kHeads * kModelDim * kQKVDim>(w);
  std::vector<float> biases(kModelDim), even_odd(kModelDim);
  Arr<float> out({kHeads, kModelDim});
  MatVecAdd<false, kModelDim, kQKVDim>(*mat, 0, att_out.data(), biases.data(),
                                       even_odd.data(), out.mutable_data(), pool);
  for (std::size_t head = 1; head < kHeads; ++head) {
    MatVec<kModelDim, kQKVDim>(*mat, head * kModelDim * kQKVDim, att_out.data() + head * kQKVDim,
                               even_odd.data(), out.mutable_data() + head * kModelDim, pool);
  }
  return out;
}

// KV projection of multi-query attention: rows after the query heads' (f32 vector).
Arr<float> Kv(const Arr<uint16_t>& w, const Arr<float>& x, hwy::ThreadPool& pool) {
  auto mat = Weights<hwy::bfloat16_t, (kHeads + 2) * kQKVDim * kModelDim>(w);
  std::vector<float> even_odd(kModelDim);
  Arr<float> out({2 * kQKVDim});
  MatVec<kQKVDim * 2, kModelDim>(*mat, kHeads * kQKVDim * kModelDim, x.data(), even_odd.data(),
                                 out.mutable_data(), pool);
  return out;
}

// Shapes and types the list does not have: gemma's own code must run.
Arr<float> Unlisted(const Arr<uint16_t>& w, const Arr<float>& x, hwy::ThreadPool& pool) {
  auto mat = Weights<hwy::bfloat16_t, 40 * 64>(w);
  std::vector<float> even_odd(64);
  Arr<float> out({40});
  MatVec<40, 64>(*mat, 0, x.data(), even_odd.data(), out.mutable_data(), pool);
  return out;
}

Arr<float> KvWithBf16Vector(const Arr<uint16_t>& w, const Arr<uint16_t>& x_bits,
                            hwy::ThreadPool& pool) {
  auto mat = Weights<hwy::bfloat16_t, (kHeads + 2) * kQKVDim * kModelDim>(w);
  const std::vector<hwy::bfloat16_t> x = Bf16(x_bits);
  std::vector<float> even_odd(kModelDim);
  Arr<float> out({2 * kQKVDim});
  MatVec<kQKVDim * 2, kModelDim>(*mat, kHeads * kQKVDim * kModelDim, x.data(), even_odd.data(),
                                 out.mutable_data(), pool);
  return out;
}

}  // namespace HWY_NAMESPACE
}  // namespace gcpp

PYBIND11_MODULE(gemma_standin, m) {
  namespace g = gcpp::HWY_NAMESPACE;
  py::class_<hwy::ThreadPool>(m, "ThreadPool")
      .def(py::init<std::size_t>())
      .def_readonly("runs", &hwy::ThreadPool::runs);
  m.def("ffw_gating", &g::FfwGating);
  m.def("attn_out", &g::AttnOut);
  m.def("kv", &g::Kv);
  m.def("unlisted", &g::Unlisted);
  m.def("kv_with_bf16_vector", &g::KvWithBf16Vector);
  m.def("gemma_own_calls", [] { return gcpp::gemma_own_calls; });
}
