/* GRU and Elman RNN step kernels for one REAL type; included by rnnkit_cpu.c after
 * lstm_template.h (whose helpers they use: sig, lerp, blend, the layer-norm parts). Formulas:
 * rnnkit.functional.gru_step / rnn_step, zoneout and layer_norm. */

#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)
#define FN(name) CAT(name, SFX)

/* the state blend h_t = lerp(h', h_prev, kh_t) and the next GEMM input hm = h_t * mask */
static inline void FN(blend_out)(const StepCtx *x, long t, long n, REAL *restrict hn,
                                 const REAL *restrict hpn, long H) {
    const REAL *mask = x->mask;
    FN(blend)(&x->kh, t, n, hn, hpn, hn, H);
    if (mask) {
        REAL *restrict hm = (REAL *)x->hm + n * H;
        #pragma omp simd
        for (long j = 0; j < H; j++) hm[j] = hn[j] * mask[n * H + j];
    }
}

/* The gates of one row from xi in z[0:3H] and the recurrent source src (3H, normalised with the
 * recurrent LN): gh = src [* ln_w] + b_hh; z[0:2H] = (r, z) = sig(xi_rz + gh_rz);
 * z[2H:3H] = n = tanh(xi_n + r gh_n); z[3H:4H] = gh_n */
static inline void FN(gru_gates)(const StepCtx *x, REAL *restrict z, const REAL *src) {
    const long H = x->H;
    const REAL *lnw = x->ln_w, *bias = x->bias;
    REAL *restrict ghn = z + 3 * H;
    FN(add_recurrent)(z, src, lnw, bias, 2 * H, 0);
    FN(add_recurrent)(ghn, src + 2 * H, lnw ? lnw + 2 * H : (const REAL *)0,
                      bias ? bias + 2 * H : (const REAL *)0, H, 1);
    #pragma omp simd
    for (long k = 0; k < 2 * H; k++) z[k] = FN(sig)(z[k]);
    #pragma omp simd
    for (long j = 0; j < H; j++) z[2 * H + j] = TANH(z[2 * H + j] + z[j] * ghn[j]);
}

/* GRU forward step t: a (N, 3H) = hm_prev W_hh^T.
 *   gh = [LN(a; ln_w)] + b_hh;  r, z = sig(xi_rz + gh_rz);  n = tanh(xi_n + r gh_n)
 *   h' = n + z (h - n);  h_t = lerp(h', h, kh_t);  acts_t = (r, z, n, gh_n) */
static void FN(gru_fwd_rows)(const StepCtx *x, long t, long prev, const REAL *restrict a) {
    const long N = x->N, H = x->H, G = 3 * H;
    const REAL *hp = prev < 0 ? (const REAL *)x->h0 : (const REAL *)x->hs + prev * N * H;
    REAL *hs = (REAL *)x->hs + t * N * H, *acts = (REAL *)x->acts + t * x->acts_st;
    REAL *xh = x->ln_w ? (REAL *)x->xhat + t * x->xhat_st : (REAL *)0;
    REAL *st = x->stats ? (REAL *)x->stats + t * x->stats_st : (REAL *)0;
    #pragma omp for schedule(static)
    for (long n = 0; n < N; n++) {
        const REAL *restrict hpn = hp + n * H;
        REAL *restrict z = acts + n * 4 * H, *restrict hn = hs + n * H;
        REAL *stn = st ? st + n * 6 : (REAL *)0;
        FN(input_part)(x, (const REAL *)x->gx + (t * N + n) * G, z, stn, G);
        FN(gru_gates)(x, z, FN(recurrent_src)(x, a + n * G, xh ? xh + n * G : (REAL *)0, stn, G));
        #pragma omp simd
        for (long j = 0; j < H; j++) hn[j] = z[2 * H + j] + z[H + j] * (hpn[j] - z[2 * H + j]);
        FN(blend_out)(x, t, n, hn, hpn, H);
    }
}

/* The forward's (r, z, n, gh_n) of step t, row n, into an (4H), rebuilt in the backward of a
 * GRU with both layer norms from the projections gx (rebuilt), the recomputed recurrent GEMM
 * output arec and the forward's row statistics st (reused, not recomputed); the normalised arec
 * goes to xhn for the recurrent LN's backward. */
