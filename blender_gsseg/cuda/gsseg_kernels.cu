// gsseg CUDA kernels: projection, tile binning, per-label accumulation and the two renders.
//
// Loaded by blender_gsseg/core/cuda_backend.py with cupy.RawModule (NVRTC): no #include, extern "C" entry points
// (templates only behind them), and compiled with --fmad=false so that every float32 operation rounds as the
// numpy reference does (blender_gsseg/core/projection.py, blender_gsseg/core/rasterize.py). The arithmetic
// below follows those files operation by operation; where the order of a sum matters it is written out.
//
// Pipeline for one camera (the host drives it):
//   gsseg_project            per Gaussian: 2D mean, conic, radius, tile rectangle, depth key
//   (cupy.sort)              depth keys = depth bits << 32 | Gaussian index: unique, so no stability is needed;
//                            equal depths come out in Gaussian order, as the CPU's stable argsort gives
//   gsseg_gather_touched     tiles touched, in depth order; the number of visible Gaussians V
//   (cupy.cumsum)            inclusive offsets
//   gsseg_duplicate_keys*    one key per (tile, Gaussian): tile * V + depth rank; unique again
//   (cupy.sort)
//   gsseg_tile_ranges*       [start, end) of every tile in the sorted list, Gaussian id per entry
//   gsseg_accumulate_f32/f64 one 16x16 block per tile: front-to-back walk, weights summed per (label, Gaussian)
//   gsseg_render_colour      same walk, RGB + alpha          (the speed yardstick)
//   gsseg_render_alpha_depth same walk, sum w and sum w * z  (novel-view masks)
//
// The host emulator in tests/cuda_emulator/ compiles this file as plain C++ to run the kernels on a CPU in tests.

// ----- constants; the host passes projection.py's values with -D, these defaults are the same numbers
#ifndef GSSEG_NEAR_PLANE
#define GSSEG_NEAR_PLANE 0.2f
#endif
#ifndef GSSEG_LOW_PASS
#define GSSEG_LOW_PASS 0.3f
#endif
#ifndef GSSEG_MIN_EIGEN_GAP
#define GSSEG_MIN_EIGEN_GAP 0.1f
#endif
#ifndef GSSEG_RADIUS_SIGMAS
#define GSSEG_RADIUS_SIGMAS 3.0f
#endif
#ifndef GSSEG_MAX_ALPHA
#define GSSEG_MAX_ALPHA 0.99f
#endif
#ifndef GSSEG_MIN_ALPHA
#define GSSEG_MIN_ALPHA 0.003921568859368563f
#endif
#ifndef GSSEG_MIN_TRANSMITTANCE
#define GSSEG_MIN_TRANSMITTANCE 0.0001f
#endif

#define GSSEG_TILE 16        // tile side = block side; projection.TILE_SIZE
#define GSSEG_BLOCK 256      // threads per block = pixels per tile = Gaussians per shared batch
#define GSSEG_MAX_SLOTS 8    // distinct labels a tile may hold for the aggregated path
#define GSSEG_FULL_MASK 0xffffffffu
#define GSSEG_INVALID_KEY 0xffffffffffffffffull

// Camera parameter block (float32), built by cuda_backend._camera_params.
#define CAM_R 0          // 9 floats: world-to-camera rotation, row-major
#define CAM_T 9          // 3 floats: translation
#define CAM_FX 12
#define CAM_FY 13
#define CAM_CX 14
#define CAM_CY 15
#define CAM_LIM_X_NEG 16 // clamp limits of x/z and y/z (projection.py's lim_*)
#define CAM_LIM_X_POS 17
#define CAM_LIM_Y_NEG 18
#define CAM_LIM_Y_POS 19
#define CAM_SIZE 20

// Vector types of our own (NVRTC's builtin ones are not needed), aligned for 8- and 16-byte loads.
struct alignas(8) gs_float2 {
    float x, y;
};
struct alignas(16) gs_float4 {
    float x, y, z, w;
};
struct alignas(8) gs_int2 {
    int x, y;
};
struct alignas(16) gs_int4 {
    int x, y, z, w;
};
__device__ __forceinline__ gs_float2 gs_make_float2(float x, float y) {
    gs_float2 r;
    r.x = x;
    r.y = y;
    return r;
}
__device__ __forceinline__ gs_float4 gs_make_float4(float x, float y, float z, float w) {
    gs_float4 r;
    r.x = x;
    r.y = y;
    r.z = z;
    r.w = w;
    return r;
}
__device__ __forceinline__ gs_int4 gs_make_int4(int x, int y, int z, int w) {
    gs_int4 r;
    r.x = x;
    r.y = y;
    r.z = z;
    r.w = w;
    return r;
}

