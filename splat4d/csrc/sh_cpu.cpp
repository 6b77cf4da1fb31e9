// View-dependent colours from spherical harmonics on the CPU, forward and hand-written
// backward: splat4d/sh.py's view_dependent_colors (degrees 0-3; sh.py handles 4), one pass per
// Gaussian instead of PyTorch's op-by-op graph.
//
// colour = max(sum_k Y_k(d) coeffs_k + 0.5, 0) with d = (mean - camera centre) / |...|, Y_k the
// real SH basis in sh.py's order and constants (Sloan, JCGT 2013). Gradients reach the
// coefficients and the means (through d); the cameras' contributions to a Gaussian are summed
// in camera order (deterministic, independent of the thread count).

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "task_pool.h"

namespace splat4d_sh {
namespace {

constexpr int kMaxDegree = 3;
constexpr int kMaxBases = (kMaxDegree + 1) * (kMaxDegree + 1);
constexpr double kNormEps = 1e-12;  // F.normalize's eps
constexpr int64_t kChunk = 1024;    // Gaussians per task

// Basis values Y[0..(degree+1)^2) at the unit direction (x, y, z) and, when dY is given, their
// derivatives dY[k][0..2] with respect to x, y, z (sh.py's sh_bases, term by term).
template <typename S>
void bases(int degree, S x, S y, S z, S* Y, S (*dY)[3]) {
  const S C1 = S(0.48860251190292);
  Y[0] = S(0.2820947917738781);
  if (dY != nullptr) dY[0][0] = dY[0][1] = dY[0][2] = 0;
  if (degree < 1) return;
  Y[1] = -C1 * y;
  Y[2] = C1 * z;
  Y[3] = -C1 * x;
  if (dY != nullptr) {
    const S d1[3][3] = {{0, -C1, 0}, {0, 0, C1}, {-C1, 0, 0}};
    for (int k = 0; k < 3; ++k)
      for (int j = 0; j < 3; ++j) dY[1 + k][j] = d1[k][j];
  }
  if (degree < 2) return;
  const S z2 = z * z, c1 = x * x - y * y, s1 = 2 * x * y;
  const S A = S(0.5462742152960395), B = S(1.092548430592079), Cq = S(0.9461746957575601), Dq = S(0.3153915652525201);
  Y[4] = A * s1;
  Y[5] = -B * z * y;
  Y[6] = Cq * z2 - Dq;
  Y[7] = -B * z * x;
  Y[8] = A * c1;
  if (dY != nullptr) {
    const S d2[5][3] = {{A * 2 * y, A * 2 * x, 0},
                        {0, -B * z, -B * y},
                        {0, 0, 2 * Cq * z},
                        {-B * z, 0, -B * x},
                        {A * 2 * x, -A * 2 * y, 0}};
    for (int k = 0; k < 5; ++k)
      for (int j = 0; j < 3; ++j) dY[4 + k][j] = d2[k][j];
  }
  if (degree < 3) return;
  const S c2 = x * c1 - y * s1, s2 = x * s1 + y * c1;
  const S E = S(0.5900435899266435), Fc = S(2.285228997322329), G = S(0.4570457994644658);
  const S Hb = S(1.445305721320277), P = S(1.865881662950577), Q = S(1.119528997770346);
  const S tmp_c = -Fc * z2 + G, tmp_b = Hb * z;
  Y[9] = -E * s2;
  Y[10] = tmp_b * s1;
  Y[11] = tmp_c * y;
  Y[12] = z * (P * z2 - Q);
  Y[13] = tmp_c * x;
  Y[14] = tmp_b * c1;
  Y[15] = -E * c2;
  if (dY != nullptr) {
    // s2 = 3x²y - y³, c2 = x³ - 3xy²
    const S d3[7][3] = {{-E * 6 * x * y, -E * 3 * c1, 0},
                        {tmp_b * 2 * y, tmp_b * 2 * x, Hb * s1},
                        {0, tmp_c, -2 * Fc * z * y},
                        {0, 0, 3 * P * z2 - Q},
                        {tmp_c, 0, -2 * Fc * z * x},
                        {tmp_b * 2 * x, -tmp_b * 2 * y, Hb * c1},
                        {-E * 3 * c1, E * 6 * x * y, 0}};
    for (int k = 0; k < 7; ++k)
      for (int j = 0; j < 3; ++j) dY[9 + k][j] = d3[k][j];
  }
}

// Unit direction from the camera centre to the mean (and the length it was divided by).
template <typename S>
void direction(const S* mean, const S* campos, S* d, S& norm) {
  S raw[3];
  for (int j = 0; j < 3; ++j) raw[j] = mean[j] - campos[j];
  norm = std::sqrt(raw[0] * raw[0] + raw[1] * raw[1] + raw[2] * raw[2]);
  const S denom = std::max(norm, static_cast<S>(kNormEps));
  for (int j = 0; j < 3; ++j) d[j] = raw[j] / denom;
}

void check(const at::Tensor& t, const char* name, at::ScalarType dtype) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(), "sh_cpu: ", name, " must be a contiguous CPU tensor");
  TORCH_CHECK(t.scalar_type() == dtype, "sh_cpu: ", name, " must have the dtype of means");
}


