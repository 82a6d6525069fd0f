// Every kernel of the list against a plain loop in double precision, with the error
// bound (K + 2) * 2^-24 * (sum |a*b| + |c0| + |bias|) of f32 accumulation.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "morello_kernels.hpp"

namespace {

std::mt19937 rng(1234);

float to_float(float x) { return x; }
float to_float(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
}

template <class T>
std::vector<T> random_values(int64_t count) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<T> values(static_cast<std::size_t>(count));
  for (auto& v : values) {
    const float f = dist(rng);
    if constexpr (sizeof(T) == 2) {
      uint32_t bits;
      std::memcpy(&bits, &f, sizeof bits);
      v = static_cast<T>(bits >> 16);  // truncation: any bf16 value will do
    } else {
      v = f;
    }
  }
  return values;
}

int64_t at(morello::Layout layout, int64_t i, int64_t j, int64_t rows, int64_t cols) {
  return layout == morello::Layout::row ? i * cols + j : j * rows + i;
}

template <class K>
bool check() {
  constexpr int64_t m = K::m, k = K::k, n = K::n;
  auto a = random_values<typename K::a_type>(m * k);
  auto b = random_values<typename K::b_type>(k * n);
  auto bias = random_values<float>(n);
  auto c = random_values<float>(m * n);
  const std::vector<float> c0 = c;
  if constexpr (K::bias) {
    K::run(a.data(), b.data(), bias.data(), c.data());
  } else {
    K::run(a.data(), b.data(), c.data());
  }
  int64_t bad = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const int64_t ci = at(K::c_layout, i, j, m, n);
      double sum = 0, magnitude = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double x = to_float(a[at(K::a_layout, i, p, m, k)]);
        const double y = to_float(b[at(K::b_layout, p, j, k, n)]);
        sum += x * y;
        magnitude += std::fabs(x * y);
      }
      if (K::accumulate) sum += c0[ci], magnitude += std::fabs(c0[ci]);
      if (K::bias) sum += bias[j], magnitude += std::fabs(bias[j]);
      const double bound = (k + 2) * std::ldexp(1.0, -24) * magnitude;
      if (std::fabs(c[ci] - sum) > bound) ++bad;
    }
  }
  std::printf("%s %lldx%lldx%lld: %s\n", K::name, static_cast<long long>(m),
              static_cast<long long>(k), static_cast<long long>(n), bad ? "WRONG" : "ok");
  return bad == 0;
}

template <class... Kernels>
int check_all(morello::KernelList<Kernels...>) {
  return (0 + ... + (check<Kernels>() ? 0 : 1));
}

}  // namespace

int main() { return check_all(morello::morello_kernels{}); }