__device__ __forceinline__ int gsseg_imin(int a, int b) { return a < b ? a : b; }

__device__ __forceinline__ float gsseg_clampf(float x, float lo, float hi) {
    // numpy.clip(x, lo, hi) == minimum(maximum(x, lo), hi); fmaxf/fminf drop a NaN where numpy keeps it, which
    // only matters for NaN inputs (Gaussians.check() refuses those).
    return fminf(fmaxf(x, lo), hi);
}

// ---------------------------------------------------------------------------------------------------------
// 3D covariance, once per scene: projection.covariances_3d (quaternion_to_matrix, M = R S, M M^T).
// cov6 = (c00, c01, c02, c11, c12, c22); M M^T is exactly symmetric in float32 (same products, same order).
extern "C" __global__ void gsseg_cov3d(int n, const float* __restrict__ scales, const float* __restrict__ rotations,
                                       float* __restrict__ cov6) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float r = rotations[4 * (size_t)i + 0], x = rotations[4 * (size_t)i + 1];
    const float y = rotations[4 * (size_t)i + 2], z = rotations[4 * (size_t)i + 3];
    float rot[3][3];
    rot[0][0] = 1.0f - 2.0f * (y * y + z * z);
    rot[0][1] = 2.0f * (x * y - r * z);
    rot[0][2] = 2.0f * (x * z + r * y);
    rot[1][0] = 2.0f * (x * y + r * z);
    rot[1][1] = 1.0f - 2.0f * (x * x + z * z);
    rot[1][2] = 2.0f * (y * z - r * x);
    rot[2][0] = 2.0f * (x * z - r * y);
    rot[2][1] = 2.0f * (y * z + r * x);
    rot[2][2] = 1.0f - 2.0f * (x * x + y * y);
    float m[3][3];
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) m[a][b] = rot[a][b] * scales[3 * (size_t)i + b];
    float* out = cov6 + 6 * (size_t)i;
    out[0] = (m[0][0] * m[0][0] + m[0][1] * m[0][1]) + m[0][2] * m[0][2];
    out[1] = (m[0][0] * m[1][0] + m[0][1] * m[1][1]) + m[0][2] * m[1][2];
    out[2] = (m[0][0] * m[2][0] + m[0][1] * m[2][1]) + m[0][2] * m[2][2];
    out[3] = (m[1][0] * m[1][0] + m[1][1] * m[1][1]) + m[1][2] * m[1][2];
    out[4] = (m[1][0] * m[2][0] + m[1][1] * m[2][1]) + m[1][2] * m[2][2];
    out[5] = (m[2][0] * m[2][0] + m[2][1] * m[2][1]) + m[2][2] * m[2][2];
}