// coeffs: [N, K, 3] shared by the cameras (per_camera false) or [C, N, K, 3].
struct Layout {
  int64_t C, N, K;
  bool per_camera;
  int64_t offset(int64_t c, int64_t n) const { return ((per_camera ? c * N : 0) + n) * K * 3; }
};

Layout layout(const at::Tensor& means, const at::Tensor& coeffs, const at::Tensor& campos, int64_t degree) {
  TORCH_CHECK(degree >= 0 && degree <= kMaxDegree, "sh_cpu: degree must be in [0, ", kMaxDegree, "]");
  const int64_t N = means.size(0), C = campos.size(0);
  TORCH_CHECK(means.dim() == 2 && means.size(1) == 3 && campos.dim() == 2 && campos.size(1) == 3,
              "sh_cpu: means must be [N, 3] and campos [C, 3]");
  const bool per_camera = coeffs.dim() == 4;
  TORCH_CHECK((coeffs.dim() == 3 && coeffs.size(0) == N) || (per_camera && coeffs.size(0) == C && coeffs.size(1) == N),
              "sh_cpu: coeffs must be [N, K, 3] or [C, N, K, 3]");
  const int64_t K = coeffs.size(-2);
  TORCH_CHECK(coeffs.size(-1) == 3 && K >= (degree + 1) * (degree + 1), "sh_cpu: too few SH coefficients");
  return {C, N, K, per_camera};
}

}  // namespace

// colours [C, N, 3] = max(SH(degree, direction) + 0.5, 0)
at::Tensor sh_fwd(int64_t degree, const at::Tensor& means, const at::Tensor& coeffs, const at::Tensor& campos) {
  const auto dtype = means.scalar_type();
  check(means, "means", dtype);
  check(coeffs, "coeffs", dtype);
  check(campos, "campos", dtype);
  const Layout L = layout(means, coeffs, campos, degree);
  at::Tensor colors = at::empty({L.C, L.N, 3}, means.options());
  const int nb = static_cast<int>((degree + 1) * (degree + 1));
  AT_DISPATCH_FLOATING_TYPES(dtype, "sh_cpu_fwd", [&] {
    using S = scalar_t;
    const S *m = means.data_ptr<S>(), *co = coeffs.data_ptr<S>(), *cp = campos.data_ptr<S>();
    S* out = colors.data_ptr<S>();
    pybind11::gil_scoped_release no_gil;
    splat4d_pool::for_each_chunk(L.N, kChunk, at::get_num_threads(), L.N * L.C, 8192, [&](int64_t n0, int64_t n1) {
      S Y[kMaxBases], d[3], norm;
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t c = 0; c < L.C; ++c) {
          direction(m + n * 3, cp + c * 3, d, norm);
          bases<S>(static_cast<int>(degree), d[0], d[1], d[2], Y, nullptr);
          const S* k = co + L.offset(c, n);
          for (int ch = 0; ch < 3; ++ch) {
            S acc = 0;
            for (int b = 0; b < nb; ++b) acc += Y[b] * k[b * 3 + ch];
            out[(c * L.N + n) * 3 + ch] = std::max(acc + S(0.5), S(0));
          }
        }
    });
  });
  return colors;
}

