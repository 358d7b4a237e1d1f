/* LSTM step kernels for one REAL type; included by rnnkit_cpu.c once per type (SFX names it). */

#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)
#define FN(name) CAT(name, SFX)

static inline REAL FN(sig)(REAL x) { return (REAL)1 / ((REAL)1 + EXP(-x)); }

/* The lerp weights of row n at step t: a contiguous row (returned), or one weight for the whole
 * row in *w (NULL returned; *w == 0: no blend). The Python side passes rows with stride 1 or 0.
 * Seeded weights are drawn into ``scratch`` (H values), which is returned. */
static inline const REAL *FN(keep_row)(const Keep *k, long t, long n, REAL *w, REAL *scratch,
                                       long H) {
    *w = (REAL)k->val;
    if (k->seeded) {
        const unsigned long long base = k->seed + (unsigned long long)(t * k->st + n * k->sn);
        const unsigned long long cut = rk_cut(k->val);
        #pragma omp simd
        for (long j = 0; j < H; j++)
            scratch[j] = splitmix64(base + (unsigned long long)j) < cut ? (REAL)1 : (REAL)0;
        return scratch;
    }
    if (!k->p) return (const REAL *)0;
    const REAL *row = (const REAL *)k->p + t * k->st + n * k->sn;
    if (k->sj) return row;
    *w = row[0];
    return (const REAL *)0;
}

/* The context a thread of a backward step works with: x0 itself for thread 0; for thread k > 0 a
 * copy whose gradient sums (g_peep ... g_bias_ih) point into row k - 1 of x0->partials, which the
 * Python side adds up after the loop (each thread sums the rows n it was given). */
static inline void FN(thread_ctx)(const StepCtx *x0, StepCtx *own) {
    *own = *x0;
#ifdef _OPENMP
    const int tid = omp_get_thread_num();
    if (tid == 0 || !x0->partials) return;
    REAL *row = (REAL *)x0->partials + (tid - 1) * x0->part_len;
    void **sums[RNNKIT_SUMS] = {&own->g_peep, &own->g_lnc_w, &own->g_lnc_b, &own->g_ln_w,
                                &own->g_ln_ih, &own->g_bias, &own->g_bias_ih};
    for (int i = 0; i < RNNKIT_SUMS; i++)
        if (x0->part_off[i] >= 0) *sums[i] = row + x0->part_off[i];
#endif
}

/* torch.lerp(new, prev, w), exact at w = 0; w = 1 (a kept unit, a padded step) selects prev, so a
 * NaN or Inf in the discarded new value stays out of the state, as the reference's torch.where */
static inline REAL FN(lerp)(REAL nw, REAL prev, REAL w) {
    if (w == (REAL)1) return prev;
    return w < (REAL)0.5 ? nw + w * (prev - nw) : prev - (prev - nw) * ((REAL)1 - w);
}

/* out = lerp(new, prev, k_t) for row n (zoneout and lengths); out may be new itself */
static inline void FN(blend)(const Keep *k, long t, long n, const REAL *nw,
                             const REAL *restrict prev, REAL *out, long H) {
    REAL w, scratch[k->seeded ? H : 1];
    const REAL *row = FN(keep_row)(k, t, n, &w, scratch, H);
    if (row) {
        #pragma omp simd
        for (long j = 0; j < H; j++) out[j] = FN(lerp)(nw[j], prev[j], row[j]);
    } else if (w == (REAL)1) { /* every unit kept (a padded step): the previous state */
        #pragma omp simd
        for (long j = 0; j < H; j++) out[j] = prev[j];
    } else if (w != 0) { /* one weight for the row (zoneout in evaluation): lerp's two forms */
        const REAL v = (REAL)1 - w;
        if (w < (REAL)0.5) {
            #pragma omp simd
            for (long j = 0; j < H; j++) out[j] = nw[j] + w * (prev[j] - nw[j]);
        } else {
            #pragma omp simd
            for (long j = 0; j < H; j++) out[j] = prev[j] - (prev[j] - nw[j]) * v;
        }
    } else if (out != nw) {
        #pragma omp simd
        for (long j = 0; j < H; j++) out[j] = nw[j];
    }
}

