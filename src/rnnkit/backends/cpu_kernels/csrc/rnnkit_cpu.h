/* rnnkit's CPU kernels: the time loops of the fused recurrent layers.
 *
 * A step kernel does all the gate math of one time step for the whole batch; a time loop
 * (*_seq) runs a direction's steps, each a recurrent GEMM on the BLAS torch links (passed in as
 * gemm_fn) and a step kernel, on torch's OpenMP threads. The formulas are rnnkit.registry's and
 * rnnkit.functional's (lstm_step, zoneout, layer_norm; docstrings there); tests check these
 * kernels against them and against the NumPy reference to 1e-9 in float64. Built on first use by
 * rnnkit/backends/cpu_kernels/library.py.
 */
#ifndef RNNKIT_CPU_H
#define RNNKIT_CPU_H

/* Lerp weights of a zoneout / lengths blend ``s = lerp(new, prev, k)``: a tensor ``p`` read at
 * ``t*st + n*sn + j*sj`` (strides in elements; sj is 1, or 0 for one weight per row), or the
 * constant ``val`` when ``p`` is NULL (``val == 0``: no blend). With ``seeded`` the weights are
 * Bernoulli(val) draws that the kernels make where they read them: element ``t*st + n*sn + j`` is
 * 1 when splitmix64(seed + that index) < val * 2^64, the value rk_bernoulli gives it in a tensor
 * (so nothing of the mask's (T, N, C) size is kept, forward or backward). */
typedef struct {
    const void *p;
    long st, sn, sj;
    double val;
    long seeded;
    unsigned long long seed;
} Keep;

/* One direction of one layer (LSTM, GRU or RNN; G gates: 4, 3, 1). LSTM shapes: gx (the input projection x W_ih^T, without bias), acts,
 * xhat, dz, da, dgx (T, N, 4H); hs, cs, cn, dout (T, N, H); stats (T, N, 6) = (mean, rstd) of the
 * recurrent LN, of the LN of c and of the input LN; h0, c0, hm, mask, dhk, dc (N, H); bias
 * (b_ih + b_hh), ln_ih, ln_w (4H); peep (3, H); lnc_w, lnc_b (H). A "*_st" is the per-step stride
 * of a buffer in elements: 0 makes it a scratch row reused at every step (inference).
 * GRU and RNN (gru_template.h): bias is b_hh (inside the reset gate's product) and bias_ih = b_ih;
 * acts keeps (r, z, n, LN(a)_n + b_hh_n) for the GRU (with both layer norms only a scratch
 * row, rebuilt per step in the backward), and h' (before the blend) for the RNN. */
/* the gradient sums of a backward step: g_peep, g_lnc_w, g_lnc_b, g_ln_w, g_ln_ih, g_bias,
 * g_bias_ih */
#define RNNKIT_SUMS 7

typedef struct {
    long N, H, relu;
    const void *bias_ih;
    const void *gx, *bias, *ln_ih, *ln_w, *peep, *lnc_w, *lnc_b, *mask, *h0, *c0;
    long has_lnc;
    Keep kh, kc;
    void *hs, *cs, *cn, *acts, *xhat, *stats, *hm;
    long cn_st, acts_st, xhat_st, stats_st;
    /* backward */
    const void *dout;
    void *dhk, *dc, *dz, *da, *dgx, *g_peep, *g_lnc_w, *g_lnc_b, *g_ln_w, *g_ln_ih, *g_bias;
    /* GRU/RNN backward with the recurrent LN: the step's GEMM output recomputed (N, G*H), from
     * which the normalised pre-activations are rebuilt instead of saved (xhat is then a scratch) */
    const void *arec;
    long dz_st;       /* per-step stride of dz (GRU/RNN; 0: a scratch row, its sums in g_bias_ih) */
    void *g_bias_ih;
    long da_st;       /* per-step stride of da (GRU/RNN; 0: a scratch row rebuilt from dz later) */
    /* threads of the step kernels' loops over the batch rows (torch's thread count; 1: serial),
     * and for backward the zeroed (nthreads - 1, part_len) sums of threads 1.. with each
     * gradient sum's offset in a row (-1: not summed), in the order of RNNKIT_SUMS */
    long nthreads;
    void *partials;
    long part_len;
    long part_off[RNNKIT_SUMS];
    /* GRU backward with both layer norms: acts is a scratch (N, 4H), rebuilt at every step from
     * the projections gx, arec and the saved row statistics rather than saved for every step
     * (the gate values are the forward's to rounding) */
    long recompute_gates;
} StepCtx;

/* A column-major BLAS GEMM (sgemm_/dgemm_, LP64: int sizes), the one torch itself links (MKL),
 * looked up by the Python side and passed in, so the time loops call it without going through
 * Python. */
typedef void (*gemm_fn)(const char *ta, const char *tb, const int *m, const int *n, const int *k,
                        const void *alpha, const void *a, const int *lda, const void *b,
                        const int *ldb, const void *beta, void *c, const int *ldc);

#endif