static inline void FN(gru_gates_again)(const StepCtx *x, long t, long n, REAL *restrict an,
                                       REAL *restrict xhn, const REAL *st) {
    const long N = x->N, G = 3 * x->H;
    const REAL *restrict arn = (const REAL *)x->arec + n * G;
    const REAL mu = st[0], rs = st[1];
    FN(input_with)(x, (const REAL *)x->gx + (t * N + n) * G, an, st[4], st[5], G);
    #pragma omp simd
    for (long k = 0; k < G; k++) xhn[k] = (arn[k] - mu) * rs;
    FN(gru_gates)(x, an, xhn);
}

/* gru_fwd_rows on torch's threads (one step called from Python) */
void FN(gru_fwd)(const StepCtx *x, long t, long prev, const REAL *restrict a) {
    #pragma omp parallel num_threads(x->nthreads) if (x->nthreads > 1)
    FN(gru_fwd_rows)(x, t, prev, a);
}

/* Elman RNN forward step t: h' = act(xi + [LN(a; ln_w)] + b_hh), act tanh or relu; acts_t = h' */
static void FN(rnn_fwd_rows)(const StepCtx *x, long t, long prev, const REAL *restrict a) {
    const long N = x->N, H = x->H;
    const REAL *lnw = x->ln_w, *bias = x->bias;
    const REAL *hp = prev < 0 ? (const REAL *)x->h0 : (const REAL *)x->hs + prev * N * H;
    REAL *hs = (REAL *)x->hs + t * N * H, *acts = (REAL *)x->acts + t * x->acts_st;
    REAL *xh = lnw ? (REAL *)x->xhat + t * x->xhat_st : (REAL *)0;
    REAL *st = x->stats ? (REAL *)x->stats + t * x->stats_st : (REAL *)0;
    #pragma omp for schedule(static)
    for (long n = 0; n < N; n++) {
        REAL *restrict pre = acts + n * H, *restrict hn = hs + n * H;
        REAL *stn = st ? st + n * 6 : (REAL *)0;
        FN(input_part)(x, (const REAL *)x->gx + (t * N + n) * H, pre, stn, H);
        const REAL *src = FN(recurrent_src)(x, a + n * H, xh ? xh + n * H : (REAL *)0, stn, H);
        FN(add_recurrent)(pre, src, lnw, bias, H, 0);
        if (x->relu) {
            #pragma omp simd
            for (long j = 0; j < H; j++) pre[j] = pre[j] < 0 ? 0 : pre[j]; /* NaN stays NaN, as torch.relu */
        } else {
            #pragma omp simd
            for (long j = 0; j < H; j++) pre[j] = TANH(pre[j]);
        }
        #pragma omp simd
        for (long j = 0; j < H; j++) hn[j] = pre[j];
        FN(blend_out)(x, t, n, hn, hp + n * H, H);
    }
}

/* rnn_fwd_rows on torch's threads (one step called from Python) */
void FN(rnn_fwd)(const StepCtx *x, long t, long prev, const REAL *restrict a) {
    #pragma omp parallel num_threads(x->nthreads) if (x->nthreads > 1)
    FN(rnn_fwd_rows)(x, t, prev, a);
}

/* the gradients of the input part (dz_t, and dgx_t through the input LN) and of the recurrent
 * pre-activations (da_t holds dgh on entry; through the recurrent LN on exit), the bias sums */
static inline void FN(finish_row)(const StepCtx *x, long t, long n, REAL *restrict dzn,
                                  REAL *restrict dan, const REAL *st, long G) {
    REAL *g_bias = x->g_bias, *g_bias_ih = x->g_bias_ih;
    if (g_bias) {
        #pragma omp simd
        for (long k = 0; k < G; k++) g_bias[k] += dan[k];
    }
    if (g_bias_ih) {
        #pragma omp simd
        for (long k = 0; k < G; k++) g_bias_ih[k] += dzn[k];
    }
    if (x->ln_w) {
        REAL *xhn = (REAL *)x->xhat + t * x->xhat_st + n * G;
        if (x->arec && !x->recompute_gates) { /* recomputed GEMM output of this step: normalise
                                                 * it here (saves memory) */
            const REAL *restrict an = (const REAL *)x->arec + n * G;
            const REAL mu = st[0], rs = st[1];
            #pragma omp simd
            for (long k = 0; k < G; k++) xhn[k] = (an[k] - mu) * rs;
        }
        FN(ln_backward)(dan, xhn, x->ln_w, st[1], x->g_ln_w, dan, G);
    }
    if (x->ln_ih) FN(input_ln_backward)(x, t, n, dzn, st, G);
}

