/* The per-step GEMM of the time loops on a weight packed once per call: rnnkit's own kernel,
 * for CPUs whose BLAS runs these skinny products slowly (MKL and OpenBLAS take 2-3x oneDNN's time
 * for a 20 x 128 x 512 step on AMD EPYC; docs/benchmarks.md). Included by rnnkit_cpu.c once per
 * REAL type.
 *
 * A step computes c (m, n) = a (m, k) b (k, n) with m the batch (a few dozen rows), k = H and
 * n = 4H (forward) or k = 4H and n = H (backward). b is the same at every step, so it is packed
 * once into panels of PW columns: panel p holds b[:, p PW : (p + 1) PW] as k rows of PW
 * contiguous values, zero-padded past n. A tile of up to RK_ROWS rows of c times one panel keeps
 * 2 * RK_ROWS vector accumulators in registers (the register blocking of Goto & van de Geijn 2008,
 * "Anatomy of high-performance matrix multiplication"); k is cut in blocks of RK_KBLOCK rows so that
 * a panel's block stays in the L1 cache across the tiles of rows. Written with GCC's vector
 * extensions: 512-bit vectors under AVX-512, 256-bit under AVX, 128-bit otherwise. */

#define PCAT2(a, b) a##_##b
#define PCAT(a, b) PCAT2(a, b)
#define PFN(name) PCAT(name, SFX)

#if defined(__AVX512F__)
#define RK_VBYTES 64
#elif defined(__AVX__)
#define RK_VBYTES 32
#else
#define RK_VBYTES 16
#endif
#define RK_VL ((long)(RK_VBYTES / sizeof(REAL))) /* values per vector */
#define RK_PW (2 * RK_VL)                         /* panel width: two vectors */
#define RK_ROWS 6                                 /* rows of c per tile */
#define RK_KBLOCK 256                             /* rows of a panel per pass over the tiles */
#define RK_PACK_PARALLEL (1L << 16)               /* values of b from which packing is threaded */

typedef REAL PFN(vec) __attribute__((vector_size(RK_VBYTES)));
/* the same vector at any REAL-aligned address */
typedef REAL PFN(uvec) __attribute__((vector_size(RK_VBYTES), aligned(sizeof(REAL)), may_alias));

/* the panel width, for the Python side to size the packed buffer and split columns by */
long PFN(panel_width)(void) { return RK_PW; }

/* out = the panels of b (k, n), b[r][j] read at b + r sk + j sn (so b may be a matrix or its
 * transpose): ceil(n / PW) panels of k x PW values, zero-padded past column n; the panels split
 * over nthreads threads once b is large enough to pay for them (the layers pack their weights at
 * every call: a weight of H = 512 is 1M values) */
void PFN(pack_panels)(const REAL *restrict b, long k, long n, long sk, long sn,
                      REAL *restrict out, long nthreads) {
    const long panels = (n + RK_PW - 1) / RK_PW;
    #pragma omp parallel for num_threads(nthreads) if (nthreads > 1 && k * n >= RK_PACK_PARALLEL) \
        schedule(static)
    for (long p = 0; p < panels; p++) {
        const long p0 = p * RK_PW;
        const long w = n - p0 < RK_PW ? n - p0 : RK_PW;
        REAL *restrict dst = out + p0 * k; /* (p0 / PW) * k * PW */
        if (sn == 1) {
            for (long r = 0; r < k; r++) {
                for (long j = 0; j < w; j++) dst[r * RK_PW + j] = b[r * sk + p0 + j];
                for (long j = w; j < RK_PW; j++) dst[r * RK_PW + j] = 0;
            }
        } else if (w == RK_PW) { /* a transposed read: each row of the panel a vector gather */
            for (long r = 0; r < k; r++) {
                const REAL *src = b + r * sk + p0 * sn;
                #pragma omp simd
                for (long j = 0; j < RK_PW; j++) dst[r * RK_PW + j] = src[j * sn];
            }
        } else {
            for (long r = 0; r < k; r++)
                for (long j = 0; j < RK_PW; j++)
                    dst[r * RK_PW + j] = j < w ? b[r * sk + (p0 + j) * sn] : (REAL)0;
        }
    }
}