// ---------------------------------------------------------------------------------------------------------
// Projection: projection.project_gaussians for one Gaussian. `include` may be null (all Gaussians); where it is
// given, Gaussians with include[i] == 0 are culled (absent from the render, as rasterize's `include`).
extern "C" __global__ void gsseg_project(
    int n, const float* __restrict__ means, const float* __restrict__ cov6, const float* __restrict__ opacities,
    const unsigned char* __restrict__ include, const float* __restrict__ cam, int grid_x, int grid_y,
    gs_float2* __restrict__ means2d, gs_float4* __restrict__ conic_opacity, float* __restrict__ depths,
    gs_int4* __restrict__ rects, int* __restrict__ touched, unsigned long long* __restrict__ depth_keys) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float px = means[3 * (size_t)i + 0], py = means[3 * (size_t)i + 1], pz = means[3 * (size_t)i + 2];
    const float* rot = cam + CAM_R;
    // t = means @ rot.T + trans
    const float t0 = ((px * rot[0] + py * rot[1]) + pz * rot[2]) + cam[CAM_T + 0];
    const float t1 = ((px * rot[3] + py * rot[4]) + pz * rot[5]) + cam[CAM_T + 1];
    const float t2 = ((px * rot[6] + py * rot[7]) + pz * rot[8]) + cam[CAM_T + 2];
    depths[i] = t2;
    touched[i] = 0;
    depth_keys[i] = GSSEG_INVALID_KEY;
    if (!(t2 > GSSEG_NEAR_PLANE)) return;  // in_front (a NaN depth is culled too)
    if (include != 0 && include[i] == 0) return;
    const float z = t2;
    const float fx = cam[CAM_FX], fy = cam[CAM_FY];
    const float tx = gsseg_clampf(t0 / z, -cam[CAM_LIM_X_NEG], cam[CAM_LIM_X_POS]) * z;
    const float ty = gsseg_clampf(t1 / z, -cam[CAM_LIM_Y_NEG], cam[CAM_LIM_Y_POS]) * z;
    // Jacobian rows (j01 = j10 = 0)
    const float j00 = fx / z, j02 = -((fx * tx) / (z * z));
    const float j11 = fy / z, j12 = -((fy * ty) / (z * z));
    // tmat = jac @ rot  (the zero terms add +-0, which changes nothing below)
    float tm[2][3];
    for (int k = 0; k < 3; k++) {
        tm[0][k] = j00 * rot[k] + j02 * rot[6 + k];
        tm[1][k] = j11 * rot[3 + k] + j12 * rot[6 + k];
    }
    const float* c6 = cov6 + 6 * (size_t)i;
    const float cv[3][3] = {{c6[0], c6[1], c6[2]}, {c6[1], c6[3], c6[4]}, {c6[2], c6[4], c6[5]}};
    // (tmat @ cov) @ tmat.T
    float mt[2][3];
    for (int a = 0; a < 2; a++)
        for (int k = 0; k < 3; k++) mt[a][k] = (tm[a][0] * cv[0][k] + tm[a][1] * cv[1][k]) + tm[a][2] * cv[2][k];
    const float cov00 = (mt[0][0] * tm[0][0] + mt[0][1] * tm[0][1]) + mt[0][2] * tm[0][2];
    const float cov01 = (mt[0][0] * tm[1][0] + mt[0][1] * tm[1][1]) + mt[0][2] * tm[1][2];
    const float cov11 = (mt[1][0] * tm[1][0] + mt[1][1] * tm[1][1]) + mt[1][2] * tm[1][2];
    const float ca = cov00 + GSSEG_LOW_PASS, cb = cov01, cc = cov11 + GSSEG_LOW_PASS;
    const float det = ca * cc - cb * cb;
    if (det == 0.0f) return;
    const float mid = 0.5f * (ca + cc);
    const float root = sqrtf(fmaxf(GSSEG_MIN_EIGEN_GAP, mid * mid - det));
    const float lambda_max = fmaxf(mid + root, mid - root);
    const float radius_f = ceilf(GSSEG_RADIUS_SIGMAS * sqrtf(fmaxf(lambda_max, 0.0f)));
    // numpy's float -> int32 cast turns a radius past the int32 range into INT_MIN, which culls it
    if (!(radius_f > 0.0f) || radius_f >= 2147483648.0f) return;
    const int radius = (int)radius_f;
    const float u = (fx * t0) / z + cam[CAM_CX] - 0.5f;
    const float v = (fy * t1) / z + cam[CAM_CY] - 0.5f;
    // getRect: trunc toward zero, then clamp to the grid (u + rad + TILE - 1 evaluated left to right)
    const float rad = (float)radius;
    const float gx = (float)grid_x, gy = (float)grid_y;
    const int x0 = (int)gsseg_clampf(truncf((u - rad) / 16.0f), 0.0f, gx);
    const int y0 = (int)gsseg_clampf(truncf((v - rad) / 16.0f), 0.0f, gy);
    const int x1 = (int)gsseg_clampf(truncf(((u + rad) + 16.0f - 1.0f) / 16.0f), 0.0f, gx);
    const int y1 = (int)gsseg_clampf(truncf(((v + rad) + 16.0f - 1.0f) / 16.0f), 0.0f, gy);
    const int area = (x1 - x0) * (y1 - y0);
    if (area <= 0) return;
    means2d[i] = gs_make_float2(u, v);
    conic_opacity[i] = gs_make_float4(cc / det, (-cb) / det, ca / det, opacities[i]);
    rects[i] = gs_make_int4(x0, y0, x1, y1);
    touched[i] = area;
    depth_keys[i] = ((unsigned long long)__float_as_uint(z) << 32) | (unsigned long long)(unsigned int)i;
}

