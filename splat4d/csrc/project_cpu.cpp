// EWA projection of 3D Gaussians on the CPU, forward and hand-written backward: the same
// arithmetic as splat4d/projection.py's project_gaussians (gsplat 1.4.0's fully_fused_projection,
// packed=False), one pass per Gaussian instead of PyTorch's op-by-op graph (whose per-op
// overhead and autograd bookkeeping made the projection a quarter of a 20k-Gaussian CPU step).
//
// Per Gaussian: R(q/|q|), Σ = R S Sᵀ Rᵀ once; per camera: p = Rc m + tc, Σc = Rc Σ Rcᵀ,
// J = [[fx/z, 0, -fx tx/z²], [0, fy/z, -fy ty/z²]] at the guard-band clamped (tx, ty),
// Σ2d = J Σc Jᵀ + eps2d I, conic = Σ2d⁻¹, radius = ceil(3 sqrt(λmax)), compensation
// sqrt(det(Σ2d - eps2d I) / det(Σ2d)). Culled entries (radius 0) are zero, as in projection.py.
// The backward recomputes these per (camera, Gaussian) and sums the cameras' contributions per
// Gaussian in camera order: deterministic and independent of the thread count.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "task_pool.h"

namespace splat4d_project {
namespace {

constexpr double kFrustumGuard = 0.3;  // projection.py's _FRUSTUM_GUARD
constexpr double kNormEps = 1e-12;     // F.normalize's eps
constexpr double kCompFloor = 1e-12;   // floor of det ratio under the compensation's sqrt
constexpr int64_t kChunk = 512;        // Gaussians per task

template <typename S>
struct Camera {
  S R[3][3], t[3];
  S fx, fy, cx, cy;
  S lo_x, hi_x, lo_y, hi_y;  // guard band of x/z and y/z
};

template <typename S>
std::vector<Camera<S>> read_cameras(const at::Tensor& viewmats, const at::Tensor& Ks, int64_t width, int64_t height) {
  const int64_t C = viewmats.size(0);
  const S* V = viewmats.data_ptr<S>();
  const S* K = Ks.data_ptr<S>();
  std::vector<Camera<S>> cams(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    Camera<S>& cam = cams[c];
    const S* v = V + c * 16;
    const S* k = K + c * 9;
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) cam.R[i][j] = v[i * 4 + j];
      cam.t[i] = v[i * 4 + 3];
    }
    cam.fx = k[0];
    cam.fy = k[4];
    cam.cx = k[2];
    cam.cy = k[5];
    const S guard = static_cast<S>(kFrustumGuard);
    const S tan_fovx = S(0.5) * static_cast<S>(width) / cam.fx, tan_fovy = S(0.5) * static_cast<S>(height) / cam.fy;
    cam.lo_x = -(cam.cx / cam.fx + guard * tan_fovx);
    cam.hi_x = (static_cast<S>(width) - cam.cx) / cam.fx + guard * tan_fovx;
    cam.lo_y = -(cam.cy / cam.fy + guard * tan_fovy);
    cam.hi_y = (static_cast<S>(height) - cam.cy) / cam.fy + guard * tan_fovy;
  }
  return cams;
}

// World-space shape of one Gaussian: normalised quaternion, R(q), M = R S, Σ = M Mᵀ.
template <typename S>
struct Shape {
  S qn[4], norm, Rq[3][3], M[3][3], Sigma[3][3];
};

template <typename S>
void make_shape(const S* q, const S* s, Shape<S>& g) {
  g.norm = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  const S denom = std::max(g.norm, static_cast<S>(kNormEps));
  for (int i = 0; i < 4; ++i) g.qn[i] = q[i] / denom;
  const S w = g.qn[0], x = g.qn[1], y = g.qn[2], z = g.qn[3];
  const S R[3][3] = {{1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)},
                     {2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)},
                     {2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)}};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      g.Rq[i][j] = R[i][j];
      g.M[i][j] = R[i][j] * s[j];
    }
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) g.Sigma[i][j] = g.M[i][0] * g.M[j][0] + g.M[i][1] * g.M[j][1] + g.M[i][2] * g.M[j][2];
}

// One Gaussian seen by one camera, up to the conic (everything the backward needs again).
template <typename S>
struct View {
  S p[3], Sc[3][3], z, qx, qy, tx, ty, J[2][3], a, b, c, det_orig, det;
  bool in_depth, in_x, in_y;
};