/* DropConnect on packed panels (pack_panels of b, read with strides sk, sn from a contiguous
 * matrix W): each packed b[r][c] times scale where draw (r sk + c sn) of Bernoulli(p) from seed is
 * 1, else 0: the panels of W * mask without W * mask in memory (the padding stays zero) */
void PFN(mask_panels)(REAL *restrict out, long k, long n, long sk, long sn, double p,
                      double scale, unsigned long long seed) {
    const unsigned long long cut = rk_cut(p);
    const REAL s = (REAL)scale;
    const long panels = (n + RK_PW - 1) / RK_PW;
    for (long q = 0; q < panels; q++) {
        const long p0 = q * RK_PW;
        const long w = n - p0 < RK_PW ? n - p0 : RK_PW;
        REAL *restrict dst = out + p0 * k;
        for (long r = 0; r < k; r++) {
            const unsigned long long base = seed + (unsigned long long)(r * sk + p0 * sn);
            #pragma omp simd
            for (long j = 0; j < w; j++)
                dst[r * RK_PW + j] *= splitmix64(base + (unsigned long long)(j * sn)) < cut ? s : (REAL)0;
        }
    }
}

/* c[0:R, 0:w] (+)= a[0:R, 0:k] panel[0:k, 0:w] for R rows of a (a[r][kk] at a + r ras + kk kas:
 * a matrix, kas = 1, or a transposed one) and one panel's k rows; accumulate: add to c's values,
 * else overwrite them; init (NULL or w values): the sums start from it, a bias added to every
 * row. w < PW only in the last panel. */
#define RK_TILE(R)                                                                                 \
    static inline void PFN(tile##R)(long k, const REAL *restrict a, long ras, long kas,            \
                                    const REAL *restrict panel, REAL *restrict c, long ldc,        \
                                    long w, int accumulate, const REAL *restrict init) {           \
        PFN(vec) lo[R], hi[R], lo0 = {0}, hi0 = {0};                                               \
        if (init) {                                                                                \
            REAL tmp[2 * RK_VL] = {0};                                                             \
            for (long j = 0; j < w; j++) tmp[j] = init[j];                                         \
            lo0 = *(PFN(uvec) *)tmp;                                                               \
            hi0 = *(PFN(uvec) *)(tmp + RK_VL);                                                     \
        }                                                                                          \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                                      \
            lo[r] = lo0;                                                                           \
            hi[r] = hi0;                                                                           \
        }                                                                                          \
        for (long kk = 0; kk < k; kk++) {                                                          \
            const PFN(vec) b0 = *(const PFN(uvec) *)(panel + kk * RK_PW);                          \
            const PFN(vec) b1 = *(const PFN(uvec) *)(panel + kk * RK_PW + RK_VL);                  \
            const REAL *ak = a + kk * kas;                                                         \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                                  \
                const REAL s = ak[r * ras];                                                        \
                lo[r] += s * b0;                                                                   \
                hi[r] += s * b1;                                                                   \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                                      \
            REAL *cr = c + r * ldc;                                                                \
            if (w == RK_PW) {                                                                      \
                if (accumulate) {                                                                  \
                    lo[r] += *(PFN(uvec) *)cr;                                                     \
                    hi[r] += *(PFN(uvec) *)(cr + RK_VL);                                           \
                }                                                                                  \
                *(PFN(uvec) *)cr = lo[r];                                                          \
                *(PFN(uvec) *)(cr + RK_VL) = hi[r];                                                \
            } else {                                                                               \
                REAL tmp[2 * RK_VL];                                                               \
                *(PFN(uvec) *)tmp = lo[r];                                                         \
                *(PFN(uvec) *)(tmp + RK_VL) = hi[r];                                               \
                for (long j = 0; j < w; j++) cr[j] = accumulate ? cr[j] + tmp[j] : tmp[j];         \
            }                                                                                      \
        }                                                                                          \
    }
RK_TILE(1)
RK_TILE(2)
RK_TILE(3)
RK_TILE(4)
RK_TILE(5)
RK_TILE(6)
#undef RK_TILE