// ---------------------------------------------------------------------------------------------------------
// Tile binning.

// Tiles touched in depth order, and the number of visible Gaussians (they sort first; counts[0] starts at 0).
extern "C" __global__ void gsseg_gather_touched(int n, const unsigned long long* __restrict__ sorted_depth_keys,
                                                const int* __restrict__ touched, int* __restrict__ touched_sorted,
                                                long long* __restrict__ counts) {
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= n) return;
    const unsigned long long key = sorted_depth_keys[k];
    const bool visible = key != GSSEG_INVALID_KEY;
    touched_sorted[k] = visible ? touched[(unsigned int)(key & 0xffffffffull)] : 0;
    if (visible && (k + 1 == n || sorted_depth_keys[k + 1] == GSSEG_INVALID_KEY)) counts[0] = k + 1;
}

// One key per (tile, visible Gaussian): tile * n_visible + depth rank. Keys are unique, so any sort orders the
// pairs by tile, then depth, then Gaussian index. Key is 32-bit when n_tiles * n_visible fits, else 64-bit.
template <typename Key>
__device__ __forceinline__ void gsseg_duplicate_keys(int n_visible,
                                                     const unsigned long long* __restrict__ sorted_depth_keys,
                                                     const gs_int4* __restrict__ rects,
                                                     const long long* __restrict__ offsets, int grid_x,
                                                     Key* __restrict__ keys) {
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= n_visible) return;
    const gs_int4 r = rects[(unsigned int)(sorted_depth_keys[k] & 0xffffffffull)];
    long long out = k == 0 ? 0 : offsets[k - 1];  // offsets: inclusive scan of touched_sorted
    for (int y = r.y; y < r.w; y++)
        for (int x = r.x; x < r.z; x++) keys[out++] = (Key)(y * grid_x + x) * (Key)n_visible + (Key)k;
}

extern "C" __global__ void gsseg_duplicate_keys32(int n_visible,
                                                  const unsigned long long* __restrict__ sorted_depth_keys,
                                                  const gs_int4* __restrict__ rects,
                                                  const long long* __restrict__ offsets, int grid_x,
                                                  unsigned int* __restrict__ keys) {
    gsseg_duplicate_keys<unsigned int>(n_visible, sorted_depth_keys, rects, offsets, grid_x, keys);
}

extern "C" __global__ void gsseg_duplicate_keys64(int n_visible,
                                                  const unsigned long long* __restrict__ sorted_depth_keys,
                                                  const gs_int4* __restrict__ rects,
                                                  const long long* __restrict__ offsets, int grid_x,
                                                  unsigned long long* __restrict__ keys) {
    gsseg_duplicate_keys<unsigned long long>(n_visible, sorted_depth_keys, rects, offsets, grid_x, keys);
}

// [start, end) of each tile's run in the sorted keys (ranges zeroed first), and the Gaussian of every entry.
template <typename Key>
__device__ __forceinline__ void gsseg_tile_ranges(int n_pairs, const Key* __restrict__ keys, int n_visible,
                                                  const unsigned long long* __restrict__ sorted_depth_keys,
                                                  gs_int2* __restrict__ ranges, int* __restrict__ pair_gid) {
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= n_pairs) return;
    const Key key = keys[idx];
    const int tile = (int)(key / (Key)n_visible);
    const int rank = (int)(key - (Key)tile * (Key)n_visible);
    pair_gid[idx] = (int)(unsigned int)(sorted_depth_keys[rank] & 0xffffffffull);
    if (idx == 0) {
        ranges[tile].x = 0;
    } else {
        const int prev = (int)(keys[idx - 1] / (Key)n_visible);
        if (prev != tile) {
            ranges[prev].y = idx;
            ranges[tile].x = idx;
        }
    }
    if (idx == n_pairs - 1) ranges[tile].y = n_pairs;
}

extern "C" __global__ void gsseg_tile_ranges32(int n_pairs, const unsigned int* __restrict__ keys, int n_visible,
                                               const unsigned long long* __restrict__ sorted_depth_keys,
                                               gs_int2* __restrict__ ranges, int* __restrict__ pair_gid) {
    gsseg_tile_ranges<unsigned int>(n_pairs, keys, n_visible, sorted_depth_keys, ranges, pair_gid);
}

