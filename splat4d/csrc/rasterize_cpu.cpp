// Compiled CPU tile rasterizer: gsplat 1.4.0's rasterize_to_pixels (packed=False), forward and
// hand-written backward. JIT-built by splat4d/raster_cpu.py (torch.utils.cpp_extension.load).
//
// Semantics (identical to gsplat's CUDA kernels and splat4d/raster_reference.py): every pixel
// of a tile composites the tile's depth-sorted Gaussians front to back,
//
//   delta = mean2d - (px, py),  sigma = 0.5 (a dx dx + c dy dy) + b dx dy,
//   alpha = min(0.999, opacity exp(-sigma)), skipped when sigma < 0 or alpha < 1/255,
//   stopping before the Gaussian that would take T to <= 1e-4,
//   colour = sum_i c_i alpha_i T_i + T_final background,  render_alpha = 1 - T_final.
//
// Loop order. Instead of letting every pixel walk the whole list (gsplat's one thread per
// pixel), a tile walks its Gaussians front to back and visits only the pixels that can see
// each one: a conservative footprint of {alpha >= 1/255} (the ellipse sigma <= log(255 o),
// widened for floating-point error, cut into row chords for wide footprints; its bounding box
// is computed once per Gaussian for the whole image, not per tile). Pixels are evaluated in
// SIMD groups of W adjacent pixels of a row (GCC vector extensions), group column by group
// column (a 16-pixel tile row holds only two groups of 8), skipping the exp of groups that lie
// wholly outside the ellipse, with the pixel state (T, colour, last contributor,
// still-compositing mask) kept per tile in planar arrays. The kernels are compiled twice from
// this file: for the baseline instruction set of the flags (-O3, no -march: SSE2 on x86-64,
// W = 4) and, on x86-64, for AVX2 (W = 8, chosen at run time if the CPU has it, with fused
// multiply-adds: 8-12 % faster, images within float rounding of the baseline build's). Every
// pixel sees its Gaussians in the same order with the same float formulas as the per-pixel
// walk; only exp is our own vectorised one (< 1.4 ulp). A tile stops once all its pixels are
// saturated.
//
// Backward: the same footprints walked back to front (gsplat's scheme: T recomputed by
// dividing by 1 - alpha from the final T, only Gaussians up to each pixel's last contributor),
// each Gaussian's gradient summed over its pixels in SIMD registers. The final T comes from the
// forward pass as is, not as 1 - render_alpha (which gsplat uses, losing precision near 1).
//
// Threads. (camera, tile) tasks are handed out dynamically (largest first) to the caller and
// helper threads of task_pool.h (torch.get_num_threads() of them; not OpenMP, whose busy-waiting
// collapses on a machine shared with other CPU-bound processes). Gradients are written per
// intersection entry ([M, 8 + D]; every entry belongs to exactly one tile), then summed per
// Gaussian serially in entry order: deterministic and independent of the thread count, no
// atomics.

#ifndef SPLAT4D_RASTER_KERNEL_PASS
// ===== First pass: shared code, then the kernels twice (see the end), then the bindings. =====

// Light headers (not torch/extension.h): halves the JIT compile time.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/utils/pybind.h>

#include "task_pool.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#pragma GCC diagnostic ignored "-Wpsabi"  // wide vector types in code built for SSE2

