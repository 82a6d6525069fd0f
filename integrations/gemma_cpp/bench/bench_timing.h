// What both gemma.cpp drivers time with: a monotonic clock in seconds, and medians.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace morello_bench {

inline double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace morello_bench