extern "C" __global__ void gsseg_tile_ranges64(int n_pairs, const unsigned long long* __restrict__ keys, int n_visible,
                                               const unsigned long long* __restrict__ sorted_depth_keys,
                                               gs_int2* __restrict__ ranges, int* __restrict__ pair_gid) {
    gsseg_tile_ranges<unsigned long long>(n_pairs, keys, n_visible, sorted_depth_keys, ranges, pair_gid);
}

// ---------------------------------------------------------------------------------------------------------
// The per-pixel walk shared by all raster kernels: rasterize.py's rules, in its operation order.
//   d = mean - pixel (both absolute, as INRIA's renderCUDA and rasterize.py round it)
//   power = -0.5 * (a dx dx + c dy dy) - b dx dy;        skipped unless power <= 0
//   alpha = min(0.99, o * exp(power));                   skipped if alpha < 1/255
//   stop before T * (1 - alpha) < 1e-4 (that Gaussian not added); else w = alpha * T, T *= 1 - alpha
// Returns w (0 when skipped or stopped) and updates T and done.
__device__ __forceinline__ float gsseg_weight(gs_float2 mean, gs_float4 co, float fpx, float fpy, float& T,
                                              bool& done) {
    const float dx = mean.x - fpx, dy = mean.y - fpy;
    const float power = -0.5f * (co.x * dx * dx + co.z * dy * dy) - co.y * dx * dy;
    if (!(power <= 0.0f)) return 0.0f;
    const float alpha = fminf(GSSEG_MAX_ALPHA, co.w * expf(power));
    if (!(alpha >= GSSEG_MIN_ALPHA)) return 0.0f;
    const float test_t = T * (1.0f - alpha);
    if (test_t < GSSEG_MIN_TRANSMITTANCE) {
        done = true;
        return 0.0f;
    }
    const float w = alpha * T;
    T = test_t;
    return w;
}