/* the gradient d of a blended state split by its lerp weights: kept = d w, d <- d (1 - w) */
static inline void FN(split_keep)(REAL *restrict d, REAL *restrict kept, const REAL *restrict w,
                                  REAL wv, long H) {
    if (w) {
        #pragma omp simd
        for (long j = 0; j < H; j++) kept[j] = d[j] * w[j], d[j] *= (REAL)1 - w[j];
    } else if (wv != 0) {
        #pragma omp simd
        for (long j = 0; j < H; j++) kept[j] = d[j] * wv, d[j] *= (REAL)1 - wv;
    } else {
        #pragma omp simd
        for (long j = 0; j < H; j++) kept[j] = 0;
    }
}

/* out = (x - mu) * rs [* w] [+ b] over x[0:n]: a layer norm with known statistics */
static inline void FN(ln_apply)(const REAL *restrict x, REAL mu, REAL rs, const REAL *restrict w,
                                const REAL *restrict b, REAL *restrict out, long n) {
    #pragma omp simd
    for (long j = 0; j < n; j++) out[j] = (x[j] - mu) * rs;
    if (w) {
        #pragma omp simd
        for (long j = 0; j < n; j++) out[j] *= w[j];
    }
    if (b) {
        #pragma omp simd
        for (long j = 0; j < n; j++) out[j] += b[j];
    }
}

/* dh of h_t in backward (dout_t + the kept part dhk + rec * mask), split into dh' (in d) and the
 * part kept into h_prev (the new dhk) */
static inline void FN(split_dh)(const StepCtx *x, long t, long n, const REAL *restrict rec,
                                REAL *restrict d) {
    const long N = x->N, H = x->H;
    const REAL *doutn = (const REAL *)x->dout + (t * N + n) * H, *mask = x->mask;
    REAL *restrict dhkn = (REAL *)x->dhk + n * H;
    REAL khw, scratch[x->kh.seeded ? H : 1];
    const REAL *kh = FN(keep_row)(&x->kh, t, n, &khw, scratch, H);
    #pragma omp simd
    for (long j = 0; j < H; j++) d[j] = doutn[j] + dhkn[j];
    if (rec && mask) {
        #pragma omp simd
        for (long j = 0; j < H; j++) d[j] += rec[n * H + j] * mask[n * H + j];
    } else if (rec) {
        #pragma omp simd
        for (long j = 0; j < H; j++) d[j] += rec[n * H + j];
    }
    FN(split_keep)(d, dhkn, kh, khw, H);
}

/* Layer-norm backward: out = rstd (d w - mean(d w) - xhat mean(d w xhat)); g_w += d xhat.
 * out may be d itself (each element is read before it is written). */
static inline void FN(ln_backward)(const REAL *d, const REAL *xhat,
                                   const REAL *restrict w, REAL rs, REAL *restrict g_w,
                                   REAL *out, long G) {
    REAL m1 = 0, m2 = 0;
    #pragma omp simd reduction(+ : m1, m2)
    for (long k = 0; k < G; k++) {
        const REAL dw = d[k] * w[k];
        m1 += dw, m2 += dw * xhat[k];
    }
    if (g_w) {
        #pragma omp simd
        for (long k = 0; k < G; k++) g_w[k] += d[k] * xhat[k];
    }
    m1 /= (REAL)G, m2 /= (REAL)G;
    #pragma omp simd
    for (long k = 0; k < G; k++) out[k] = rs * (d[k] * w[k] - m1 - xhat[k] * m2);
}

/* The input layer norm's backward for row n of step t: dgx_t = LN_ih'(dz) from gx_t and its
 * statistics (st[4], st[5]); dgx may be the gx buffer itself (each row read before written). */
static inline void FN(input_ln_backward)(const StepCtx *x, long t, long n, const REAL *dzn,
                                         const REAL *st, long G) {
    const long row = (t * x->N + n) * G;
    const REAL *gxn = (const REAL *)x->gx + row;
    REAL *xhat = (REAL *)x->dgx + row; /* x-hat first, then the gradient in place */
    #pragma omp simd
    for (long k = 0; k < G; k++) xhat[k] = (gxn[k] - st[4]) * st[5];
    FN(ln_backward)(dzn, xhat, x->ln_ih, st[5], x->g_ln_ih, xhat, G);
}