/* c[0:m, lo:hi] (+)= a (m, k) b[:, lo:hi] (+ bias[lo:hi] on every row, bias NULL or n values,
 * where c is not accumulated into) for b's panels bp (pack_panels; lo a multiple of PW), a[i][kk]
 * at a + i ras + kk kas, c row-major with row stride ldc: this thread's share of a GEMM */
static void PFN(panel_gemm_part)(long m, long lo, long hi, long k, const REAL *a, long ras,
                                 long kas, const REAL *bp, REAL *c, long ldc, int accumulate,
                                 const REAL *bias) {
    for (long k0 = 0; k0 < k; k0 += RK_KBLOCK) {
        const long kb = k - k0 < RK_KBLOCK ? k - k0 : RK_KBLOCK;
        const int acc = accumulate || k0 > 0;
        for (long p0 = lo; p0 < hi; p0 += RK_PW) {
            const REAL *panel = bp + p0 * k + k0 * RK_PW;
            const long w = hi - p0 < RK_PW ? hi - p0 : RK_PW;
            const REAL *init = bias && !acc ? bias + p0 : NULL;
            long i = 0;
            for (; i + RK_ROWS <= m; i += RK_ROWS)
                PFN(tile6)(kb, a + i * ras + k0 * kas, ras, kas, panel, c + i * ldc + p0, ldc, w,
                           acc, init);
            const REAL *ai = a + i * ras + k0 * kas;
            REAL *ci = c + i * ldc + p0;
            switch (m - i) {
            case 5: PFN(tile5)(kb, ai, ras, kas, panel, ci, ldc, w, acc, init); break;
            case 4: PFN(tile4)(kb, ai, ras, kas, panel, ci, ldc, w, acc, init); break;
            case 3: PFN(tile3)(kb, ai, ras, kas, panel, ci, ldc, w, acc, init); break;
            case 2: PFN(tile2)(kb, ai, ras, kas, panel, ci, ldc, w, acc, init); break;
            case 1: PFN(tile1)(kb, ai, ras, kas, panel, ci, ldc, w, acc, init); break;
            default: break;
            }
        }
    }
}

/* a time loop's step GEMM, this thread's columns: c[:, lo:hi] = a (m, k) b[:, lo:hi], a row-major */
static inline void PFN(panel_gemm)(long m, long lo, long hi, long k, const REAL *a, long lda,
                                   const REAL *bp, REAL *c, long ldc) {
    PFN(panel_gemm_part)(m, lo, hi, k, a, lda, 1, bp, c, ldc, 0, NULL);
}

/* c (m, n) (+)= a (m, k) b [+ bias (n,) on every row, without accumulate] on nthreads of torch's
 * threads, for a layer's large GEMMs (the input projections, their gradients and the weight
 * gradients over all steps): the rows split over the threads in whole tiles, or the panels where
 * there are too few rows. The bias starts the sums, so it costs no pass over c. */
void PFN(panel_matmul)(long m, long n, long k, const REAL *a, long ras, long kas, const REAL *bp,
                       const REAL *bias, REAL *c, long ldc, long accumulate, long nthreads) {
    const long tiles = (m + RK_ROWS - 1) / RK_ROWS, panels = (n + RK_PW - 1) / RK_PW;
    const int by_rows = tiles >= 2 * nthreads || tiles >= panels;
    #pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
#ifdef _OPENMP
        const long tid = omp_get_thread_num(), nth = omp_get_num_threads();
#else
        const long tid = 0, nth = 1;
#endif
        if (by_rows) {
            const long r0 = tiles * tid / nth * RK_ROWS, r1 = tiles * (tid + 1) / nth * RK_ROWS;
            const long hi = r1 < m ? r1 : m;
            if (r0 < hi)
                PFN(panel_gemm_part)(hi - r0, 0, n, k, a + r0 * ras, ras, kas, bp, c + r0 * ldc,
                                     ldc, (int)accumulate, bias);
        } else {
            long lo, hi;
            rk_share(n, RK_PW, &lo, &hi);
            if (lo < hi)
                PFN(panel_gemm_part)(m, lo, hi, k, a, ras, kas, bp, c, ldc, (int)accumulate,
                                     bias);
        }
    }
}

#undef PFN
#undef PCAT
#undef PCAT2