/* GRU backward step t (rec: da_{t+1} W_hh, NULL first). Writes dz_t = d xi, da_t = d a and the
 * carried dhk; accumulates g_bias (b_hh), g_bias_ih (b_ih; with dz a scratch row, dz_st = 0),
 * g_ln_w, g_ln_ih. */
static void FN(gru_bwd_rows)(const StepCtx *x0, long t, long prev, const REAL *restrict rec) {
    {
    StepCtx own;
    FN(thread_ctx)(x0, &own); /* the gradient sums of threads 1.. go to their own rows */
    const StepCtx *x = &own;
    const long N = x->N, H = x->H, G = 3 * H;
    const REAL *hp = prev < 0 ? (const REAL *)x->h0 : (const REAL *)x->hs + prev * N * H;
    const REAL *acts = (const REAL *)x->acts + t * x->acts_st;
    const REAL *st = x->stats ? (const REAL *)x->stats + t * x->stats_st : (const REAL *)0;
    #pragma omp for schedule(static)
    for (long n = 0; n < N; n++) {
        if (x->recompute_gates)
            FN(gru_gates_again)(x, t, n, (REAL *)acts + n * 4 * H,
                                (REAL *)x->xhat + t * x->xhat_st + n * G, st + n * 6);
        const REAL *restrict an = acts + n * 4 * H, *restrict hpn = hp + n * H;
        const REAL *restrict r = an, *restrict zg = an + H, *restrict nn = an + 2 * H,
                             *restrict ghn = an + 3 * H;
        REAL *restrict dzn = (REAL *)x->dz + t * x->dz_st + n * G;
        REAL *restrict dan = (REAL *)x->da + t * x->da_st + n * G;
        REAL *restrict dhkn = (REAL *)x->dhk + n * H;
        FN(split_dh)(x, t, n, rec, dzn); /* dzn[0:H] = dh' */
        #pragma omp simd
        for (long j = 0; j < H; j++) {
            REAL dh = dzn[j], z = zg[j], nv = nn[j];
            REAL dnp = dh * ((REAL)1 - z) * ((REAL)1 - nv * nv);
            REAL dzp = dh * (hpn[j] - nv) * z * ((REAL)1 - z);
            REAL drp = dnp * ghn[j] * r[j] * ((REAL)1 - r[j]);
            dhkn[j] += dh * z;
            dzn[j] = drp, dzn[H + j] = dzp, dzn[2 * H + j] = dnp;
            dan[j] = drp, dan[H + j] = dzp, dan[2 * H + j] = dnp * r[j];
        }
        FN(finish_row)(x, t, n, dzn, dan, st ? st + n * 6 : (const REAL *)0, G);
    }
    }
}

/* gru_bwd_rows on torch's threads (one step called from Python) */
void FN(gru_bwd)(const StepCtx *x0, long t, long prev, const REAL *restrict rec) {
    #pragma omp parallel num_threads(x0->nthreads) if (x0->nthreads > 1)
    FN(gru_bwd_rows)(x0, t, prev, rec);
}

/* Elman RNN backward step t; as gru_bwd with dz_t = da_t = dh' act'(pre) */
static void FN(rnn_bwd_rows)(const StepCtx *x0, long t, long prev, const REAL *restrict rec) {
    {
    StepCtx own;
    FN(thread_ctx)(x0, &own); /* the gradient sums of threads 1.. go to their own rows */
    const StepCtx *x = &own;
    const long N = x->N, H = x->H;
    (void)prev;
    const REAL *acts = (const REAL *)x->acts + t * x->acts_st;
    const REAL *st = x->stats ? (const REAL *)x->stats + t * x->stats_st : (const REAL *)0;
    #pragma omp for schedule(static)
    for (long n = 0; n < N; n++) {
        const REAL *restrict hn = acts + n * H;
        REAL *restrict dzn = (REAL *)x->dz + t * x->dz_st + n * H;
        REAL *restrict dan = (REAL *)x->da + t * x->da_st + n * H;
        FN(split_dh)(x, t, n, rec, dzn);
        if (x->relu) {
            #pragma omp simd
            for (long j = 0; j < H; j++) dzn[j] = hn[j] > 0 ? dzn[j] : 0;
        } else {
            #pragma omp simd
            for (long j = 0; j < H; j++) dzn[j] *= (REAL)1 - hn[j] * hn[j];
        }
        #pragma omp simd
        for (long j = 0; j < H; j++) dan[j] = dzn[j];
        FN(finish_row)(x, t, n, dzn, dan, st ? st + n * 6 : (const REAL *)0, H);
    }
    }
}