/* mean and 1/sqrt(var + eps) of x[0:n] (biased variance) */
static inline void FN(moments)(const REAL *restrict x, long n, REAL *mu, REAL *rs) {
    /* one pass over d = x - x[0]: the shift keeps E[d^2] - E[d]^2 free of cancellation */
    REAL s = 0, q = 0;
    const REAL shift = x[0];
    #pragma omp simd reduction(+ : s, q)
    for (long k = 0; k < n; k++) {
        const REAL d = x[k] - shift;
        s += d, q += d * d;
    }
    const REAL m = s / (REAL)n, var = q / (REAL)n - m * m;
    *mu = shift + m;
    *rs = (REAL)1 / SQRT((var > 0 ? var : 0) + (REAL)LN_EPS);
}

/* xi = [(gx_t - mu) rstd ln_ih] + b_ih into out[0:G], for the input LN's statistics (mu, rs) */
static inline void FN(input_with)(const StepCtx *x, const REAL *restrict gxn, REAL *restrict out,
                                  REAL mu, REAL rs, long G) {
    const REAL *lniw = x->ln_ih, *bih = x->bias_ih;
    if (lniw) {
        #pragma omp simd
        for (long k = 0; k < G; k++) out[k] = (gxn[k] - mu) * rs * lniw[k];
    } else {
        #pragma omp simd
        for (long k = 0; k < G; k++) out[k] = gxn[k];
    }
    if (bih) {
        #pragma omp simd
        for (long k = 0; k < G; k++) out[k] += bih[k];
    }
}

/* xi = [LN(gx_t; ln_ih)] + b_ih into out[0:G], and the input LN's statistics into st[4:6] */
static inline void FN(input_part)(const StepCtx *x, const REAL *restrict gxn, REAL *restrict out,
                                  REAL *st, long G) {
    REAL mu = 0, rs = 1;
    if (x->ln_ih) {
        FN(moments)(gxn, G, &mu, &rs);
        st[4] = mu, st[5] = rs;
    }
    FN(input_with)(x, gxn, out, mu, rs, G);
}

/* the recurrent pre-activation source: xhat = (a - mean) rstd (saved) with LN, else a */
static inline const REAL *FN(recurrent_src)(const StepCtx *x, const REAL *restrict an,
                                            REAL *restrict xhn, REAL *st, long G) {
    if (!x->ln_w) return an;
    REAL mu, rs;
    FN(moments)(an, G, &mu, &rs);
    st[0] = mu, st[1] = rs;
    #pragma omp simd
    for (long k = 0; k < G; k++) xhn[k] = (an[k] - mu) * rs;
    return xhn;
}

/* out (+)= src [* w] [+ b] over [0, len): the recurrent pre-activation's share of the gates
 * (assign: out is written, not added to) */
static inline void FN(add_recurrent)(REAL *restrict out, const REAL *restrict src,
                                     const REAL *restrict w, const REAL *restrict b, long len,
                                     int assign) {
    if (w && assign) {
        #pragma omp simd
        for (long k = 0; k < len; k++) out[k] = src[k] * w[k];
    } else if (w) {
        #pragma omp simd
        for (long k = 0; k < len; k++) out[k] += src[k] * w[k];
    } else if (assign) {
        #pragma omp simd
        for (long k = 0; k < len; k++) out[k] = src[k];
    } else {
        #pragma omp simd
        for (long k = 0; k < len; k++) out[k] += src[k];
    }
    if (b) {
        #pragma omp simd
        for (long k = 0; k < len; k++) out[k] += b[k];
    }
}

/* Forward step t (prev: the step before, -1 for the initial state). a (N, 4H) = hm_prev W_hh^T.
 *   z = [LN(a; ln_w)] + gx_t + b_hh;  i, f = sig(z_i,f + P_i,f c);  g = tanh(z_g)
 *   c' = f c + i g;  o = sig(z_o + P_o c');  h' = o tanh([LN(c'; lnc)])
 *   h_t = lerp(h', h, kh_t);  c_t = lerp(c', c, kc_t);  hm = h_t * mask
 * acts_t keeps (i, f, g, o). */