namespace splat4d_raster {
namespace {

template <typename S>
struct Limits;
template <>
struct Limits<float> {
  static constexpr float kAlphaMax = 0.999f;
  static constexpr float kAlphaMin = 1.0f / 255.0f;
  static constexpr double kUnitRoundoff = 5.9604644775390625e-08;  // 2^-24
};
template <>
struct Limits<double> {
  static constexpr double kAlphaMax = 0.999;
  static constexpr double kAlphaMin = 1.0 / 255.0;
  static constexpr double kUnitRoundoff = 1.1102230246251565e-16;  // 2^-53
};
// A pixel stops before the Gaussian that would take T to <= 1e-4 (compared in double, as
// gsplat's `next_T <= 1e-4` does; for float this equals comparing with float(1e-4)).
constexpr double kTMin = 1e-4;

// Layout of one row of the per-intersection gradient buffer.
constexpr int kEntXY = 0;    // v_means2d (2)
constexpr int kEntCon = 2;   // v_conics (3)
constexpr int kEntOp = 5;    // v_opacities (1)
constexpr int kEntAbs = 6;   // |v_means2d| summed per pixel (2)
constexpr int kEntRGB = 8;   // v_colors (D)

// ---------------------------------------------------------------------------------------
// Footprints: which pixels of a tile can possibly give a Gaussian alpha >= 1/255.
// ---------------------------------------------------------------------------------------

struct Footprint {
  int row0 = 0, row1 = -1;  // inclusive image rows to visit (row0 > row1: none)
  int col0 = 0, col1 = -1;  // inclusive image columns of the bounding box
  bool spans = false;       // narrow each row to the ellipse's chord (wide footprints only)
  double mx = 0, my = 0, b_over_a = 0, inv_a = 1, two_t_a = 0, det = 1, margin = 0;
};

// [ceil(lo), floor(hi)] clipped to [mn, mx] (empty when first > last), for 0 <= mn <= mx;
// safe for huge and NaN bounds (NaN gives the whole range).
inline void clip_range(double lo, double hi, int mn, int mx, int& first, int& last) {
  lo = lo > mn ? lo : mn;
  lo = lo < mx + 1 ? lo : mx + 1;  // lo in [mn, mx + 1]
  hi = hi < mx ? hi : mx;
  hi = hi > mn - 1 ? hi : mn - 1;  // hi in [mn - 1, mx], >= -1
  const int l = static_cast<int>(lo), h = static_cast<int>(hi);  // truncation
  first = l + (l < lo);   // ceil for lo >= 0
  last = h - (h > hi);    // floor for hi >= -1
}

// alpha >= 1/255 needs opacity * exp(-sigma) >= 1/255, i.e. sigma <= t = log(255 opacity);
// with sigma >= 0 that is an ellipse when the conic is positive definite. The float sigma of
// the kernel has a relative error below (6 kappa + 2) u (kappa: condition number of the
// conic, u: unit roundoff), exp and the products add a few u to t: the ellipse is widened by
// a generous factor for both, and by 1e-3 px plus the rounding of the deltas. Gaussians whose
// conic is not positive definite, non-finite, or too ill-conditioned for that bound get the
// whole tile (the exact per-pixel tests below still decide).
template <typename S>
inline Footprint make_footprint(S mx, S my, S a, S b, S c, S opac, int x0, int x1, int y0, int y1,
                                double extent, int group) {
  Footprint f;
  // For sigma >= 0, fl(opac * exp(-sigma)) <= opac: below 1/255 nothing can pass.
  if (!(opac >= Limits<S>::kAlphaMin)) return f;  // (also skips NaN opacities)
  f.row0 = y0;
  f.row1 = y1;
  f.col0 = x0;
  f.col1 = x1;
  const double A = a, B = b, Cc = c, X = mx, Y = my;
  const double det = A * Cc - B * B;
  if (!(A > 0 && Cc > 0 && det > 0) || !std::isfinite(A) || !std::isfinite(Cc) ||
      !std::isfinite(B) || !std::isfinite(X) || !std::isfinite(Y))
    return f;
  const double u = Limits<S>::kUnitRoundoff;
  const double half_trace = 0.5 * (A + Cc);
  const double lmax = half_trace + std::sqrt(0.25 * (A - Cc) * (A - Cc) + B * B);
  const double lmin = det / lmax;
  const double rel = 16.0 * u * (lmax / lmin);
  if (!(rel < 0.5)) return f;
  const double t = std::log(255.0 * static_cast<double>(opac)) + 1e-6;
  const double tc = std::max(t, 0.0) / (1.0 - rel) * (1.0 + 1e-6) + 1e-6;
  f.mx = X;
  f.my = Y;
  f.inv_a = 1.0 / A;
  f.b_over_a = B / A;
  f.det = det;
  f.two_t_a = 2.0 * tc * A;
  f.margin = 1e-3 + 8.0 * u * (std::fabs(X) + std::fabs(Y) + extent);
  const double ext_y = std::sqrt(2.0 * tc * A / det);
  const double ext_x = std::sqrt(2.0 * tc * Cc / det);
  clip_range(Y - ext_y - 0.5 - f.margin, Y + ext_y - 0.5 + f.margin, y0, y1, f.row0, f.row1);
  clip_range(X - ext_x - 0.5 - f.margin, X + ext_x - 0.5 + f.margin, x0, x1, f.col0, f.col1);
  // A chord costs about as much as evaluating one group of pixels: only worth it when the
  // bounding box spans several groups.
  f.spans = f.col1 - f.col0 >= 2 * group;
  return f;
}

// Columns [j0, j1] of image row `row` inside the footprint.
inline void row_span(const Footprint& f, int row, int& j0, int& j1) {
  if (!f.spans) {
    j0 = f.col0;
    j1 = f.col1;
    return;
  }
  // a dx^2 + 2 b dy dx + c dy^2 <= 2t with dx = mx - px, dy = my - py:
  // dx in -b dy / a -+ sqrt(2 t a - det dy^2) / a.
  const double dy = f.my - (static_cast<double>(row) + 0.5);
  const double disc = f.two_t_a - f.det * dy * dy;
  const double h = std::sqrt(disc > 0.0 ? disc : 0.0) * f.inv_a;
  const double centre = f.mx + f.b_over_a * dy - 0.5;  // px - 0.5 at dx = -b dy / a
  clip_range(centre - h - f.margin, centre + h + f.margin, f.col0, f.col1, j0, j1);
}

// A Gaussian's footprint box in the whole image (inclusive; row0 > row1 or col0 > col1: empty).
// Clipping it to a tile gives exactly make_footprint's box for that tile (clip_range is
// monotone: max(ceil(lo), mn) = ceil(max(lo, mn)) for an integer mn; the ellipse, margin and
// NaN cases do not depend on the tile), so the logarithm, square roots and roundings are done
// once per Gaussian instead of once per tile intersection (20k instead of 91k at 20k /
// 256×192, in forward and backward: 14 % of the kernels' instructions).
struct Box {
  int32_t row0, row1, col0, col1;
  // sigma above which alpha < 1/255 for sure: log(255 opacity) widened by 1e-5, far more than
  // the rounding of exp, of the product with the opacity and of storing it as float (< 1e-6).
  float sigma_cut;
};

// The tile's footprint of a Gaussian from its image box: make_footprint's result for the tile,
// computed in full (with the chord parameters) only for the footprints that use chords.
template <typename S>
inline Footprint tile_footprint(const Box& box, S mx, S my, S a, S b, S c, S opac, int x0, int x1, int y0,
                                int y1, double extent, int group) {
  Footprint f;
  f.row0 = std::max<int>(box.row0, y0);
  f.row1 = std::min<int>(box.row1, y1);
  f.col0 = std::max<int>(box.col0, x0);
  f.col1 = std::min<int>(box.col1, x1);
  if (f.col1 - f.col0 >= 2 * group) return make_footprint<S>(mx, my, a, b, c, opac, x0, x1, y0, y1, extent, group);
  return f;
}

// The pixel groups of a tile that a footprint touches, for walking them column by column.
// Group columns cg (tile-relative, multiples of `group`) from cg_lo to cg_hi; with chords, row
// r (tile-relative) is visited in group column cg only where its chord [lo[r], hi[r]] meets
// [cg, cg + group) (hi[r] = -1: none), exactly the groups a row-by-row walk would visit.
struct GroupCols {
  int cg_lo = 0, cg_hi = -1;
};
inline GroupCols group_cols(const Footprint& f, int x0, int y0, int group, int* lo, int* hi) {
  GroupCols g;
  if (f.col0 > f.col1) return g;  // (the box can miss the tile's columns)
  if (!f.spans) {
    g.cg_lo = (f.col0 - x0) & -group;  // (col0 >= x0; group is a power of two)
    g.cg_hi = f.col1 - x0;
    return g;
  }
  int first = std::numeric_limits<int>::max(), last = -1;
  for (int row = f.row0; row <= f.row1; ++row) {
    int j0, j1;
    row_span(f, row, j0, j1);
    const int r = row - y0;
    lo[r] = j0 - x0;
    hi[r] = j0 > j1 ? -1 : j1 - x0;
    if (j0 <= j1) {
      first = std::min(first, lo[r]);
      last = std::max(last, hi[r]);
    }
  }
  if (last >= 0) {
    g.cg_lo = first & -group;
    g.cg_hi = last;
  }
  return g;
}
inline bool group_in_row(const Footprint& f, const int* lo, const int* hi, int r, int cg, int group) {
  return !f.spans || (cg <= hi[r] && cg + group > lo[r]);
}

// ---------------------------------------------------------------------------------------
// Shared problem description.
// ---------------------------------------------------------------------------------------

template <typename S>
struct Problem {
  int64_t C, N, D, W, H, ts, TW, TH, M;
  const S* means2d;    // [C*N, 2]
  const S* conics;     // [C*N, 3]
  const S* colors;     // [C*N, D]
  const S* opacities;  // [C*N]
  const S* backgrounds;  // [C, D] or nullptr
  const int32_t* offsets;  // [C*TH*TW]
  const int32_t* ids;      // [M]

  int64_t n_tasks() const { return C * TH * TW; }
  void range(int64_t task, int64_t& start, int64_t& end) const {
    start = offsets[task];
    end = task + 1 < n_tasks() ? static_cast<int64_t>(offsets[task + 1]) : M;
    start = std::min(std::max<int64_t>(start, 0), M);
    end = std::min(std::max<int64_t>(end, start), M);
  }
  // Tile pixel box (inclusive, clipped to the image) of a task.
  void box(int64_t task, int64_t& cam, int& x0, int& x1, int& y0, int& y1) const {
    cam = task / (TH * TW);
    const int64_t t = task % (TH * TW);
    const int64_t ty = t / TW, tx = t % TW;
    x0 = static_cast<int>(tx * ts);
    y0 = static_cast<int>(ty * ts);
    x1 = static_cast<int>(std::min<int64_t>(W, (tx + 1) * ts)) - 1;
    y1 = static_cast<int>(std::min<int64_t>(H, (ty + 1) * ts)) - 1;
  }
  double extent() const { return static_cast<double>(W + H + ts); }
};

// Every Gaussian's image footprint box (see Box), on the task pool.
template <typename S>
std::vector<Box> footprint_boxes(const Problem<S>& p) {
  const int64_t n = p.C * p.N;
  std::vector<Box> boxes(static_cast<size_t>(n));
  if (p.W == 0 || p.H == 0) return boxes;  // no tiles
  const double extent = p.extent();
  const int x1 = static_cast<int>(p.W) - 1, y1 = static_cast<int>(p.H) - 1;
  splat4d_pool::for_each_chunk(n, 4096, at::get_num_threads(), n, 8192, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      const S* co = p.conics + 3 * g;
      const Footprint f = make_footprint<S>(p.means2d[2 * g], p.means2d[2 * g + 1], co[0], co[1], co[2],
                                            p.opacities[g], 0, x1, 0, y1, extent, 1);
      const double cut = std::log(255.0 * static_cast<double>(p.opacities[g])) + 1e-5;  // (unused when empty)
      boxes[g] = {f.row0, f.row1, f.col0, f.col1, static_cast<float>(cut)};
    }
  });
  return boxes;
}