template <typename S>
void make_view(const Camera<S>& cam, const S* m, const Shape<S>& g, S eps2d, S near_plane, S far_plane, View<S>& v) {
  for (int i = 0; i < 3; ++i) v.p[i] = cam.R[i][0] * m[0] + cam.R[i][1] * m[1] + cam.R[i][2] * m[2] + cam.t[i];
  S RS[3][3];  // Rc Σ
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      RS[i][j] = cam.R[i][0] * g.Sigma[0][j] + cam.R[i][1] * g.Sigma[1][j] + cam.R[i][2] * g.Sigma[2][j];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) v.Sc[i][j] = RS[i][0] * cam.R[j][0] + RS[i][1] * cam.R[j][1] + RS[i][2] * cam.R[j][2];
  v.in_depth = v.p[2] >= near_plane && v.p[2] <= far_plane;
  const S z = v.in_depth ? v.p[2] : S(1);  // culled entries stay finite
  v.z = z;
  const S rx = v.p[0] / z, ry = v.p[1] / z;
  v.in_x = rx >= cam.lo_x && rx <= cam.hi_x;  // torch.clamp passes the gradient inside [min, max]
  v.in_y = ry >= cam.lo_y && ry <= cam.hi_y;
  v.qx = std::min(std::max(rx, cam.lo_x), cam.hi_x);
  v.qy = std::min(std::max(ry, cam.lo_y), cam.hi_y);
  v.tx = z * v.qx;
  v.ty = z * v.qy;
  v.J[0][0] = cam.fx / z;
  v.J[0][1] = 0;
  v.J[0][2] = -cam.fx * v.tx / (z * z);
  v.J[1][0] = 0;
  v.J[1][1] = cam.fy / z;
  v.J[1][2] = -cam.fy * v.ty / (z * z);
  S JS[2][3];  // J Σc
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) JS[i][j] = v.J[i][0] * v.Sc[0][j] + v.J[i][1] * v.Sc[1][j] + v.J[i][2] * v.Sc[2][j];
  S cov[2][2];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) cov[i][j] = JS[i][0] * v.J[j][0] + JS[i][1] * v.J[j][1] + JS[i][2] * v.J[j][2];
  const S a = cov[0][0], b = S(0.5) * (cov[0][1] + cov[1][0]), c = cov[1][1];
  v.det_orig = a * c - b * b;
  v.a = a + eps2d;
  v.b = b;
  v.c = c + eps2d;
  v.det = v.a * v.c - v.b * v.b;
}

template <typename S>
void forward_range(int64_t n0, int64_t n1, int64_t N, const S* means, const S* quats, const S* scales,
                   const std::vector<Camera<S>>& cams, int64_t width, int64_t height, S eps2d, S near_plane,
                   S far_plane, S radius_clip, int32_t* radii, S* means2d, S* depths, S* conics, S* comps) {
  Shape<S> g;
  View<S> v;
  const int64_t C = static_cast<int64_t>(cams.size());
  for (int64_t n = n0; n < n1; ++n) {
    make_shape(quats + n * 4, scales + n * 3, g);
    for (int64_t ci = 0; ci < C; ++ci) {
      const Camera<S>& cam = cams[ci];
      const int64_t o = ci * N + n;
      make_view(cam, means + n * 3, g, eps2d, near_plane, far_plane, v);
      bool valid = v.in_depth && v.det > 0;
      const S mid = S(0.5) * (v.a + v.c);
      const S lambda_max = mid + std::sqrt(std::max(mid * mid - v.det, S(0.01)));
      const S radius = std::ceil(S(3) * std::sqrt(lambda_max));
      const S u = cam.fx * v.p[0] / v.z + cam.cx, w = cam.fy * v.p[1] / v.z + cam.cy;
      valid = valid && radius > radius_clip && u + radius > 0 && u - radius < static_cast<S>(width) &&
              w + radius > 0 && w - radius < static_cast<S>(height);
      if (!valid) {
        radii[o] = 0;
        means2d[o * 2] = means2d[o * 2 + 1] = 0;
        depths[o] = 0;
        conics[o * 3] = conics[o * 3 + 1] = conics[o * 3 + 2] = 0;
        if (comps != nullptr) comps[o] = 0;
        continue;
      }
      radii[o] = static_cast<int32_t>(radius);
      means2d[o * 2] = u;
      means2d[o * 2 + 1] = w;
      depths[o] = v.p[2];
      conics[o * 3] = v.c / v.det;
      conics[o * 3 + 1] = -v.b / v.det;
      conics[o * 3 + 2] = v.a / v.det;
      if (comps != nullptr) comps[o] = std::sqrt(std::max(v.det_orig / v.det, static_cast<S>(kCompFloor)));
    }
  }
}