static void FN(lstm_fwd_rows)(const StepCtx *x, long t, long prev, const REAL *restrict a) {
    const long N = x->N, H = x->H, G = 4 * H;
    const REAL *gx = (const REAL *)x->gx + t * N * G;
    const REAL *bias = x->bias, *lnw = x->ln_w, *peep = x->peep;
    const REAL *lncw = x->lnc_w, *lncb = x->lnc_b, *mask = x->mask;
    const REAL *hp = prev < 0 ? (const REAL *)x->h0 : (const REAL *)x->hs + prev * N * H;
    const REAL *cp = prev < 0 ? (const REAL *)x->c0 : (const REAL *)x->cs + prev * N * H;
    REAL *hs = (REAL *)x->hs + t * N * H, *cs = (REAL *)x->cs + t * N * H;
    REAL *cn = (REAL *)x->cn + t * x->cn_st, *acts = (REAL *)x->acts + t * x->acts_st;
    REAL *xh = lnw ? (REAL *)x->xhat + t * x->xhat_st : (REAL *)0;
    REAL *st = x->stats ? (REAL *)x->stats + t * x->stats_st : (REAL *)0;
    REAL *hm = (REAL *)x->hm;
    const int blend_c = x->kc.p != 0 || x->kc.val != 0.0 || x->kc.seeded;
    #pragma omp for schedule(static)
    for (long n = 0; n < N; n++) {
        const REAL *restrict an = a + n * G, *restrict gxn = gx + n * G;
        const REAL *restrict cpn = cp + n * H, *restrict hpn = hp + n * H;
        REAL *restrict z = acts + n * G, *restrict cnn = cn + n * H;
        REAL *stn = st ? st + n * 6 : (REAL *)0;
        FN(input_part)(x, gxn, z, stn, G);
        FN(add_recurrent)(z, FN(recurrent_src)(x, an, xh ? xh + n * G : (REAL *)0, stn, G), lnw,
                          bias, G, 0);
        REAL *restrict zi = z, *restrict zf = z + H, *restrict zg = z + 2 * H, *restrict zo = z + 3 * H;
        if (peep) {
            #pragma omp simd
            for (long j = 0; j < H; j++) {
                zi[j] += peep[j] * cpn[j];
                zf[j] += peep[H + j] * cpn[j];
            }
        }
        #pragma omp simd
        for (long j = 0; j < H; j++) {
            REAL i = FN(sig)(zi[j]), f = FN(sig)(zf[j]), g = TANH(zg[j]);
            zi[j] = i, zf[j] = f, zg[j] = g;
            cnn[j] = f * cpn[j] + i * g;
        }
        if (peep) {
            #pragma omp simd
            for (long j = 0; j < H; j++) zo[j] += peep[2 * H + j] * cnn[j];
        }
        #pragma omp simd
        for (long j = 0; j < H; j++) zo[j] = FN(sig)(zo[j]);
        REAL *restrict hn = hs + n * H;
        if (x->has_lnc) {
            REAL mu, rs;
            FN(moments)(cnn, H, &mu, &rs);
            st[n * 6 + 2] = mu, st[n * 6 + 3] = rs;
            FN(ln_apply)(cnn, mu, rs, lncw, lncb, hn, H);
        } else {
            #pragma omp simd
            for (long j = 0; j < H; j++) hn[j] = cnn[j];
        }
        #pragma omp simd
        for (long j = 0; j < H; j++) hn[j] = zo[j] * TANH(hn[j]);
        FN(blend)(&x->kh, t, n, hn, hpn, hn, H);
        if (blend_c) FN(blend)(&x->kc, t, n, cnn, cpn, cs + n * H, H);
        if (mask) {
            #pragma omp simd
            for (long j = 0; j < H; j++) hm[n * H + j] = hn[j] * mask[n * H + j];
        }
    }
}

/* lstm_fwd_rows on torch's threads (one step called from Python) */
void FN(lstm_fwd)(const StepCtx *x, long t, long prev, const REAL *restrict a) {
    #pragma omp parallel num_threads(x->nthreads) if (x->nthreads > 1)
    FN(lstm_fwd_rows)(x, t, prev, a);
}

/* The layer norm of c' backward, in place on dcl (the gradient of LN(c')): dc' = rstd (dchat -
 * mean(dchat) - chat mean(dchat chat)) with dchat = dcl * w; g_w += dcl chat, g_b += dcl. No
 * pointer is tested inside a vector loop: a masked load from a NULL pointer costs a microcode
 * assist per iteration on some CPUs (2x the whole backward on AMD EPYC). */
