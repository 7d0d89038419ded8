/* The plain per-pixel INRIA walk in C: the yardstick issue 18 measures the CPU paths against
   (bench/accumulate.py --real compiles it with the system's C compiler and OpenMP, and times it on the same
   views). Every pixel of every tile walks its tile's depth-sorted pairs in float32, as the CUDA kernel does:
   power, alpha = min(0.99, opacity exp(power)), skip below 1/255, stop before T would fall below 1e-4; the
   weight alpha T is added to out[thread][label][gaussian] (float64). Tiles are shared among threads. */
#include <math.h>
#include <stdint.h>
#include <omp.h>

void plain_walk(int64_t n_tiles, const int64_t *tile_ids, const int64_t *tile_starts, int64_t grid_x,
                int64_t width, int64_t height, const int64_t *pair_ids, const float *mean_x, const float *mean_y,
                const float *conic_a, const float *conic_b, const float *conic_c, const float *opacity,
                const int32_t *index_map, int64_t n_labels, int64_t n_gaussians, double *out)
{
    #pragma omp parallel
    {
        double *mine = out + (int64_t)omp_get_thread_num() * n_labels * n_gaussians;
        #pragma omp for schedule(dynamic, 4)
        for (int64_t t = 0; t < n_tiles; t++) {
            int64_t tile = tile_ids[t], x0 = (tile % grid_x) * 16, y0 = (tile / grid_x) * 16;
            for (int64_t py = y0; py < y0 + 16 && py < height; py++) {
                for (int64_t px = x0; px < x0 + 16 && px < width; px++) {
                    int32_t label = index_map[py * width + px];
                    if (label < 0)
                        continue;
                    double *row = mine + (int64_t)label * n_gaussians;
                    float T = 1.0f;
                    for (int64_t j = tile_starts[t]; j < tile_starts[t + 1]; j++) {
                        float dx = mean_x[j] - (float)px, dy = mean_y[j] - (float)py;
                        float power = -0.5f * (conic_a[j] * dx * dx + conic_c[j] * dy * dy) - conic_b[j] * dx * dy;
                        if (power > 0.0f)
                            continue;
                        float alpha = fminf(0.99f, opacity[j] * expf(power));
                        if (alpha < 1.0f / 255.0f)
                            continue;
                        float test_t = T * (1.0f - alpha);
                        if (test_t < 0.0001f)
                            break;
                        row[pair_ids[j]] += alpha * T;
                        T = test_t;
                    }
                }
            }
        }
    }
}