// Runs fn(task) for every (camera, tile) task on the task pool (as many threads as
// torch.get_num_threads()), most intersections first, handing tasks out dynamically (tile costs
// are very uneven).
template <typename S, typename Fn>
void for_each_tile(const Problem<S>& p, const Fn& fn) {
  const int64_t n = p.n_tasks();
  if (n == 0) return;
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::vector<int64_t> cost(n);
  for (int64_t t = 0; t < n; ++t) {
    int64_t s, e;
    p.range(t, s, e);
    cost[t] = e - s;
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t l, int64_t r) { return cost[l] > cost[r]; });
  // Small images run inline: waking the helpers costs more than they do.
  const int64_t work = p.M + n * p.ts * p.ts / 16;
  const int64_t workers =
      std::max<int64_t>(1, std::min<int64_t>({static_cast<int64_t>(at::get_num_threads()), n, work / 4096}));
  splat4d_pool::pool().run(n, static_cast<int>(workers), [&](int64_t i) { fn(order[i]); });
}

}  // namespace
}  // namespace splat4d_raster

// vexp's constants, one vector each (8 lanes: enough for either build). Deliberately not const
// and externally visible: the compiler then keeps them in memory and uses them as memory
// operands in the hot loops instead of re-broadcasting scalar constants there whenever it runs
// out of registers.
namespace splat4d_raster {
#define SPLAT4D_X8(c) {c, c, c, c, c, c, c, c}
alignas(32) float g_exp_consts[13][8] = {
    SPLAT4D_X8(-87.0f), SPLAT4D_X8(88.0f), SPLAT4D_X8(1.44269504088896341f),
    SPLAT4D_X8(12582912.0f), SPLAT4D_X8(0.693359375f), SPLAT4D_X8(-2.12194440e-4f),
    SPLAT4D_X8(1.9875691500e-4f), SPLAT4D_X8(1.3981999507e-3f), SPLAT4D_X8(8.3334519073e-3f),
    SPLAT4D_X8(4.1665795894e-2f), SPLAT4D_X8(1.6666665459e-1f), SPLAT4D_X8(5.0000001201e-1f),
    SPLAT4D_X8(1.0f)};
#undef SPLAT4D_X8
}  // namespace splat4d_raster

// The kernels, twice: once for the baseline instruction set of the compiler flags (SSE2 on
// x86-64), and on x86-64 once more for AVX2 + FMA (8 float lanes; the compiler contracts
// a * b + c into fused multiply-adds), chosen at run time by CPU detection (not -march=native). The file includes
// itself for this (with its absolute path, as torch's JIT build compiles it).
#define SPLAT4D_RASTER_KERNEL_PASS
#define SPLAT4D_ISA base
#define SPLAT4D_FLOAT_LANES 4
#include __FILE__
#undef SPLAT4D_ISA
#undef SPLAT4D_FLOAT_LANES
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SPLAT4D_HAVE_AVX2 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define SPLAT4D_ISA avx2
#define SPLAT4D_FLOAT_LANES 8
#include __FILE__
#undef SPLAT4D_ISA
#undef SPLAT4D_FLOAT_LANES
#pragma GCC pop_options
#endif

namespace splat4d_raster {
namespace {

// ---------------------------------------------------------------------------------------
// Bindings.
// ---------------------------------------------------------------------------------------

bool avx2_available() {
#if defined(SPLAT4D_HAVE_AVX2)
  static const bool yes = [] {
    __builtin_cpu_init();
    // (libgcc also checks that the OS saves the YMM state)
    return __builtin_cpu_supports("avx2") != 0 && __builtin_cpu_supports("fma") != 0;
  }();
  return yes;
#else
  return false;
#endif
}

// The instruction set the float32 kernels run with ("avx2" or "baseline").
std::string simd_isa(bool allow_avx2) { return allow_avx2 && avx2_available() ? "avx2" : "baseline"; }

void check_cpu(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "rasterize_cpu: ", name, " must be a CPU tensor");
  TORCH_CHECK(t.is_contiguous(), "rasterize_cpu: ", name, " must be contiguous");
}

template <typename S>
Problem<S> make_problem(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& colors,
                        const at::Tensor& opacities, const c10::optional<at::Tensor>& backgrounds,
                        int64_t width, int64_t height, int64_t tile_size,
                        const at::Tensor& isect_offsets, const at::Tensor& flatten_ids) {
  check_cpu(means2d, "means2d");
  check_cpu(conics, "conics");
  check_cpu(colors, "colors");
  check_cpu(opacities, "opacities");
  check_cpu(isect_offsets, "isect_offsets");
  check_cpu(flatten_ids, "flatten_ids");
  TORCH_CHECK(isect_offsets.scalar_type() == at::kInt && flatten_ids.scalar_type() == at::kInt,
              "rasterize_cpu: isect_offsets and flatten_ids must be int32");
  TORCH_CHECK(tile_size > 0 && width >= 0 && height >= 0, "rasterize_cpu: bad image/tile size");
  Problem<S> p;
  p.C = means2d.size(0);
  p.N = means2d.size(1);
  p.D = colors.size(-1);
  p.W = width;
  p.H = height;
  p.ts = tile_size;
  p.TW = (width + tile_size - 1) / tile_size;
  p.TH = (height + tile_size - 1) / tile_size;
  p.M = flatten_ids.numel();
  TORCH_CHECK(isect_offsets.numel() == p.C * p.TH * p.TW,
              "rasterize_cpu: isect_offsets must have shape [C, tile_height, tile_width]");
  p.means2d = means2d.data_ptr<S>();
  p.conics = conics.data_ptr<S>();
  p.colors = colors.data_ptr<S>();
  p.opacities = opacities.data_ptr<S>();
  p.backgrounds = nullptr;
  if (backgrounds.has_value() && backgrounds->defined()) {
    check_cpu(*backgrounds, "backgrounds");
    TORCH_CHECK(backgrounds->numel() == p.C * p.D, "rasterize_cpu: backgrounds must be [C, D]");
    p.backgrounds = backgrounds->data_ptr<S>();
  }
  p.offsets = isect_offsets.data_ptr<int32_t>();
  p.ids = flatten_ids.data_ptr<int32_t>();
  for (int64_t t = 0; t < p.n_tasks(); ++t) {
    const int64_t next = t + 1 < p.n_tasks() ? static_cast<int64_t>(p.offsets[t + 1]) : p.M;
    TORCH_CHECK(p.offsets[t] >= 0 && p.offsets[t] <= next && next <= p.M,
                "rasterize_cpu: isect_offsets must be non-decreasing tile starts in [0, M]");
  }
  const int64_t n_gauss = p.C * p.N;
  for (int64_t i = 0; i < p.M; ++i) {
    TORCH_CHECK(p.ids[i] >= 0 && p.ids[i] < n_gauss, "rasterize_cpu: flatten_ids[", i, "] = ",
                p.ids[i], " is out of range for ", n_gauss, " Gaussians");
  }
  return p;
}

std::vector<at::Tensor> rasterize_fwd(const at::Tensor& means2d, const at::Tensor& conics,
                                      const at::Tensor& colors, const at::Tensor& opacities,
                                      const c10::optional<at::Tensor>& backgrounds, int64_t width,
                                      int64_t height, int64_t tile_size,
                                      const at::Tensor& isect_offsets, const at::Tensor& flatten_ids,
                                      bool allow_avx2) {
  const int64_t C = means2d.size(0), D = colors.size(-1);
  auto opts = means2d.options();
  at::Tensor render_colors = at::empty({C, height, width, D}, opts);
  at::Tensor render_alphas = at::empty({C, height, width, 1}, opts);
  at::Tensor T_final = at::empty({C, height, width}, opts);
  at::Tensor last_ids = at::empty({C, height, width}, opts.dtype(at::kInt));
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_cpu_fwd", [&] {
    using S = scalar_t;
    const Problem<S> p = make_problem<S>(means2d, conics, colors, opacities, backgrounds, width,
                                         height, tile_size, isect_offsets, flatten_ids);
    S* oc = render_colors.data_ptr<S>();
    S* oa = render_alphas.data_ptr<S>();
    S* ot = T_final.data_ptr<S>();
    int32_t* ol = last_ids.data_ptr<int32_t>();
    pybind11::gil_scoped_release no_gil;
#if defined(SPLAT4D_HAVE_AVX2)
    if (std::is_same<S, float>::value && allow_avx2 && avx2_available()) {
      avx2::run_forward<S>(p, oc, oa, ot, ol);
      return;
    }
#endif
    base::run_forward<S>(p, oc, oa, ot, ol);
  });
  return {render_colors, render_alphas, T_final, last_ids};
}