static inline void FN(lnc_backward)(REAL *restrict dcl, const REAL *restrict c, REAL mu, REAL rs,
                                    const REAL *restrict w, REAL *restrict g_w,
                                    REAL *restrict g_b, long H) {
    if (g_w) {
        #pragma omp simd
        for (long j = 0; j < H; j++) g_w[j] += dcl[j] * ((c[j] - mu) * rs);
    }
    if (g_b) {
        #pragma omp simd
        for (long j = 0; j < H; j++) g_b[j] += dcl[j];
    }
    if (w) {
        #pragma omp simd
        for (long j = 0; j < H; j++) dcl[j] *= w[j];
    }
    REAL m1 = 0, m2 = 0;
    #pragma omp simd reduction(+ : m1, m2)
    for (long j = 0; j < H; j++) m1 += dcl[j], m2 += dcl[j] * ((c[j] - mu) * rs);
    m1 /= (REAL)H, m2 /= (REAL)H;
    #pragma omp simd
    for (long j = 0; j < H; j++) dcl[j] = rs * (dcl[j] - m1 - (c[j] - mu) * rs * m2);
}

/* The gate gradients of one row from dh' (in dzi), the gradient reaching c' from c_t (dzf), that
 * of tanh's input (dzg) and do (dzo): dz = (di, df, dg, do) in place, dc (the part of c_prev)
 * += dc' f [+ peephole terms]. with_peep is a constant at each call, so each version of the loop
 * has no test in it. */
static inline void FN(gate_grads)(REAL *restrict dzi, REAL *restrict dzf, REAL *restrict dzg,
                                  const REAL *restrict dzo, REAL *restrict dcn,
                                  const REAL *restrict an, const REAL *restrict cpn,
                                  const REAL *restrict peep, const int with_peep, long H) {
    const REAL *restrict ai = an, *restrict af = an + H, *restrict ag = an + 2 * H;
    #pragma omp simd
    for (long j = 0; j < H; j++) {
        REAL dcp = dzg[j] + dzf[j]; /* total gradient of c' */
        if (with_peep) dcp += dzo[j] * peep[2 * H + j];
        REAL i = ai[j], f = af[j], g = ag[j], c0 = cpn[j];
        REAL di = dcp * g * i * ((REAL)1 - i);
        REAL df = dcp * c0 * f * ((REAL)1 - f);
        REAL dg = dcp * i * ((REAL)1 - g * g);
        REAL dprev = dcp * f;
        if (with_peep) dprev += di * peep[j] + df * peep[H + j];
        dcn[j] += dprev;
        dzi[j] = di, dzf[j] = df, dzg[j] = dg;
    }
}

/* Backward step t: rec (N, H) = da_{t+1} W_hh from the step after (NULL at the first backward
 * step). Reads dout_t, the carried gradients dhk (of h_t, kept part) and dc (of c_t); writes
 * dz_t (gradient of z), da_t (of a, with LN), the new dhk and dc (of h_prev's kept part and
 * c_prev), and accumulates the peephole and layer-norm gain gradients. */