// (v_means [N, 3], v_coeffs shaped like coeffs)
std::vector<at::Tensor> sh_bwd(int64_t degree, const at::Tensor& means, const at::Tensor& coeffs,
                               const at::Tensor& campos, const at::Tensor& v_colors) {
  const auto dtype = means.scalar_type();
  check(means, "means", dtype);
  check(coeffs, "coeffs", dtype);
  check(campos, "campos", dtype);
  check(v_colors, "v_colors", dtype);
  const Layout L = layout(means, coeffs, campos, degree);
  at::Tensor v_means = at::empty({L.N, 3}, means.options());
  at::Tensor v_coeffs = at::zeros_like(coeffs);
  const int nb = static_cast<int>((degree + 1) * (degree + 1));
  AT_DISPATCH_FLOATING_TYPES(dtype, "sh_cpu_bwd", [&] {
    using S = scalar_t;
    const S *m = means.data_ptr<S>(), *co = coeffs.data_ptr<S>(), *cp = campos.data_ptr<S>();
    const S* vcol = v_colors.data_ptr<S>();
    S *gm = v_means.data_ptr<S>(), *gc = v_coeffs.data_ptr<S>();
    pybind11::gil_scoped_release no_gil;
    splat4d_pool::for_each_chunk(L.N, kChunk, at::get_num_threads(), L.N * L.C, 8192, [&](int64_t n0, int64_t n1) {
      S Y[kMaxBases], dY[kMaxBases][3], d[3], norm;
      for (int64_t n = n0; n < n1; ++n) {
        S vm[3] = {0, 0, 0};
        for (int64_t c = 0; c < L.C; ++c) {
          const int64_t o = (c * L.N + n) * 3;
          direction(m + n * 3, cp + c * 3, d, norm);
          bases<S>(static_cast<int>(degree), d[0], d[1], d[2], Y, dY);
          const S* k = co + L.offset(c, n);
          S vc[3];  // max(x + 0.5, 0) passes the gradient where x + 0.5 >= 0
          for (int ch = 0; ch < 3; ++ch) {
            S acc = 0;
            for (int b = 0; b < nb; ++b) acc += Y[b] * k[b * 3 + ch];
            vc[ch] = acc + S(0.5) >= 0 ? vcol[o + ch] : S(0);
          }
          S* gk = gc + L.offset(c, n);
          S vd[3] = {0, 0, 0};
          for (int b = 0; b < nb; ++b) {
            S vY = 0;
            for (int ch = 0; ch < 3; ++ch) {
              gk[b * 3 + ch] += Y[b] * vc[ch];
              vY += k[b * 3 + ch] * vc[ch];
            }
            for (int j = 0; j < 3; ++j) vd[j] += vY * dY[b][j];
          }
          // d = raw / max(|raw|, eps)
          if (norm > static_cast<S>(kNormEps)) {
            const S dot = d[0] * vd[0] + d[1] * vd[1] + d[2] * vd[2];
            for (int j = 0; j < 3; ++j) vm[j] += (vd[j] - d[j] * dot) / norm;
          } else {
            for (int j = 0; j < 3; ++j) vm[j] += vd[j] / static_cast<S>(kNormEps);
          }
        }
        for (int j = 0; j < 3; ++j) gm[n * 3 + j] = vm[j];
      }
    });
  });
  return {v_means, v_coeffs};
}

}  // namespace splat4d_sh
