// The machine's measured float32 FMA throughput, the yardstick of benchmarks/raster_cpu.py:
// `threads` threads each run independent chains of 8-lane AVX2 FMAs (enough chains to hide the
// FMA latency) for a fixed count; returns GFLOP/s (an FMA is 2 flops), or 0 without AVX2+FMA.

#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace splat4d_fma {
namespace {

#if defined(__x86_64__) && defined(__GNUC__)
constexpr int kChains = 12;

__attribute__((target("avx2,fma"))) float fma_chains(int64_t iters) {
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(0.001f * static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = _mm256_add_ps(sum, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, sum);
  return out[0];  // (returned so the loop is not optimised away)
}
#endif

}  // namespace

double fma_peak_gflops(int64_t threads, int64_t iters) {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") || threads < 1) return 0.0;
  std::vector<float> sink(static_cast<size_t>(threads));
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int64_t t = 0; t < threads; ++t) pool.emplace_back([&, t] { sink[t] = fma_chains(iters); });
  for (auto& th : pool) th.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  volatile float keep = sink[0];
  (void)keep;
  return static_cast<double>(threads) * static_cast<double>(iters) * kChains * 8 * 2 / seconds * 1e-9;
#else
  (void)threads;
  (void)iters;
  return 0.0;
#endif
}

}  // namespace splat4d_fma