template <typename S>
void backward_range(int64_t n0, int64_t n1, int64_t N, const S* means, const S* quats, const S* scales,
                    const std::vector<Camera<S>>& cams, S eps2d, S near_plane, S far_plane, const int32_t* radii,
                    const S* v_means2d, const S* v_depths, const S* v_conics, const S* v_comps, S* v_means,
                    S* v_quats, S* v_scales) {
  Shape<S> g;
  View<S> v;
  const int64_t C = static_cast<int64_t>(cams.size());
  for (int64_t n = n0; n < n1; ++n) {
    make_shape(quats + n * 4, scales + n * 3, g);
    S vm[3] = {0, 0, 0};
    S vSigma[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
    bool any = false;
    for (int64_t ci = 0; ci < C; ++ci) {
      const int64_t o = ci * N + n;
      if (radii[o] <= 0) continue;
      any = true;
      const Camera<S>& cam = cams[ci];
      make_view(cam, means + n * 3, g, eps2d, near_plane, far_plane, v);
      const S z = v.z, x = v.p[0], y = v.p[1], det = v.det, det2 = det * det;
      S vp[3] = {0, 0, v_depths[o]};
      // means2d = (fx x / z + cx, fy y / z + cy)
      const S vu = v_means2d[o * 2], vw = v_means2d[o * 2 + 1];
      vp[0] += vu * cam.fx / z;
      vp[1] += vw * cam.fy / z;
      vp[2] -= vu * cam.fx * x / (z * z) + vw * cam.fy * y / (z * z);
      // conic = (c', -b, a') / det with det = a' c' - b²
      const S vA = v_conics[o * 3], vB = v_conics[o * 3 + 1], vC = v_conics[o * 3 + 2];
      S va = vA * (-v.c * v.c / det2) + vB * (v.b * v.c / det2) + vC * (S(1) / det - v.a * v.c / det2);
      S vc = vA * (S(1) / det - v.a * v.c / det2) + vB * (v.b * v.a / det2) + vC * (-v.a * v.a / det2);
      S vb = vA * (S(2) * v.b * v.c / det2) + vB * (-S(1) / det - S(2) * v.b * v.b / det2) +
             vC * (S(2) * v.a * v.b / det2);
      // compensation = sqrt(max(det_orig / det, floor)), det_orig = (a' - eps)(c' - eps) - b²
      if (v_comps != nullptr) {
        const S r = v.det_orig / det;
        if (r >= static_cast<S>(kCompFloor)) {
          const S vr = v_comps[o] * S(0.5) / std::sqrt(r);
          const S a0 = v.a - eps2d, c0 = v.c - eps2d;
          va += vr * (c0 / det - v.det_orig * v.c / det2);
          vc += vr * (a0 / det - v.det_orig * v.a / det2);
          vb += vr * (-S(2) * v.b / det + v.det_orig * S(2) * v.b / det2);
        }
      }
      // cov = J Σc Jᵀ (b averaged over the two off-diagonal entries)
      const S G[2][2] = {{va, S(0.5) * vb}, {S(0.5) * vb, vc}};
      S GJ[2][3];  // G J
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j) GJ[i][j] = G[i][0] * v.J[0][j] + G[i][1] * v.J[1][j];
      S vSc[3][3];  // Jᵀ G J
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) vSc[i][j] = v.J[0][i] * GJ[0][j] + v.J[1][i] * GJ[1][j];
      S vJ[2][3];  // G J Σcᵀ + Gᵀ J Σc
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j) {
          S acc = 0;
          for (int k = 0; k < 3; ++k) acc += GJ[i][k] * (v.Sc[j][k] + v.Sc[k][j]);
          vJ[i][j] = acc;
        }
      const S z2 = z * z, z3 = z2 * z;
      vp[2] += -vJ[0][0] * cam.fx / z2 + vJ[0][2] * S(2) * cam.fx * v.tx / z3 - vJ[1][1] * cam.fy / z2 +
               vJ[1][2] * S(2) * cam.fy * v.ty / z3;
      const S vtx = -vJ[0][2] * cam.fx / z2, vty = -vJ[1][2] * cam.fy / z2;
      // t = z · clamp(p / z, lo, hi)
      vp[2] += vtx * v.qx + vty * v.qy;
      if (v.in_x) {
        vp[0] += vtx;
        vp[2] -= vtx * x / z;
      }
      if (v.in_y) {
        vp[1] += vty;
        vp[2] -= vty * y / z;
      }
      // p = Rc m + tc;  Σc = Rc Σ Rcᵀ
      for (int j = 0; j < 3; ++j) vm[j] += cam.R[0][j] * vp[0] + cam.R[1][j] * vp[1] + cam.R[2][j] * vp[2];
      S RtV[3][3];  // Rcᵀ vΣc
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) RtV[i][j] = cam.R[0][i] * vSc[0][j] + cam.R[1][i] * vSc[1][j] + cam.R[2][i] * vSc[2][j];
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) vSigma[i][j] += RtV[i][0] * cam.R[0][j] + RtV[i][1] * cam.R[1][j] + RtV[i][2] * cam.R[2][j];
    }
    S* gm = v_means + n * 3;
    S* gq = v_quats + n * 4;
    S* gs = v_scales + n * 3;
    if (!any) {
      std::fill(gm, gm + 3, S(0));
      std::fill(gq, gq + 4, S(0));
      std::fill(gs, gs + 3, S(0));
      continue;
    }
    for (int j = 0; j < 3; ++j) gm[j] = vm[j];
    // Σ = M Mᵀ, M = R(q) diag(s)
    S vM[3][3];
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        S acc = 0;
        for (int k = 0; k < 3; ++k) acc += (vSigma[i][k] + vSigma[k][i]) * g.M[k][j];
        vM[i][j] = acc;
      }
    const S* s = scales + n * 3;
    S vR[3][3];
    for (int j = 0; j < 3; ++j) {
      gs[j] = vM[0][j] * g.Rq[0][j] + vM[1][j] * g.Rq[1][j] + vM[2][j] * g.Rq[2][j];
      for (int i = 0; i < 3; ++i) vR[i][j] = vM[i][j] * s[j];
    }
    // R(w, x, y, z) of the normalised quaternion
    const S w = g.qn[0], x = g.qn[1], y = g.qn[2], z = g.qn[3];
    S vq[4];
    vq[0] = 2 * (-z * vR[0][1] + y * vR[0][2] + z * vR[1][0] - x * vR[1][2] - y * vR[2][0] + x * vR[2][1]);
    vq[1] = 2 * (y * vR[0][1] + z * vR[0][2] + y * vR[1][0] - 2 * x * vR[1][1] - w * vR[1][2] + z * vR[2][0] +
                 w * vR[2][1] - 2 * x * vR[2][2]);
    vq[2] = 2 * (-2 * y * vR[0][0] + x * vR[0][1] + w * vR[0][2] + x * vR[1][0] + z * vR[1][2] - w * vR[2][0] +
                 z * vR[2][1] - 2 * y * vR[2][2]);
    vq[3] = 2 * (-2 * z * vR[0][0] - w * vR[0][1] + x * vR[0][2] + w * vR[1][0] - 2 * z * vR[1][1] + y * vR[1][2] +
                 x * vR[2][0] + y * vR[2][1]);
    // qn = q / max(|q|, eps)
    if (g.norm > static_cast<S>(kNormEps)) {
      const S dot = g.qn[0] * vq[0] + g.qn[1] * vq[1] + g.qn[2] * vq[2] + g.qn[3] * vq[3];
      for (int i = 0; i < 4; ++i) gq[i] = (vq[i] - g.qn[i] * dot) / g.norm;
    } else {
      for (int i = 0; i < 4; ++i) gq[i] = vq[i] / static_cast<S>(kNormEps);
    }
  }
}