// ---------------------------------------------------------------------------------------------------------
// Accumulation: weights[l, g] += sum over this view's pixels with label index label_lo + l of w_g(pixel).
//
// One 16x16 block per tile, Gaussians fetched into shared memory 256 at a time (INRIA's renderCUDA).
// aggregate = 0 (naive, as FlashSplat): one global atomicAdd per (pixel, Gaussian) contribution.
// aggregate = 1 (warp) or 2 (shared): the block first finds its tile's distinct labels (up to GSSEG_MAX_SLOTS
// "slots") and sums weights per (slot, Gaussian of the batch) in a shared table; after the batch each thread
// flushes one Gaussian's non-zero slots to global memory. Global atomics per tile and batch drop from
// (pixels x Gaussians) to (Gaussians x labels present). 1: each warp first sums its lanes' weights per slot with
// __shfl_down_sync and lane 0 adds the sum (one lane alone adds straight in); 2: every contributing thread adds
// its weight to the table with a shared-memory atomic. A tile with more distinct labels than slots uses the
// naive path. stats (may be null): stats[0] += global atomics issued, stats[1] += tiles that fell back
// to the naive path for want of slots.
template <typename Acc>
__device__ __forceinline__ void gsseg_accumulate(const gs_int2* __restrict__ ranges, const int* __restrict__ pair_gid,
                                                 const gs_float2* __restrict__ means2d,
                                                 const gs_float4* __restrict__ conic_opacity,
                                                 const int* __restrict__ labels, int width, int height, int grid_x,
                                                 int label_lo, int label_count, int n, Acc* __restrict__ weights,
                                                 int aggregate, unsigned long long* __restrict__ stats) {
    __shared__ int s_gid[GSSEG_BLOCK];
    __shared__ gs_float2 s_xy[GSSEG_BLOCK];
    __shared__ gs_float4 s_co[GSSEG_BLOCK];
    __shared__ float s_acc[GSSEG_MAX_SLOTS][GSSEG_BLOCK];
    __shared__ int s_slot_label[GSSEG_MAX_SLOTS];
    __shared__ int s_overflow;
    __shared__ unsigned long long s_atomics;

    const int tid = threadIdx.y * GSSEG_TILE + threadIdx.x;
    const int lane = tid & 31;
    const int tile_x = blockIdx.x, tile_y = blockIdx.y;
    const int pix_x = tile_x * GSSEG_TILE + threadIdx.x, pix_y = tile_y * GSSEG_TILE + threadIdx.y;
    const bool inside = pix_x < width && pix_y < height;
    int label = -1;  // label index within this chunk, -1 = contributes nothing
    if (inside) {
        const int index = labels[(size_t)pix_y * width + pix_x];
        if (index >= 0 && index >= label_lo && index - label_lo < label_count) label = index - label_lo;
    }

    // The tile's distinct labels -> slots (first come, first served; a label never takes two slots since slots
    // are only ever filled in order and never change once set).
    if (tid < GSSEG_MAX_SLOTS) s_slot_label[tid] = -1;
    if (tid == 0) {
        s_overflow = 0;
        s_atomics = 0;
    }
    for (int d = 0; d < GSSEG_MAX_SLOTS; d++) s_acc[d][tid] = 0.0f;
    __syncthreads();
    int slot = -1;
    if (aggregate != 0 && label >= 0) {
        for (int d = 0; d < GSSEG_MAX_SLOTS; d++) {
            const int old = atomicCAS(&s_slot_label[d], -1, label);
            if (old == -1 || old == label) {
                slot = d;
                break;
            }
        }
        if (slot < 0) s_overflow = 1;
    }
    __syncthreads();
    const bool direct = aggregate == 0 || s_overflow != 0;  // block-uniform
    unsigned int warp_slots = 0;                              // warp-uniform: slots present in this warp
    for (int d = 0; d < GSSEG_MAX_SLOTS; d++)
        if (__ballot_sync(GSSEG_FULL_MASK, slot == d) != 0) warp_slots |= 1u << d;

    const gs_int2 range = ranges[tile_y * grid_x + tile_x];
    const int rounds = (range.y - range.x + GSSEG_BLOCK - 1) / GSSEG_BLOCK;
    int to_do = range.y - range.x;
    const float fpx = (float)pix_x, fpy = (float)pix_y;  // d = mean - pixel, as INRIA and rasterize.py
    bool done = label < 0;
    float T = 1.0f;
    unsigned long long atomics = 0;

    for (int round = 0; round < rounds; round++, to_do -= GSSEG_BLOCK) {
        // Barrier before the shared batch is overwritten; every thread done -> the whole block stops.
        if (__syncthreads_count(done) == GSSEG_BLOCK) break;
        const int fetch = range.x + round * GSSEG_BLOCK + tid;
        if (fetch < range.y) {
            const int gid = pair_gid[fetch];
            s_gid[tid] = gid;
            s_xy[tid] = means2d[gid];
            s_co[tid] = conic_opacity[gid];
        }
        __syncthreads();
        const int count = gsseg_imin(GSSEG_BLOCK, to_do);
        if (direct) {
            // Naive path (FlashSplat): each thread walks on its own, one global atomic per contribution.
            for (int j = 0; !done && j < count; j++) {
                const float w = gsseg_weight(s_xy[j], s_co[j], fpx, fpy, T, done);
                if (w > 0.0f) {
                    atomicAdd(&weights[(size_t)label * n + s_gid[j]], (Acc)w);
                    atomics++;
                }
            }
        } else if (aggregate == 2) {
            // Shared-atomic aggregation: each thread walks on its own and adds into the shared table.
            for (int j = 0; !done && j < count; j++) {
                const float w = gsseg_weight(s_xy[j], s_co[j], fpx, fpy, T, done);
                if (w > 0.0f) atomicAdd(&s_acc[slot][j], w);
            }
        } else {
            // Warp-uniform loop: all 32 lanes run the same j (the collectives need them all); done lanes add 0.
            for (int j = 0; j < count; j++) {
                const float w = done ? 0.0f : gsseg_weight(s_xy[j], s_co[j], fpx, fpy, T, done);
                const unsigned int contrib = __ballot_sync(GSSEG_FULL_MASK, w > 0.0f);
                if (contrib == 0) {
                    // nothing to add; leave once every lane is done (a contributing lane is never done)
                    if (__all_sync(GSSEG_FULL_MASK, done)) break;
                    continue;
                }
                if ((contrib & (contrib - 1)) == 0) {  // a single lane: it adds its weight itself
                    if (w > 0.0f) atomicAdd(&s_acc[slot][j], w);
                    continue;
                }
                for (unsigned int left = warp_slots; left != 0; left &= left - 1) {
                    const int d = __ffs((int)left) - 1;
                    float v = slot == d ? w : 0.0f;
                    v += __shfl_down_sync(GSSEG_FULL_MASK, v, 16);
                    v += __shfl_down_sync(GSSEG_FULL_MASK, v, 8);
                    v += __shfl_down_sync(GSSEG_FULL_MASK, v, 4);
                    v += __shfl_down_sync(GSSEG_FULL_MASK, v, 2);
                    v += __shfl_down_sync(GSSEG_FULL_MASK, v, 1);
                    if (lane == 0 && v > 0.0f) atomicAdd(&s_acc[d][j], v);
                }
            }
        }
        __syncthreads();  // the batch's shared sums are complete
        if (!direct && tid < count) {
            const int gid = s_gid[tid];
            for (int d = 0; d < GSSEG_MAX_SLOTS; d++) {
                const int slot_label = s_slot_label[d];
                if (slot_label < 0) break;
                const float v = s_acc[d][tid];
                if (v != 0.0f) {
                    atomicAdd(&weights[(size_t)slot_label * n + gid], (Acc)v);
                    s_acc[d][tid] = 0.0f;
                    atomics++;
                }
            }
        }
        // the next round's __syncthreads_count orders this flush before the batch is refilled
    }
    if (stats != 0) {  // kernel argument: uniform, so the barrier below is reached by every thread
        if (atomics != 0) atomicAdd(&s_atomics, atomics);
        __syncthreads();
        if (tid == 0) {
            if (s_atomics != 0) atomicAdd(&stats[0], s_atomics);
            if (aggregate != 0 && s_overflow != 0) atomicAdd(&stats[1], 1ull);
        }
    }
}