static void FN(lstm_bwd_rows)(const StepCtx *x0, long t, long prev, const REAL *restrict rec) {
    {
    StepCtx own;
    FN(thread_ctx)(x0, &own); /* the gradient sums of threads 1.. go to their own rows */
    const StepCtx *x = &own;
    const long N = x->N, H = x->H, G = 4 * H;
    const REAL *lnw = x->ln_w, *peep = x->peep, *lncw = x->lnc_w;
    const REAL *cp = prev < 0 ? (const REAL *)x->c0 : (const REAL *)x->cs + prev * N * H;
    const REAL *cn = (const REAL *)x->cn + t * x->cn_st, *acts = (const REAL *)x->acts + t * x->acts_st;
    const REAL *xh = lnw ? (const REAL *)x->xhat + t * x->xhat_st : (const REAL *)0;
    const REAL *st = x->stats ? (const REAL *)x->stats + t * x->stats_st : (const REAL *)0;
    const REAL *lncb = x->lnc_b;
    REAL *dc = x->dc, *dz = (REAL *)x->dz + t * N * G;
    REAL *da = lnw ? (REAL *)x->da + t * N * G : (REAL *)0;
    REAL *g_peep = x->g_peep, *g_lncw = x->g_lnc_w, *g_lncb = x->g_lnc_b, *g_lnw = x->g_ln_w;
    const long has_lnc = x->has_lnc;
    #pragma omp for schedule(static)
    for (long n = 0; n < N; n++) {
        const REAL *restrict an = acts + n * G, *restrict cpn = cp + n * H, *restrict cnn = cn + n * H;
        const REAL *restrict ao = an + 3 * H;
        REAL *restrict dzn = dz + n * G, *restrict dcn = dc + n * H;
        REAL *restrict dzi = dzn, *restrict dzf = dzn + H, *restrict dzg = dzn + 2 * H, *restrict dzo = dzn + 3 * H;
        REAL kcw, kc_scratch[x->kc.seeded ? H : 1];
        const REAL *kc = FN(keep_row)(&x->kc, t, n, &kcw, kc_scratch, H);
        FN(split_dh)(x, t, n, rec, dzi); /* dzi as scratch: dh' */
        /* dzf as scratch: the gradient reaching c' from c_t; dc keeps the part kept into c_prev */
        #pragma omp simd
        for (long j = 0; j < H; j++) dzf[j] = dcn[j];
        FN(split_keep)(dzf, dcn, kc, kcw, H);
        /* output gate and the gradient of tanh's input (dzg as scratch: first LN(c'), then dcl) */
        REAL cmu = 0, crs = 0;
        if (has_lnc) {
            cmu = st[n * 6 + 2], crs = st[n * 6 + 3];
            FN(ln_apply)(cnn, cmu, crs, lncw, lncb, dzg, H);
        } else {
            #pragma omp simd
            for (long j = 0; j < H; j++) dzg[j] = cnn[j];
        }
        #pragma omp simd
        for (long j = 0; j < H; j++) {
            REAL tc = TANH(dzg[j]), o = ao[j], dh = dzi[j];
            dzo[j] = dh * tc * o * ((REAL)1 - o);
            dzg[j] = dh * o * ((REAL)1 - tc * tc);
        }
        if (has_lnc) FN(lnc_backward)(dzg, cnn, cmu, crs, lncw, g_lncw, g_lncb, H);
        if (peep) FN(gate_grads)(dzi, dzf, dzg, dzo, dcn, an, cpn, peep, 1, H);
        else FN(gate_grads)(dzi, dzf, dzg, dzo, dcn, an, cpn, peep, 0, H);
        if (g_peep) {
            #pragma omp simd
            for (long j = 0; j < H; j++) {
                g_peep[j] += dzi[j] * cpn[j];
                g_peep[H + j] += dzf[j] * cpn[j];
                g_peep[2 * H + j] += dzo[j] * cnn[j];
            }
        }
        if (lnw) FN(ln_backward)(dzn, xh + n * G, lnw, st[n * 6 + 1], g_lnw, da + n * G, G);
        if (x->ln_ih) FN(input_ln_backward)(x, t, n, dzn, st + n * 6, G);
    }
    }
}

/* lstm_bwd_rows on torch's threads (one step called from Python) */
void FN(lstm_bwd)(const StepCtx *x0, long t, long prev, const REAL *restrict rec) {
    #pragma omp parallel num_threads(x0->nthreads) if (x0->nthreads > 1)
    FN(lstm_bwd_rows)(x0, t, prev, rec);
}

/* dh0 = dhk + rec * mask after the last backward step (rec may be NULL for a 0-step sequence) */
void FN(bwd_finish)(const StepCtx *x, const REAL *restrict rec, REAL *restrict dh0) {
    const long NH = x->N * x->H;
    const REAL *dhk = x->dhk, *mask = x->mask;
    if (rec && mask) {
        #pragma omp simd
        for (long k = 0; k < NH; k++) dh0[k] = dhk[k] + rec[k] * mask[k];
    } else if (rec) {
        #pragma omp simd
        for (long k = 0; k < NH; k++) dh0[k] = dhk[k] + rec[k];
    } else {
        #pragma omp simd
        for (long k = 0; k < NH; k++) dh0[k] = dhk[k];
    }
}

/* c (m, n) (+)= a (m, k) b (k, n), all row-major with leading dimensions (a column block of b and
 * c: b + lo, c + lo): one GEMM of the time loops, on the column-major BLAS as c^T = b^T a^T */
static inline void FN(gemm_nn)(gemm_fn gemm, long m, long n, long k, const REAL *a, long lda,
                               const REAL *b, long ldb, REAL *c, long ldc, int accumulate) {
    if (m <= 0 || n <= 0) return;
    const int M = (int)m, Nn = (int)n, K = (int)k, LA = (int)lda, LB = (int)ldb, LC = (int)ldc;
    const REAL one = 1, beta = accumulate ? (REAL)1 : (REAL)0;
    gemm("N", "N", &Nn, &M, &K, &one, b, &LB, a, &LA, &beta, c, &LC);
}

