/* rnnkit's CPU kernels, compiled on first use (rnnkit/backends/cpu_kernels/library.py), one library per type:
 * float32 by default, float64 with -DRNNKIT_F64 (compiling one type takes half the time). */
#include <math.h>
#include <stddef.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "rnnkit_cpu.h"

#define LN_EPS 1e-5

/* this thread's share [lo, hi) of n columns, in whole blocks of `block` (16, a vector register's
 * worth, for BLAS; a panel for panel_gemm.h): the columns of a GEMM split over the threads of the
 * enclosing parallel region */
static inline void rk_share(long n, long block, long *lo, long *hi) {
#ifdef _OPENMP
    const long tid = omp_get_thread_num(), nth = omp_get_num_threads();
#else
    const long tid = 0, nth = 1;
#endif
    const long blocks = (n + block - 1) / block;
    *lo = blocks * tid / nth * block;
    *hi = blocks * (tid + 1) / nth * block;
    if (*lo > n) *lo = n;
    if (*hi > n) *hi = n;
}

/* A counter-based generator: splitmix64 of seed + i (Steele, Lea & Flood 2014), and the cut below
 * which a draw is 1 with probability p. Mask values depend only on the seed and the element's
 * index, so a kernel can draw one row where it reads it, forward and backward alike. */
static inline unsigned long long splitmix64(unsigned long long z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static inline unsigned long long rk_cut(double p) {
    return (unsigned long long)(p * 18446744073709551616.0);
}

#ifdef RNNKIT_F64
#define REAL double
#define SFX f64
#define EXP exp
#define TANH tanh
#define SQRT sqrt
#else
/* float32: exp as 2^i * e^(f ln 2) with a degree-6 polynomial, inlined so the gate loops vectorize
 * without calls (libmvec's expf/tanhf cost ~1.6x more here); max error 1.4e-6 relative for exp,
 * 2e-7 absolute for tanh and sigmoid (float32 epsilon is 1.2e-7) */
static inline float rk_expf(float x) {
    /* clamped by comparisons, which a NaN fails: it passes through (fminf/fmaxf would turn it
     * into a number, and a diverging model would look healthy) */
    x = x < -87.3f ? -87.3f : (x > 88.0f ? 88.0f : x); /* e^88 < FLT_MAX: no Inf to divide by */
    const float t = x * 1.44269504088896341f, fi = floorf(t + 0.5f);
    const float y = (t - fi) * 0.693147180559945f; /* |y| <= ln(2) / 2 */
    const float p = 1.0f + y * (1.0f + y * (0.5f + y * (1.6666667e-1f + y * (4.1666667e-2f
                    + y * (8.3333333e-3f + y * 1.3888889e-3f)))));
    union { float f; int i; } scale;
    scale.i = ((int)fi + 127) << 23;
    return p * scale.f;
}
static inline float rk_tanhf(float x) { return 1.0f - 2.0f / (rk_expf(2.0f * x) + 1.0f); }
#define REAL float
#define SFX f32
#define EXP rk_expf
#define TANH rk_tanhf
#define SQRT sqrtf
#endif
#include "panel_gemm.h"
#include "lstm_template.h"
#include "gru_template.h"
#include "minrnn_template.h"
#include "slstm_template.h"

/* Bernoulli(p) masks: out[i] = 1 with probability p, else 0, from the counter-based generator
 * above (rk_draw): reproducible from the seed, which the Python side draws from torch's generator,
 * and ~10x faster than torch's CPU bernoulli_. */

#define BERNOULLI_CAT2(a, b) a##_##b
#define BERNOULLI_CAT(a, b) BERNOULLI_CAT2(a, b)
void BERNOULLI_CAT(bernoulli, SFX)(REAL *out, long n, double p, unsigned long long seed) {
    const unsigned long long cut = rk_cut(p);
    #pragma omp simd
    for (long i = 0; i < n; i++) out[i] = splitmix64(seed + (unsigned long long)i) < cut ? (REAL)1 : (REAL)0;
}

/* DropConnect with the mask of a seed: out[i] = src[i] * (draw i of Bernoulli(p) ? scale : 0), the
 * product of src and bernoulli(p, seed) * scale without the mask in memory; out may be src (the
 * weight gradient masked in place) */
void BERNOULLI_CAT(masked_scale, SFX)(const REAL *src, REAL *out, long n, double p,
                                      double scale, unsigned long long seed) {
    const unsigned long long cut = rk_cut(p);
    const REAL s = (REAL)scale;
    #pragma omp simd
    for (long i = 0; i < n; i++)
        out[i] = src[i] * (splitmix64(seed + (unsigned long long)i) < cut ? s : (REAL)0);
}

/* dst (cols, rows) = src (rows, cols) transposed, both row-major, in 32 x 32 tiles (the per-step
 * GEMMs read W^T row-major; torch's strided copy of a transposed view is several times slower) */
void BERNOULLI_CAT(transpose, SFX)(const REAL *restrict src, REAL *restrict dst, long rows,
                                   long cols) {
    for (long i0 = 0; i0 < rows; i0 += 32) {
        const long i1 = i0 + 32 < rows ? i0 + 32 : rows;
        for (long j0 = 0; j0 < cols; j0 += 32) {
            const long j1 = j0 + 32 < cols ? j0 + 32 : cols;
            for (long j = j0; j < j1; j++) {
                #pragma omp simd
                for (long i = i0; i < i1; i++) dst[j * rows + i] = src[i * cols + j];
            }
        }
    }
}

/* the version the Python side checks before binding the structs */
long rnnkit_abi_version(void) { return 17; }