// Returns per-Gaussian gradients [C*N, 8 + D]: v_means2d (0:2), v_conics (2:5),
// v_opacities (5), sum over pixels of |v_means2d| (6:8), v_colors (8:).
at::Tensor rasterize_bwd(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& colors,
                         const at::Tensor& opacities, const c10::optional<at::Tensor>& backgrounds,
                         int64_t width, int64_t height, int64_t tile_size,
                         const at::Tensor& isect_offsets, const at::Tensor& flatten_ids,
                         const at::Tensor& T_final, const at::Tensor& last_ids,
                         const at::Tensor& v_render_colors, const at::Tensor& v_render_alphas,
                         bool allow_avx2) {
  const int64_t C = means2d.size(0), N = means2d.size(1), D = colors.size(-1);
  const int64_t M = flatten_ids.numel(), E = kEntRGB + D;
  check_cpu(T_final, "T_final");
  check_cpu(last_ids, "last_ids");
  check_cpu(v_render_colors, "v_render_colors");
  check_cpu(v_render_alphas, "v_render_alphas");
  TORCH_CHECK(v_render_colors.numel() == C * height * width * D &&
                  v_render_alphas.numel() == C * height * width,
              "rasterize_cpu: gradient shapes do not match the image");
  auto opts = means2d.options();
  at::Tensor grads = at::zeros({C * N, E}, opts);
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_cpu_bwd", [&] {
    using S = scalar_t;
    const Problem<S> p = make_problem<S>(means2d, conics, colors, opacities, backgrounds, width,
                                         height, tile_size, isect_offsets, flatten_ids);
    TORCH_CHECK(T_final.scalar_type() == means2d.scalar_type() &&
                    v_render_colors.scalar_type() == means2d.scalar_type() &&
                    v_render_alphas.scalar_type() == means2d.scalar_type() &&
                    last_ids.scalar_type() == at::kInt,
                "rasterize_cpu: dtype mismatch in backward");
    std::vector<S> entries(static_cast<size_t>(M * E));
    const S* Tf = T_final.data_ptr<S>();
    const int32_t* li = last_ids.data_ptr<int32_t>();
    const S* vrc = v_render_colors.data_ptr<S>();
    const S* vra = v_render_alphas.data_ptr<S>();
    S* out = grads.data_ptr<S>();
    pybind11::gil_scoped_release no_gil;
    bool done = false;
#if defined(SPLAT4D_HAVE_AVX2)
    if (std::is_same<S, float>::value && allow_avx2 && avx2_available()) {
      avx2::run_backward<S>(p, Tf, li, vrc, vra, entries.data());
      done = true;
    }
#endif
    if (!done) base::run_backward<S>(p, Tf, li, vrc, vra, entries.data());
    // Deterministic scatter: entries are added in order (the order does not depend on the
    // number of threads).
    for (int64_t i = 0; i < M; ++i) {
      S* dst = out + static_cast<int64_t>(p.ids[i]) * E;
      const S* src = entries.data() + i * E;
      for (int64_t c = 0; c < E; ++c) dst[c] += src[c];
    }
  });
  return grads;
}

// The float32 vectorised exp on a contiguous tensor (for the accuracy test).
at::Tensor vexp_f32(const at::Tensor& x, bool allow_avx2) {
  check_cpu(x, "x");
  TORCH_CHECK(x.scalar_type() == at::kFloat, "vexp: float32 only");
  at::Tensor y = at::empty_like(x);
#if defined(SPLAT4D_HAVE_AVX2)
  if (allow_avx2 && avx2_available()) {
    avx2::vexp_array(x.data_ptr<float>(), y.data_ptr<float>(), x.numel());
    return y;
  }
#endif
  base::vexp_array(x.data_ptr<float>(), y.data_ptr<float>(), x.numel());
  return y;
}

}  // namespace
}  // namespace splat4d_raster

namespace splat4d_tiles {  // tiles_cpu.cpp
std::vector<at::Tensor> isect_tiles(const at::Tensor& means2d, const at::Tensor& radii, const at::Tensor& depths,
                                    int64_t tile_size, int64_t width, int64_t height);
}
namespace splat4d_project {  // project_cpu.cpp
std::vector<at::Tensor> project_fwd(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                                    const at::Tensor& viewmats, const at::Tensor& Ks, int64_t width, int64_t height,
                                    double eps2d, double near_plane, double far_plane, double radius_clip,
                                    bool calc_compensations);
std::vector<at::Tensor> project_bwd(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                                    const at::Tensor& viewmats, const at::Tensor& Ks, int64_t width, int64_t height,
                                    double eps2d, double near_plane, double far_plane, const at::Tensor& radii,
                                    const at::Tensor& v_means2d, const at::Tensor& v_depths,
                                    const at::Tensor& v_conics, const at::Tensor& v_compensations);
}
namespace splat4d_sh {  // sh_cpu.cpp
at::Tensor sh_fwd(int64_t degree, const at::Tensor& means, const at::Tensor& coeffs, const at::Tensor& campos);
std::vector<at::Tensor> sh_bwd(int64_t degree, const at::Tensor& means, const at::Tensor& coeffs,
                               const at::Tensor& campos, const at::Tensor& v_colors);
}
namespace splat4d_fma {  // fma_peak.cpp
double fma_peak_gflops(int64_t threads, int64_t iters);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "splat4d compiled CPU tile rasterizer (gsplat 1.4.0 rasterize_to_pixels semantics)";
  m.def("rasterize_fwd", &splat4d_raster::rasterize_fwd,
        "forward: (render_colors, render_alphas, T_final, last_ids)");
  m.def("rasterize_bwd", &splat4d_raster::rasterize_bwd,
        "backward: per-Gaussian gradients [C*N, 8+D]");
  m.def("vexp_f32", &splat4d_raster::vexp_f32, "the kernels' float32 exp (testing)");
  m.def("simd_isa", &splat4d_raster::simd_isa, "instruction set of the float32 kernels");
  m.def("isect_tiles", &splat4d_tiles::isect_tiles, "tile binning: (isect_offsets, flatten_ids)");
  m.def("project_fwd", &splat4d_project::project_fwd,
        "projection: (radii, means2d, depths, conics, compensations or empty)");
  m.def("project_bwd", &splat4d_project::project_bwd, "projection backward: (v_means, v_quats, v_scales)");
  m.def("sh_fwd", &splat4d_sh::sh_fwd, "view-dependent colours [C, N, 3] from SH (degree <= 3)");
  m.def("sh_bwd", &splat4d_sh::sh_bwd, "SH colours backward: (v_means, v_coeffs)");
  m.def("fma_peak_gflops", &splat4d_fma::fma_peak_gflops, "measured AVX2 FMA GFLOP/s (benchmarks)");
}