/* c[:, lo:hi] = a (m, k) b[:, lo:hi], this thread's columns of a step's GEMM: b row-major (row
 * stride ldb) on the BLAS, or, with packed, b's panels (panel_gemm.h; lo a multiple of RK_PW) */
/* this thread's columns [lo, hi) of a step GEMM's n: whole panels with packed, else BLAS's blocks */
static inline void FN(gemm_share)(long n, long packed, long *lo, long *hi) {
    rk_share(n, packed ? RK_PW : 16, lo, hi);
}

static inline void FN(step_gemm)(gemm_fn gemm, long packed, long m, long lo, long hi, long k,
                                 const REAL *a, const REAL *b, long ldb, REAL *c) {
    if (packed) FN(panel_gemm)(m, lo, hi, k, a, k, b, c, ldb);
    else FN(gemm_nn)(gemm, m, hi - lo, k, a, k, b + lo, ldb, c + lo, ldb, 0);
}

/* c (m, n) (+)= a^T b for a (k, m), b (k, n), row-major (a column block of a: a + lo): a weight
 * gradient summed over the batch rows */
static inline void FN(gemm_tn)(gemm_fn gemm, long m, long n, long k, const REAL *a, long lda,
                               const REAL *b, long ldb, REAL *c, long ldc, int accumulate) {
    if (m <= 0 || n <= 0) return;
    const int M = (int)m, Nn = (int)n, K = (int)k, LA = (int)lda, LB = (int)ldb, LC = (int)ldc;
    const REAL one = 1, beta = accumulate ? (REAL)1 : (REAL)0;
    gemm("N", "T", &Nn, &M, &K, &one, b, &LB, a, &LA, &beta, c, &LC);
}

/* The time loops run in one parallel region on torch's threads: per step each thread computes its
 * share of the GEMM's output columns (rk_share; BLAS runs single-threaded inside the region; with
 * packed != 0 the weight comes as panels, pack_panels, and panel_gemm.h multiplies), a
 * barrier, then the step kernel with the batch rows split over the threads (its loop ends in a
 * barrier). One fork for the whole sequence; on one thread the region is the plain loop. */

/* The forward time loop over steps order[0:count) (prevs: the step before each, -1 for the initial
 * state): per step the recurrent GEMM a (N, 4H) = hin W_hh^T with wt = W_hh^T (H, 4H) row-major,
 * then the step kernel. h_first is the first GEMM input (h0, or h0 * mask). */
void FN(lstm_fwd_seq)(const StepCtx *x, const long *order, const long *prevs, long count,
                      const REAL *wt, REAL *a, const REAL *h_first, long packed, gemm_fn gemm) {
    const long N = x->N, H = x->H, G = 4 * H;
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
            FN(lstm_fwd_rows)(x, t, prev, a);
        }
    }
}

/* The backward time loop over steps order[0:count), visited last to first: the step kernel, then
 * the recurrent gradient rec (N, H) = d_pre_t W_hh (w: W_hh (4H, H) row-major; d_pre: da with the
 * recurrent layer norm, else dz). rec holds the last GEMM's result for bwd_finish. */
void FN(lstm_bwd_seq)(const StepCtx *x, const long *order, const long *prevs, long count,
                      const REAL *w, REAL *rec, long packed, gemm_fn gemm) {
    const long N = x->N, H = x->H, G = 4 * H;
    const REAL *d_pre = x->ln_w ? (const REAL *)x->da : (const REAL *)x->dz;
    #pragma omp parallel num_threads(x->nthreads) if (x->nthreads > 1)
    {
        long lo, hi;
        FN(gemm_share)(H, packed, &lo, &hi);
        for (long s = count - 1; s >= 0; s--) {
            const long t = order[s];
            FN(lstm_bwd_rows)(x, t, prevs[s], s == count - 1 ? (const REAL *)0 : rec);
            FN(step_gemm)(gemm, packed, N, lo, hi, G, d_pre + t * N * G, w, H, rec);
            #pragma omp barrier
        }
    }
}

#undef FN
#undef CAT
#undef CAT2