extern "C" __global__ void __launch_bounds__(GSSEG_BLOCK)
gsseg_accumulate_f32(const gs_int2* __restrict__ ranges, const int* __restrict__ pair_gid,
                     const gs_float2* __restrict__ means2d, const gs_float4* __restrict__ conic_opacity,
                     const int* __restrict__ labels, int width, int height, int grid_x, int label_lo, int label_count,
                     int n, float* __restrict__ weights, int aggregate, unsigned long long* __restrict__ stats) {
    gsseg_accumulate<float>(ranges, pair_gid, means2d, conic_opacity, labels, width, height, grid_x, label_lo,
                            label_count, n, weights, aggregate, stats);
}

extern "C" __global__ void __launch_bounds__(GSSEG_BLOCK)
gsseg_accumulate_f64(const gs_int2* __restrict__ ranges, const int* __restrict__ pair_gid,
                     const gs_float2* __restrict__ means2d, const gs_float4* __restrict__ conic_opacity,
                     const int* __restrict__ labels, int width, int height, int grid_x, int label_lo, int label_count,
                     int n, double* __restrict__ weights, int aggregate, unsigned long long* __restrict__ stats) {
    gsseg_accumulate<double>(ranges, pair_gid, means2d, conic_opacity, labels, width, height, grid_x, label_lo,
                             label_count, n, weights, aggregate, stats);
}

// ---------------------------------------------------------------------------------------------------------
// Renders (INRIA's loop: each thread walks independently; no collectives).