#else  // SPLAT4D_RASTER_KERNEL_PASS
// ===== Kernel pass: compiled once per instruction set, in namespace SPLAT4D_ISA. =====

namespace splat4d_raster {
namespace {
namespace SPLAT4D_ISA {

// ---------------------------------------------------------------------------------------
// Small SIMD layer (GCC vector extensions). A group is W horizontally adjacent pixels of a
// tile row: float32 uses W = SPLAT4D_FLOAT_LANES (4 in the baseline build: SSE2 on x86-64,
// NEON on arm64; 8 in the AVX2 build), float64 always 4.
// ---------------------------------------------------------------------------------------

template <typename S>
struct Simd;
template <>
struct Simd<float> {
  static constexpr int W = SPLAT4D_FLOAT_LANES;
  typedef float V __attribute__((vector_size(4 * W)));
  typedef int32_t M __attribute__((vector_size(4 * W)));
  using I = int32_t;
};
template <>
struct Simd<double> {
  static constexpr int W = 4;
  typedef double V __attribute__((vector_size(32)));
  typedef int64_t M __attribute__((vector_size(32)));
  using I = int64_t;
};
template <typename V>
constexpr int lanes() {
  return static_cast<int>(sizeof(V) / sizeof(V{}[0]));
}

template <typename T, typename P>
inline T vload(const P* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <typename T, typename P>
inline void vstore(P* p, const T& v) {
  std::memcpy(p, &v, sizeof(T));
}
#if SPLAT4D_FLOAT_LANES == 8
inline bool any_lane(const Simd<float>::M& m) {
  return _mm256_movemask_ps(reinterpret_cast<__m256>(m)) != 0;
}
#elif defined(__SSE2__)
inline bool any_lane(const Simd<float>::M& m) {
  return _mm_movemask_ps(_mm_castsi128_ps(reinterpret_cast<__m128i>(m))) != 0;
}
#endif
template <typename M>
inline bool any_lane(const M& m) {
  auto r = m[0];
  for (int l = 1; l < lanes<M>(); ++l) r |= m[l];
  return r != 0;
}
template <typename M>
inline int count_lanes(const M& m) {
  int n = 0;
  for (int l = 0; l < lanes<M>(); ++l) n += m[l] != 0;
  return n;
}
// Sum of the lanes, pairwise: the upper half added to the lower half until one lane is left
// (a fixed order: results do not depend on anything but W). Halving whole vectors compiles
// to a few extract/add instructions; lane by lane, it cost 5 % of the backward's instructions.
template <typename V>
inline typename std::remove_reference<decltype(V{}[0])>::type hsum(const V& v) {
  using E = typename std::remove_reference<decltype(V{}[0])>::type;
  if constexpr (lanes<V>() == 2) {
    return v[0] + v[1];
  } else {
    typedef E H __attribute__((vector_size(sizeof(V) / 2)));
    H lo, hi;
    std::memcpy(&lo, &v, sizeof(H));
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(H), sizeof(H));
    return hsum(lo + hi);
  }
}

// exp(x) for float lanes: Cody-Waite reduction and Cephes' expf polynomial; relative error
// < 1.4 ulp over [-87, 0.5] (glibc's expf < 1 ulp; the reference uses torch.exp, gsplat the
// faster and less accurate __expf). Vectorised, since libm's expf is not without -ffast-math,
// and it is the single largest cost of the kernel. x is clamped to [-87, 88]:
// exp(-87) * opacity < 1/255 and sigma < 0 are rejected anyway, so this never changes which
// Gaussians count; NaN stays NaN.
inline Simd<float>::V vexp(const Simd<float>::V& x_in) {
  using V = Simd<float>::V;
  using M = Simd<float>::M;
  const auto k = [](int i) -> const V& { return *reinterpret_cast<const V*>(g_exp_consts[i]); };
  V x = x_in < k(0) ? k(0) : x_in;  // clamp to [-87, 88]
  x = x > k(1) ? k(1) : x;
  const V n = (x * k(2) + k(3)) - k(3);  // round(x / ln 2), 1.5 * 2^23 trick
  V r = x - n * k(4);                    // Cody-Waite: ln 2 = 0.693359375 - 2.12194440e-4
  r = r - n * k(5);
  // P(r) = p0 r^5 + ... + p5 evaluated as (p0 r + p1) z^2 + (p2 r + p3) z + (p4 r + p5), z = r^2
  // (a shorter dependency chain than Horner's rule); exp(r) = P(r) z + r + 1.
  const V z = r * r;
  const V q01 = r * k(6) + k(7);
  const V q23 = r * k(8) + k(9);
  const V q45 = r * k(10) + k(11);
  const V y = ((q01 * z + q23) * z + q45) * z + r + k(12);
  const M bits = (__builtin_convertvector(n, M) + 127) << 23;  // 2^n
  V scale;
  std::memcpy(&scale, &bits, sizeof(V));
  const V e = y * scale;
  return x_in == x_in ? e : x_in;
}
// float64 (used for gradient checks, not speed): exact libm exp per lane.
inline Simd<double>::V vexp(const Simd<double>::V& x) {
  Simd<double>::V e;
  for (int l = 0; l < lanes<Simd<double>::V>(); ++l) e[l] = std::exp(x[l]);
  return e;
}

// c in every lane. Written as one initializer list: GCC turns that into a single broadcast
// (vbroadcastss), but a loop of lane assignments into a chain of lane inserts, which cost 11 %
// of the kernels' instructions (callgrind, 20k / 256×192: the per-row and per-Gaussian splats).
template <typename V, typename T, std::size_t... Lane>
inline V splat_lanes(T c, std::index_sequence<Lane...>) {
  using E = typename std::remove_reference<decltype(V{}[0])>::type;
  return V{((void)Lane, static_cast<E>(c))...};
}
template <typename V, typename T>
inline V splat(T c) {
  return splat_lanes<V>(c, std::make_index_sequence<lanes<V>()>{});
}
// Lanes of v where m is set, +0 elsewhere (bitwise, so NaN/inf in masked-off lanes vanish).
template <typename V, typename M>
inline V masked(const V& v, const M& m) {
  return (V)((M)v & m);
}

// Per-type vector constants.
template <typename S>
struct Consts {
  using V = typename Simd<S>::V;
  const V half = splat<V>(S(0.5)), one = splat<V>(S(1)), zero = splat<V>(S(0));
  const V alpha_max = splat<V>(Limits<S>::kAlphaMax), alpha_min = splat<V>(Limits<S>::kAlphaMin);
  // next_T <= 1e-4 (as double) is next_T <= S(1e-4): float(1e-4) is just below 1e-4.
  const V t_min = splat<V>(static_cast<S>(kTMin));
  const V lane_centres = centres();  // pixel centres within a group: 0.5, 1.5, ...
  static V centres() {
    V v;
    for (int l = 0; l < lanes<V>(); ++l) v[l] = static_cast<S>(l) + S(0.5);
    return v;
  }
  using M = typename Simd<S>::M;
  using I = typename Simd<S>::I;
  const M abs_mask = splat<M>(std::numeric_limits<I>::max());  // every bit but the sign bit
};

// One Gaussian, broadcast to all lanes, and its colour (channel-major broadcast vectors).
template <typename S>
struct GaussLanes {
  using V = typename Simd<S>::V;
  S mx_s, my_s, a_s, b_s, c_s, op_s;  // scalars (footprint, per-row terms)
  V mx, a, b, c, op;
};

// A tile's Gaussians are scattered over the parameter arrays: without prefetching, the cache
// misses of loading the next one were a fifth of the kernels' time (perf, 256×192, 20k).
constexpr int64_t kPrefetchAhead = 8;  // intersections

template <typename S>
inline void prefetch_gaussian(const Problem<S>& p, const Box* boxes, int64_t g, int D) {
  __builtin_prefetch(boxes + g);
  __builtin_prefetch(p.means2d + 2 * g);
  __builtin_prefetch(p.conics + 3 * g);
  __builtin_prefetch(p.conics + 3 * g + 2);
  __builtin_prefetch(p.opacities + g);
  __builtin_prefetch(p.colors + g * D);
}

template <typename S>
inline GaussLanes<S> load_gaussian(const Problem<S>& p, int64_t g, int D, S* colv) {
  using V = typename Simd<S>::V;
  GaussLanes<S> G;
  G.mx_s = p.means2d[2 * g];
  G.my_s = p.means2d[2 * g + 1];
  G.a_s = p.conics[3 * g];
  G.b_s = p.conics[3 * g + 1];
  G.c_s = p.conics[3 * g + 2];
  G.op_s = p.opacities[g];
  G.mx = splat<V>(G.mx_s);
  G.a = splat<V>(G.a_s);
  G.b = splat<V>(G.b_s);
  G.c = splat<V>(G.c_s);
  G.op = splat<V>(G.op_s);
  const S* col = p.colors + g * D;
  for (int d = 0; d < D; ++d) vstore(colv + d * Simd<S>::W, splat<V>(col[d]));
  return G;
}

// sigma and alpha of one Gaussian at a group of pixels, with exactly the scalar kernel's
// operation order: sigma = 0.5 (a dx dx + c dy dy) + b dx dy, alpha = min(0.999, o exp(-sigma)).
// c_dy_dy = (c dy) dy is computed once per row in scalar arithmetic. The callers skip the
// exp (eval_alpha) of groups whose lanes all have sigma > Box::sigma_cut: a fifth of the
// groups in the footprints' bounding boxes lie outside the ellipses.
template <typename S>
inline void eval_sigma(const GaussLanes<S>& G, const Consts<S>& K, const typename Simd<S>::V& px,
                       const typename Simd<S>::V& dy, const typename Simd<S>::V& c_dy_dy,
                       typename Simd<S>::V& dx, typename Simd<S>::V& sigma) {
  dx = G.mx - px;
  sigma = K.half * (G.a * dx * dx + c_dy_dy) + G.b * dx * dy;
}
template <typename S>
inline void eval_alpha(const GaussLanes<S>& G, const Consts<S>& K, const typename Simd<S>::V& sigma,
                       typename Simd<S>::V& vis, typename Simd<S>::V& alpha) {
  using V = typename Simd<S>::V;
  vis = vexp(-sigma);
  const V oe = G.op * vis;
  alpha = oe < K.alpha_max ? oe : K.alpha_max;  // std::min(0.999, oe)
}

// ---------------------------------------------------------------------------------------
// Forward.
// ---------------------------------------------------------------------------------------

template <typename S, int DT>
void forward_impl(const Problem<S>& p, S* out_colors, S* out_alphas, S* out_T, int32_t* out_last) {
  using V = typename Simd<S>::V;
  using M = typename Simd<S>::M;
  using I = typename Simd<S>::I;
  const int D = DT > 0 ? DT : static_cast<int>(p.D);
  constexpr int L = Simd<S>::W;
  const int64_t stride_max = (p.ts + L - 1) / L * L;
  const int64_t P_max = stride_max * p.ts;
  const Consts<S> K;
  const std::vector<Box> box_buf = footprint_boxes(p);
  const Box* boxes = box_buf.data();
  for_each_tile(p, [&](int64_t task) {
    // Per-thread pixel state of one tile, planar (rows padded to whole groups).
    thread_local std::vector<S> T_buf, pix_buf;
    thread_local std::vector<I> last_buf, alive_buf;
    // (Heap buffers of vectors are kept as scalars and accessed with unaligned loads/stores:
    // std::vector does not honour the 32-byte alignment of AVX vector types.)
    thread_local std::vector<S> colv_buf;
    thread_local std::vector<int> span_buf;  // chords of the current footprint (group_cols)
    if (static_cast<int64_t>(span_buf.size()) < 2 * p.ts) span_buf.resize(2 * p.ts);
    if (static_cast<int64_t>(T_buf.size()) < P_max) T_buf.resize(P_max);
    if (static_cast<int64_t>(pix_buf.size()) < P_max * D) pix_buf.resize(P_max * D);
    if (static_cast<int64_t>(last_buf.size()) < P_max) last_buf.resize(P_max);
    if (static_cast<int64_t>(alive_buf.size()) < P_max) alive_buf.resize(P_max);
    if (static_cast<int64_t>(colv_buf.size()) < D * L) colv_buf.resize(D * L);
    S* T = T_buf.data();
    S* pix = pix_buf.data();  // [D][P]
    I* last = last_buf.data();
    I* alive = alive_buf.data();  // -1 while the pixel is still compositing
    S* colv = colv_buf.data();  // [D][L] the current Gaussian's colour, broadcast
    int* span_lo = span_buf.data();
    int* span_hi = span_buf.data() + p.ts;

    int64_t cam;
    int x0, x1, y0, y1;
    p.box(task, cam, x0, x1, y0, y1);
    const int tw = x1 - x0 + 1, th = y1 - y0 + 1;
    const int stride = (tw + L - 1) / L * L;
    const int P = stride * th;
    std::fill(T, T + P, S(1));
    std::fill(pix, pix + static_cast<int64_t>(P) * D, S(0));
    std::fill(last, last + P, I(-1));
    for (int r = 0; r < th; ++r) {
      for (int c = 0; c < stride; ++c) alive[r * stride + c] = c < tw ? I(-1) : I(0);
    }
    int n_alive = tw * th;

    int64_t start, end;
    p.range(task, start, end);
    const double extent = p.extent();
    for (int64_t k = 0; k < end - start && n_alive > 0; ++k) {
      if (k + kPrefetchAhead < end - start) prefetch_gaussian(p, boxes, p.ids[start + k + kPrefetchAhead], D);
      const int64_t g = p.ids[start + k];
      const GaussLanes<S> G = load_gaussian(p, g, D, colv);
      const V cut = splat<V>(static_cast<S>(boxes[g].sigma_cut));
      const Footprint f = tile_footprint<S>(boxes[g], G.mx_s, G.my_s, G.a_s, G.b_s, G.c_s, G.op_s, x0, x1, y0, y1,
                                         extent, L);
      const M k_lanes = splat<M>(static_cast<I>(k));
      // Group columns outer, rows inner: a tile row has only a couple of groups (two at 16
      // pixels), so the set-up per group column costs less than it did per row.
      const GroupCols gc = group_cols(f, x0, y0, L, span_lo, span_hi);
      for (int cg = gc.cg_lo; cg <= gc.cg_hi; cg += L) {
        const V px = splat<V>(static_cast<S>(x0 + cg)) + K.lane_centres;  // exact: small integers + 0.5
        for (int row = f.row0; row <= f.row1; ++row) {
          if (!group_in_row(f, span_lo, span_hi, row - y0, cg, L)) continue;
          const int q = (row - y0) * stride + cg;
          const M alive_q = vload<M>(alive + q);
          if (!any_lane(alive_q)) continue;
          const S dy_s = G.my_s - (static_cast<S>(row) + S(0.5));
          const V dy = splat<V>(dy_s), c_dy_dy = splat<V>(G.c_s * dy_s * dy_s);
          V dx, sigma, vis, alpha;
          eval_sigma(G, K, px, dy, c_dy_dy, dx, sigma);
          if (!any_lane(alive_q & (sigma <= cut))) continue;  // (NaN sigma is not skipped)
          eval_alpha(G, K, sigma, vis, alpha);
          const M valid = alive_q & ~(sigma < K.zero) & ~(alpha < K.alpha_min);
          if (!any_lane(valid)) continue;
          const V Tq = vload<V>(T + q);
          const V next_T = Tq * (K.one - alpha);
          const M stop = valid & (next_T <= K.t_min);  // this pixel is done (exclusive)
          const M use = valid & ~stop;
          if (any_lane(stop)) {
            vstore(alive + q, alive_q & ~stop);
            n_alive -= count_lanes(stop);
          }
          const V w = alpha * Tq;
          for (int d = 0; d < D; ++d) {
            S* pd = pix + static_cast<int64_t>(d) * P + q;
            vstore(pd, vload<V>(pd) + masked(vload<V>(colv + d * L) * w, use));  // pix += c alpha T
          }
          vstore(T + q, use ? next_T : Tq);
          vstore(last + q, use ? k_lanes : vload<M>(last + q));
        }
      }
    }

    const S* bg = p.backgrounds != nullptr ? p.backgrounds + cam * D : nullptr;
    for (int r = 0; r < th; ++r) {
      for (int c = 0; c < tw; ++c) {
        const int q = r * stride + c;
        const int64_t o = (cam * p.H + (y0 + r)) * p.W + (x0 + c);
        S* oc = out_colors + o * D;
        for (int d = 0; d < D; ++d) {
          const S v = pix[static_cast<int64_t>(d) * P + q];
          oc[d] = bg != nullptr ? v + T[q] * bg[d] : v;
        }
        out_alphas[o] = S(1) - T[q];
        out_T[o] = T[q];
        out_last[o] = static_cast<int32_t>(last[q]);
      }
    }
  });
}

// ---------------------------------------------------------------------------------------
// Backward.
// ---------------------------------------------------------------------------------------

template <typename S, int DT>
void backward_impl(const Problem<S>& p, const S* T_final, const int32_t* last_ids,
                   const S* v_render_colors, const S* v_render_alphas, S* entries) {
  using V = typename Simd<S>::V;
  using M = typename Simd<S>::M;
  using I = typename Simd<S>::I;
  const int D = DT > 0 ? DT : static_cast<int>(p.D);
  const int64_t E = kEntRGB + D;  // entry row length
  constexpr int L = Simd<S>::W;
  const int64_t stride_max = (p.ts + L - 1) / L * L;
  const int64_t P_max = stride_max * p.ts;
  const Consts<S> K;
  const std::vector<Box> box_buf = footprint_boxes(p);
  const Box* boxes = box_buf.data();
  for_each_tile(p, [&](int64_t task) {
    thread_local std::vector<S> T_buf, buf_buf, vc_buf, bgt_buf;
    thread_local std::vector<S> acc_buf, colv_buf;  // (scalars: see forward_impl)
    thread_local std::vector<I> last_buf;
    thread_local std::vector<int> span_buf;  // (see forward_impl)
    if (static_cast<int64_t>(span_buf.size()) < 2 * p.ts) span_buf.resize(2 * p.ts);
    if (static_cast<int64_t>(T_buf.size()) < P_max) T_buf.resize(P_max);
    if (static_cast<int64_t>(bgt_buf.size()) < P_max) bgt_buf.resize(P_max);
    if (static_cast<int64_t>(last_buf.size()) < P_max) last_buf.resize(P_max);
    if (static_cast<int64_t>(buf_buf.size()) < P_max * D) buf_buf.resize(P_max * D);
    if (static_cast<int64_t>(vc_buf.size()) < P_max * D) vc_buf.resize(P_max * D);
    if (static_cast<int64_t>(acc_buf.size()) < D * L) acc_buf.resize(D * L);
    if (static_cast<int64_t>(colv_buf.size()) < D * L) colv_buf.resize(D * L);
    S* T = T_buf.data();      // transmittance behind the current Gaussian
    S* bgt = bgt_buf.data();  // T_final (v_alpha_out - <background, v_colour_out>)
    I* last = last_buf.data();
    S* buf = buf_buf.data();  // [D][P] colour accumulated behind the current Gaussian
    S* vc = vc_buf.data();    // [D][P] v_render_colors
    S* v_rgb = acc_buf.data();  // [D][L] per-lane sums of v_colors for the current Gaussian
    S* colv = colv_buf.data();   // [D][L] the current Gaussian's colour, broadcast
    int* span_lo = span_buf.data();
    int* span_hi = span_buf.data() + p.ts;

    int64_t cam;
    int x0, x1, y0, y1;
    p.box(task, cam, x0, x1, y0, y1);
    int64_t start, end;
    p.range(task, start, end);
    const int64_t n = end - start;
    if (n == 0) return;
    const int tw = x1 - x0 + 1, th = y1 - y0 + 1;
    const int stride = (tw + L - 1) / L * L;
    const int P = stride * th;

    const S* bg = p.backgrounds != nullptr ? p.backgrounds + cam * D : nullptr;
    int64_t k_max = -1;
    for (int r = 0; r < th; ++r) {
      for (int c = 0; c < stride; ++c) {
        const int q = r * stride + c;
        if (c >= tw) {  // padding lanes: never reached by a Gaussian
          T[q] = S(1);
          last[q] = I(-1);
          bgt[q] = S(0);
          for (int d = 0; d < D; ++d) vc[static_cast<int64_t>(d) * P + q] = buf[static_cast<int64_t>(d) * P + q] = S(0);
          continue;
        }
        const int64_t o = (cam * p.H + (y0 + r)) * p.W + (x0 + c);
        const S Tf = T_final[o];
        T[q] = Tf;
        last[q] = last_ids[o];
        k_max = std::max<int64_t>(k_max, last_ids[o]);
        S bg_dot = S(0);
        for (int d = 0; d < D; ++d) {
          const S v = v_render_colors[o * D + d];
          vc[static_cast<int64_t>(d) * P + q] = v;
          buf[static_cast<int64_t>(d) * P + q] = S(0);
          if (bg != nullptr) bg_dot += bg[d] * v;
        }
        bgt[q] = Tf * (v_render_alphas[o] - bg_dot);
      }
    }
    k_max = std::min(k_max, n - 1);
    // Entries behind every pixel's last contributor get no gradient.
    std::fill(entries + (start + k_max + 1) * E, entries + end * E, S(0));

    const double extent = p.extent();
    for (int64_t k = k_max; k >= 0; --k) {
      if (k >= kPrefetchAhead) prefetch_gaussian(p, boxes, p.ids[start + k - kPrefetchAhead], D);
      const int64_t g = p.ids[start + k];
      const GaussLanes<S> G = load_gaussian(p, g, D, colv);
      const V cut = splat<V>(static_cast<S>(boxes[g].sigma_cut));
      V v_mx = K.zero, v_my = K.zero, v_a = K.zero, v_b = K.zero, v_c = K.zero, v_op = K.zero;
      V abs_x = K.zero, abs_y = K.zero;
      std::fill(v_rgb, v_rgb + D * L, S(0));
      const M k_lanes = splat<M>(static_cast<I>(k));
      const V neg_op = -G.op;

      const Footprint f = tile_footprint<S>(boxes[g], G.mx_s, G.my_s, G.a_s, G.b_s, G.c_s, G.op_s, x0, x1, y0, y1,
                                         extent, L);
      const GroupCols gc = group_cols(f, x0, y0, L, span_lo, span_hi);  // (see forward_impl)
      for (int cg = gc.cg_lo; cg <= gc.cg_hi; cg += L) {
        const V px = splat<V>(static_cast<S>(x0 + cg)) + K.lane_centres;
        for (int row = f.row0; row <= f.row1; ++row) {
          if (!group_in_row(f, span_lo, span_hi, row - y0, cg, L)) continue;
          const int q = (row - y0) * stride + cg;
          const M reached = vload<M>(last + q) >= k_lanes;
          if (!any_lane(reached)) continue;
          const S dy_s = G.my_s - (static_cast<S>(row) + S(0.5));
          const V dy = splat<V>(dy_s), c_dy_dy = splat<V>(G.c_s * dy_s * dy_s);
          const V b_dy = splat<V>(G.b_s * dy_s), c_dy = splat<V>(G.c_s * dy_s);
          V dx, sigma, vis, alpha;
          eval_sigma(G, K, px, dy, c_dy_dy, dx, sigma);
          if (!any_lane(reached & (sigma <= cut))) continue;  // (see eval_sigma)
          eval_alpha(G, K, sigma, vis, alpha);
          const M valid = reached & ~(sigma < K.zero) & ~(alpha < K.alpha_min);
          if (!any_lane(valid)) continue;
          const V ra = K.one / (K.one - alpha);
          const V T_behind = vload<V>(T + q);
          const V Tq = T_behind * ra;  // transmittance in front of this Gaussian
          vstore(T + q, valid ? Tq : T_behind);
          const V fac = alpha * Tq;
          V v_alpha = K.zero;
          for (int d = 0; d < D; ++d) {
            const int64_t qd = static_cast<int64_t>(d) * P + q;
            const V vq = vload<V>(vc + qd);
            const V bq = vload<V>(buf + qd);
            const V cd = vload<V>(colv + d * L);
            vstore(v_rgb + d * L, vload<V>(v_rgb + d * L) + masked(fac * vq, valid));
            v_alpha += (cd * Tq - bq * ra) * vq;
            vstore(buf + qd, bq + masked(cd * fac, valid));
          }
          v_alpha += ra * vload<V>(bgt + q);
          const M unclamped = valid & (G.op * vis <= K.alpha_max);
          const V v_sigma = neg_op * vis * v_alpha;
          const V gx = v_sigma * (G.a * dx + b_dy);
          const V gy = v_sigma * (G.b * dx + c_dy);
          // (the 1/2 of v_a and v_c is applied to the sums: scaling by 2^-1 is exact)
          v_a += masked(v_sigma * dx * dx, unclamped);
          v_b += masked(v_sigma * dx * dy, unclamped);
          v_c += masked(v_sigma * dy * dy, unclamped);
          v_mx += masked(gx, unclamped);
          v_my += masked(gy, unclamped);
          abs_x += masked(gx, unclamped & K.abs_mask);  // |gx|: sign bit cleared
          abs_y += masked(gy, unclamped & K.abs_mask);
          v_op += masked(vis * v_alpha, unclamped);
        }
      }
      S* e = entries + (start + k) * E;
      e[kEntXY] = hsum(v_mx);
      e[kEntXY + 1] = hsum(v_my);
      e[kEntCon] = S(0.5) * hsum(v_a);
      e[kEntCon + 1] = hsum(v_b);
      e[kEntCon + 2] = S(0.5) * hsum(v_c);
      e[kEntOp] = hsum(v_op);
      e[kEntAbs] = hsum(abs_x);
      e[kEntAbs + 1] = hsum(abs_y);
      for (int d = 0; d < D; ++d) e[kEntRGB + d] = hsum(vload<V>(v_rgb + d * L));
    }
  });
}

// ---------------------------------------------------------------------------------------
// Entry points of this build (float32 specialised for 1 to 4 channels; float64, used for
// gradient checks, runs the generic code).
// ---------------------------------------------------------------------------------------

template <typename S>
void run_forward(const Problem<S>& p, S* oc, S* oa, S* ot, int32_t* ol) {
  if constexpr (std::is_same<S, float>::value) {
    switch (p.D) {
      case 1: forward_impl<S, 1>(p, oc, oa, ot, ol); return;
      case 2: forward_impl<S, 2>(p, oc, oa, ot, ol); return;
      case 3: forward_impl<S, 3>(p, oc, oa, ot, ol); return;
      case 4: forward_impl<S, 4>(p, oc, oa, ot, ol); return;
      default: forward_impl<S, 0>(p, oc, oa, ot, ol); return;
    }
  } else {
    forward_impl<S, 0>(p, oc, oa, ot, ol);
  }
}

template <typename S>
void run_backward(const Problem<S>& p, const S* Tf, const int32_t* li, const S* vrc, const S* vra,
                  S* entries) {
  if constexpr (std::is_same<S, float>::value) {
    switch (p.D) {
      case 1: backward_impl<S, 1>(p, Tf, li, vrc, vra, entries); return;
      case 2: backward_impl<S, 2>(p, Tf, li, vrc, vra, entries); return;
      case 3: backward_impl<S, 3>(p, Tf, li, vrc, vra, entries); return;
      case 4: backward_impl<S, 4>(p, Tf, li, vrc, vra, entries); return;
      default: backward_impl<S, 0>(p, Tf, li, vrc, vra, entries); return;
    }
  } else {
    backward_impl<S, 0>(p, Tf, li, vrc, vra, entries);
  }
}

// The float32 exp of this build on n values (for the accuracy test).
void vexp_array(const float* in, float* out, int64_t n) {
  using V = Simd<float>::V;
  constexpr int W = Simd<float>::W;
  for (int64_t i = 0; i < n; i += W) {
    V v = {};
    for (int l = 0; l < W && i + l < n; ++l) v[l] = in[i + l];
    const V e = vexp(v);
    for (int l = 0; l < W && i + l < n; ++l) out[i + l] = e[l];
  }
}

}  // namespace SPLAT4D_ISA
}  // namespace
}  // namespace splat4d_raster

#endif  // SPLAT4D_RASTER_KERNEL_PASS
