// Tile binning on the CPU: the same result as splat4d/tiles.py's PyTorch version (gsplat
// 1.4.0's isect_tiles + isect_offset_encode, packed=False), bit for bit, in linear time.
//
// The PyTorch version enumerates every (Gaussian, tile) intersection and sorts all of them
// twice (by depth, then stably by tile): at 1352×1014 with 100k Gaussians that is ~5M entries
// and over a second. Here the Gaussians alone are sorted by (depth, index) once, then each is
// appended to the buckets of the tiles it covers in that order (a counting sort by tile), which
// gives every tile's list front to back with ties in index order, exactly as the two stable
// sorts do.

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

namespace splat4d_tiles {
namespace {

// The tile range [lo, hi) along one axis, with tiles.py's float32 arithmetic:
// lo = min(max(floor(x / ts - r / ts), 0), n), hi = min(max(ceil(x / ts + r / ts), 0), n).
// Returns false for a NaN centre (PyTorch's casts then give an empty range too).
inline bool axis_range(float x, float r, float ts, int64_t n, int64_t& lo, int64_t& hi) {
  const float c = x / ts, rr = r / ts;
  const float f = std::floor(c - rr), e = std::ceil(c + rr);
  if (std::isnan(f) || std::isnan(e)) return false;
  const auto to_tile = [n](float v) -> int64_t {
    if (!(v > 0.0f)) return 0;
    return v >= static_cast<float>(n) ? n : static_cast<int64_t>(v);
  };
  lo = to_tile(f);
  hi = to_tile(e);
  return true;
}

// torch.sort's ascending order: NaN after everything else.
template <typename S>
inline bool depth_less(S a, S b) {
  return a < b || (!std::isnan(a) && std::isnan(b));
}

template <typename S>
void bin(const float* means2d, const int32_t* radii, const S* depths, int64_t C, int64_t N,
         int64_t tile_size, int64_t width, int64_t height, std::vector<int64_t>& tile_start,
         std::vector<int32_t>& ids) {
  const int64_t tw = (width + tile_size - 1) / tile_size, th = (height + tile_size - 1) / tile_size;
  const int64_t n_tiles = tw * th;
  const float ts = static_cast<float>(tile_size);
  // Tile rectangle of every Gaussian that covers any tile.
  struct Rect {
    int32_t g;
    int32_t x0, x1, y0, y1;
  };
  std::vector<Rect> rects;
  rects.reserve(static_cast<size_t>(C * N));
  std::vector<int64_t> count(static_cast<size_t>(C * n_tiles) + 1, 0);
  for (int64_t g = 0; g < C * N; ++g) {
    if (radii[g] <= 0) continue;
    const float r = static_cast<float>(radii[g]);
    int64_t x0, x1, y0, y1;
    if (!axis_range(means2d[2 * g], r, ts, tw, x0, x1) || !axis_range(means2d[2 * g + 1], r, ts, th, y0, y1))
      continue;
    if (x1 <= x0 || y1 <= y0) continue;
    rects.push_back({static_cast<int32_t>(g), static_cast<int32_t>(x0), static_cast<int32_t>(x1),
                     static_cast<int32_t>(y0), static_cast<int32_t>(y1)});
    const int64_t base = (g / N) * n_tiles;
    for (int64_t ty = y0; ty < y1; ++ty)
      for (int64_t tx = x0; tx < x1; ++tx) ++count[base + ty * tw + tx + 1];
  }
  std::partial_sum(count.begin(), count.end(), count.begin());
  const int64_t M = count.back();
  TORCH_CHECK(M <= std::numeric_limits<int32_t>::max(), "isect_tiles: ", M,
              " tile intersections do not fit the int32 offsets");
  // Front to back; equal depths keep index order (the rects are in index order).
  std::stable_sort(rects.begin(), rects.end(),
                   [depths](const Rect& a, const Rect& b) { return depth_less(depths[a.g], depths[b.g]); });
  tile_start.assign(count.begin(), count.end() - 1);
  ids.resize(static_cast<size_t>(M));
  std::vector<int64_t>& cursor = count;  // reused: count[t] is now the start of tile t
  for (const Rect& rc : rects) {
    const int64_t base = (rc.g / N) * n_tiles;
    for (int64_t ty = rc.y0; ty < rc.y1; ++ty)
      for (int64_t tx = rc.x0; tx < rc.x1; ++tx) ids[cursor[base + ty * tw + tx]++] = rc.g;
  }
}

}  // namespace

// isect_offsets [C, tile_h, tile_w] int32 and flatten_ids [M] int32, as tiles.intersect_tiles.
std::vector<at::Tensor> isect_tiles(const at::Tensor& means2d, const at::Tensor& radii, const at::Tensor& depths,
                                    int64_t tile_size, int64_t width, int64_t height) {
  TORCH_CHECK(means2d.device().is_cpu() && radii.device().is_cpu() && depths.device().is_cpu(),
              "isect_tiles: CPU tensors only");
  TORCH_CHECK(tile_size > 0 && width >= 0 && height >= 0, "isect_tiles: bad image/tile size");
  TORCH_CHECK(means2d.dim() == 3 && means2d.size(2) == 2, "isect_tiles: means2d must be [C, N, 2]");
  const int64_t C = means2d.size(0), N = means2d.size(1);
  TORCH_CHECK(radii.sizes() == at::IntArrayRef({C, N}) && depths.sizes() == radii.sizes(),
              "isect_tiles: radii and depths must be [C, N]");
  TORCH_CHECK(C * N <= std::numeric_limits<int32_t>::max(), "isect_tiles: too many Gaussians");
  const at::Tensor m = means2d.to(at::kFloat).contiguous();
  const at::Tensor r = radii.to(at::kInt).contiguous();
  const bool dbl = depths.scalar_type() == at::kDouble;
  const at::Tensor d = depths.to(dbl ? at::kDouble : at::kFloat).contiguous();
  std::vector<int64_t> tile_start;
  std::vector<int32_t> ids;
  if (dbl)
    bin<double>(m.data_ptr<float>(), r.data_ptr<int32_t>(), d.data_ptr<double>(), C, N, tile_size, width, height,
                tile_start, ids);
  else
    bin<float>(m.data_ptr<float>(), r.data_ptr<int32_t>(), d.data_ptr<float>(), C, N, tile_size, width, height,
               tile_start, ids);
  const int64_t tw = (width + tile_size - 1) / tile_size, th = (height + tile_size - 1) / tile_size;
  at::Tensor offsets = at::empty({C, th, tw}, at::kInt);
  std::copy(tile_start.begin(), tile_start.end(), offsets.data_ptr<int32_t>());
  at::Tensor flatten_ids = at::empty({static_cast<int64_t>(ids.size())}, at::kInt);
  std::copy(ids.begin(), ids.end(), flatten_ids.data_ptr<int32_t>());
  return {offsets, flatten_ids};
}

}  // namespace splat4d_tiles