// Colour: rgb = sum w * base colour (SH degree 0), alpha = sum w (as render.render_sums). out_rgb [H, W, 3],
// out_alpha [H, W].
extern "C" __global__ void __launch_bounds__(GSSEG_BLOCK)
gsseg_render_colour(const gs_int2* __restrict__ ranges, const int* __restrict__ pair_gid,
                    const gs_float2* __restrict__ means2d, const gs_float4* __restrict__ conic_opacity,
                    const float* __restrict__ colours, int width, int height, int grid_x, float* __restrict__ out_rgb,
                    float* __restrict__ out_alpha) {
    __shared__ gs_float2 s_xy[GSSEG_BLOCK];
    __shared__ gs_float4 s_co[GSSEG_BLOCK];
    __shared__ float s_rgb[3][GSSEG_BLOCK];
    const int tid = threadIdx.y * GSSEG_TILE + threadIdx.x;
    const int tile_x = blockIdx.x, tile_y = blockIdx.y;
    const int pix_x = tile_x * GSSEG_TILE + threadIdx.x, pix_y = tile_y * GSSEG_TILE + threadIdx.y;
    const bool inside = pix_x < width && pix_y < height;
    const gs_int2 range = ranges[tile_y * grid_x + tile_x];
    const int rounds = (range.y - range.x + GSSEG_BLOCK - 1) / GSSEG_BLOCK;
    int to_do = range.y - range.x;
    const float fpx = (float)pix_x, fpy = (float)pix_y;  // d = mean - pixel, as INRIA and rasterize.py
    bool done = !inside;
    float T = 1.0f, r = 0.0f, g = 0.0f, b = 0.0f, alpha_sum = 0.0f;
    for (int round = 0; round < rounds; round++, to_do -= GSSEG_BLOCK) {
        if (__syncthreads_count(done) == GSSEG_BLOCK) break;
        const int fetch = range.x + round * GSSEG_BLOCK + tid;
        if (fetch < range.y) {
            const int gid = pair_gid[fetch];
            s_xy[tid] = means2d[gid];
            s_co[tid] = conic_opacity[gid];
            s_rgb[0][tid] = colours[3 * (size_t)gid + 0];
            s_rgb[1][tid] = colours[3 * (size_t)gid + 1];
            s_rgb[2][tid] = colours[3 * (size_t)gid + 2];
        }
        __syncthreads();
        const int count = gsseg_imin(GSSEG_BLOCK, to_do);
        for (int j = 0; !done && j < count; j++) {
            const float w = gsseg_weight(s_xy[j], s_co[j], fpx, fpy, T, done);
            if (w > 0.0f) {
                r += s_rgb[0][j] * w;
                g += s_rgb[1][j] * w;
                b += s_rgb[2][j] * w;
                alpha_sum += w;
            }
        }
    }
    if (inside) {
        const size_t pix = (size_t)pix_y * width + pix_x;
        out_rgb[3 * pix + 0] = r;
        out_rgb[3 * pix + 1] = g;
        out_rgb[3 * pix + 2] = b;
        out_alpha[pix] = alpha_sum;
    }
}

// Alpha and alpha-weighted depth: out_alpha = sum w, out_depth = sum w * z (view-space depth); divide for the
// expected depth. Restrict the Gaussians with gsseg_project's include mask.
extern "C" __global__ void __launch_bounds__(GSSEG_BLOCK)
gsseg_render_alpha_depth(const gs_int2* __restrict__ ranges, const int* __restrict__ pair_gid,
                         const gs_float2* __restrict__ means2d, const gs_float4* __restrict__ conic_opacity,
                         const float* __restrict__ depths, int width, int height, int grid_x,
                         float* __restrict__ out_alpha, float* __restrict__ out_depth) {
    __shared__ gs_float2 s_xy[GSSEG_BLOCK];
    __shared__ gs_float4 s_co[GSSEG_BLOCK];
    __shared__ float s_z[GSSEG_BLOCK];
    const int tid = threadIdx.y * GSSEG_TILE + threadIdx.x;
    const int tile_x = blockIdx.x, tile_y = blockIdx.y;
    const int pix_x = tile_x * GSSEG_TILE + threadIdx.x, pix_y = tile_y * GSSEG_TILE + threadIdx.y;
    const bool inside = pix_x < width && pix_y < height;
    const gs_int2 range = ranges[tile_y * grid_x + tile_x];
    const int rounds = (range.y - range.x + GSSEG_BLOCK - 1) / GSSEG_BLOCK;
    int to_do = range.y - range.x;
    const float fpx = (float)pix_x, fpy = (float)pix_y;  // d = mean - pixel, as INRIA and rasterize.py
    bool done = !inside;
    float T = 1.0f, alpha_sum = 0.0f, depth_sum = 0.0f;
    for (int round = 0; round < rounds; round++, to_do -= GSSEG_BLOCK) {
        if (__syncthreads_count(done) == GSSEG_BLOCK) break;
        const int fetch = range.x + round * GSSEG_BLOCK + tid;
        if (fetch < range.y) {
            const int gid = pair_gid[fetch];
            s_xy[tid] = means2d[gid];
            s_co[tid] = conic_opacity[gid];
            s_z[tid] = depths[gid];
        }
        __syncthreads();
        const int count = gsseg_imin(GSSEG_BLOCK, to_do);
        for (int j = 0; !done && j < count; j++) {
            const float w = gsseg_weight(s_xy[j], s_co[j], fpx, fpy, T, done);
            if (w > 0.0f) {
                alpha_sum += w;
                depth_sum += w * s_z[j];
            }
        }
    }
    if (inside) {
        const size_t pix = (size_t)pix_y * width + pix_x;
        out_alpha[pix] = alpha_sum;
        out_depth[pix] = depth_sum;
    }
}