void check(const at::Tensor& t, const char* name, at::ScalarType dtype) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(), "project_cpu: ", name, " must be a contiguous CPU tensor");
  TORCH_CHECK(t.scalar_type() == dtype, "project_cpu: ", name, " must have the dtype of means");
}

void check_inputs(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& viewmats,
                  const at::Tensor& Ks) {
  const auto dtype = means.scalar_type();
  check(means, "means", dtype);
  check(quats, "quats", dtype);
  check(scales, "scales", dtype);
  check(viewmats, "viewmats", dtype);
  check(Ks, "Ks", dtype);
  const int64_t N = means.size(0), C = viewmats.size(0);
  TORCH_CHECK(means.dim() == 2 && means.size(1) == 3 && quats.sizes() == at::IntArrayRef({N, 4}) &&
                  scales.sizes() == at::IntArrayRef({N, 3}) && viewmats.sizes() == at::IntArrayRef({C, 4, 4}) &&
                  Ks.sizes() == at::IntArrayRef({C, 3, 3}),
              "project_cpu: expected means [N, 3], quats [N, 4], scales [N, 3], viewmats [C, 4, 4], Ks [C, 3, 3]");
}

}  // namespace

// (radii [C, N] int32, means2d [C, N, 2], depths [C, N], conics [C, N, 3], compensations [C, N]
// or an empty tensor when not asked for)
std::vector<at::Tensor> project_fwd(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                                    const at::Tensor& viewmats, const at::Tensor& Ks, int64_t width, int64_t height,
                                    double eps2d, double near_plane, double far_plane, double radius_clip,
                                    bool calc_compensations) {
  const auto dtype = means.scalar_type();
  check_inputs(means, quats, scales, viewmats, Ks);
  const int64_t N = means.size(0), C = viewmats.size(0);
  const auto opts = means.options();
  at::Tensor radii = at::empty({C, N}, opts.dtype(at::kInt));
  at::Tensor means2d = at::empty({C, N, 2}, opts), depths = at::empty({C, N}, opts);
  at::Tensor conics = at::empty({C, N, 3}, opts);
  at::Tensor comps = calc_compensations ? at::empty({C, N}, opts) : at::empty({0}, opts);
  AT_DISPATCH_FLOATING_TYPES(dtype, "project_cpu_fwd", [&] {
    using S = scalar_t;
    const auto cams = read_cameras<S>(viewmats, Ks, width, height);
    const S *m = means.data_ptr<S>(), *q = quats.data_ptr<S>(), *s = scales.data_ptr<S>();
    int32_t* r = radii.data_ptr<int32_t>();
    S *m2 = means2d.data_ptr<S>(), *d = depths.data_ptr<S>(), *co = conics.data_ptr<S>();
    S* cp = calc_compensations ? comps.data_ptr<S>() : nullptr;
    pybind11::gil_scoped_release no_gil;
    splat4d_pool::for_each_chunk(N, kChunk, at::get_num_threads(), N * C, 4096, [&](int64_t n0, int64_t n1) {
      forward_range<S>(n0, n1, N, m, q, s, cams, width, height, static_cast<S>(eps2d), static_cast<S>(near_plane),
                       static_cast<S>(far_plane), static_cast<S>(radius_clip), r, m2, d, co, cp);
    });
  });
  return {radii, means2d, depths, conics, comps};
}