/* rnn_bwd_rows on torch's threads (one step called from Python) */
void FN(rnn_bwd)(const StepCtx *x0, long t, long prev, const REAL *restrict rec) {
    #pragma omp parallel num_threads(x0->nthreads) if (x0->nthreads > 1)
    FN(rnn_bwd_rows)(x0, t, prev, rec);
}

/* The GRU (G = 3H) or Elman RNN (rnn != 0, G = H) forward time loop: lstm_fwd_seq's contract. */
void FN(gru_fwd_seq)(const StepCtx *x, const long *order, const long *prevs, long count,
                     const REAL *wt, REAL *a, const REAL *h_first, long rnn, long packed,
                     gemm_fn gemm) {
    const long N = x->N, H = x->H, G = rnn ? H : 3 * H;
    #pragma omp parallel num_threads(x->nthreads) if (x->nthreads > 1)
    {
        long lo, hi;
        FN(gemm_share)(G, packed, &lo, &hi);
        for (long s = 0; s < count; s++) {
            const long t = order[s], prev = prevs[s];
            const REAL *hin = prev < 0 ? h_first
                              : (x->mask ? (const REAL *)x->hm : (const REAL *)x->hs + prev * N * H);
            FN(step_gemm)(gemm, packed, N, lo, hi, H, hin, wt, G, a);
            #pragma omp barrier
            if (rnn) FN(rnn_fwd_rows)(x, t, prev, a);
            else FN(gru_fwd_rows)(x, t, prev, a);
        }
    }
}

/* The GRU/RNN backward time loop, steps visited last to first. Per step: with the recurrent layer
 * norm, arec = h_in_t W_hh^T recomputed (wt = W_hh^T (H, G)); the step kernel; rec (N, H) =
 * da_t W_hh (w (G, H)); with dw, dw (G, H) += da_t^T h_in_t. h_in (T, N, H): each step's GEMM
 * input. */
void FN(gru_bwd_seq)(const StepCtx *x, const long *order, const long *prevs, long count,
                     const REAL *w, const REAL *wt, const REAL *h_in, REAL *dw, REAL *rec,
                     long rnn, long packed, gemm_fn gemm) {
    const long N = x->N, H = x->H, G = rnn ? H : 3 * H;
    #pragma omp parallel num_threads(x->nthreads) if (x->nthreads > 1)
    {
        long glo, ghi, hlo, hhi, plo, phi; /* this thread's columns of dw (BLAS), rec and arec */
        rk_share(G, 16, &glo, &ghi);
        FN(gemm_share)(H, packed, &hlo, &hhi);
        FN(gemm_share)(G, packed, &plo, &phi);
        for (long s = count - 1; s >= 0; s--) {
            const long t = order[s];
            const REAL *hin = h_in + t * N * H;
            if (x->arec) {
                FN(step_gemm)(gemm, packed, N, plo, phi, H, hin, wt, G, (REAL *)x->arec);
                #pragma omp barrier
            }
            const REAL *r = s == count - 1 ? (const REAL *)0 : rec;
            if (rnn) FN(rnn_bwd_rows)(x, t, prevs[s], r);
            else FN(gru_bwd_rows)(x, t, prevs[s], r);
            const REAL *da = (const REAL *)x->da + t * x->da_st;
            FN(step_gemm)(gemm, packed, N, hlo, hhi, G, da, w, H, rec);
            if (dw) FN(gemm_tn)(gemm, ghi - glo, H, N, da + glo, G, hin, H, dw + glo * H, H, 1);
            #pragma omp barrier
        }
    }
}

#undef FN
#undef CAT
#undef CAT2