// (v_means [N, 3], v_quats [N, 4], v_scales [N, 3]); v_compensations may be empty.
std::vector<at::Tensor> project_bwd(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                                    const at::Tensor& viewmats, const at::Tensor& Ks, int64_t width, int64_t height,
                                    double eps2d, double near_plane, double far_plane, const at::Tensor& radii,
                                    const at::Tensor& v_means2d, const at::Tensor& v_depths,
                                    const at::Tensor& v_conics, const at::Tensor& v_compensations) {
  const auto dtype = means.scalar_type();
  check_inputs(means, quats, scales, viewmats, Ks);
  check(v_means2d, "v_means2d", dtype);
  check(v_depths, "v_depths", dtype);
  check(v_conics, "v_conics", dtype);
  check(radii, "radii", at::kInt);
  const bool with_comps = v_compensations.numel() > 0;
  if (with_comps) check(v_compensations, "v_compensations", dtype);
  const int64_t N = means.size(0), C = viewmats.size(0);
  at::Tensor v_means = at::empty({N, 3}, means.options()), v_quats = at::empty({N, 4}, means.options());
  at::Tensor v_scales = at::empty({N, 3}, means.options());
  AT_DISPATCH_FLOATING_TYPES(dtype, "project_cpu_bwd", [&] {
    using S = scalar_t;
    const auto cams = read_cameras<S>(viewmats, Ks, width, height);
    const S *m = means.data_ptr<S>(), *q = quats.data_ptr<S>(), *s = scales.data_ptr<S>();
    const int32_t* r = radii.data_ptr<int32_t>();
    const S *vm2 = v_means2d.data_ptr<S>(), *vd = v_depths.data_ptr<S>(), *vco = v_conics.data_ptr<S>();
    const S* vcp = with_comps ? v_compensations.data_ptr<S>() : nullptr;
    S *gm = v_means.data_ptr<S>(), *gq = v_quats.data_ptr<S>(), *gs = v_scales.data_ptr<S>();
    pybind11::gil_scoped_release no_gil;
    splat4d_pool::for_each_chunk(N, kChunk, at::get_num_threads(), N * C, 4096, [&](int64_t n0, int64_t n1) {
      backward_range<S>(n0, n1, N, m, q, s, cams, static_cast<S>(eps2d), static_cast<S>(near_plane),
                        static_cast<S>(far_plane), r, vm2, vd, vco, vcp, gm, gq, gs);
    });
  });
  return {v_means, v_quats, v_scales};
}

}  // namespace splat4d_project
