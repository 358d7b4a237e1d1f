/* sLSTM (Beck et al. 2024, "xLSTM", sec. 2.2) over a whole direction, for one REAL type; included
 * by rnnkit_cpu.c after lstm_template.h (whose sig it uses). The formulas are
 * rnnkit.registry.slstm's; tests check these kernels against its step loop and the NumPy
 * reference in float64, forward and gradients.
 *
 * Shapes: gx, pre, dgx (T, N, 4H), gates [i, f, z, o] gate-major (gx with b_ih, bias (4H) b_hh);
 * R (K, 4Hk, Hk) the block-diagonal recurrent weight, Hk = H / K, head k maps units k Hk ...
 * (k + 1) Hk - 1 of h to its rows g Hk + j (gate g, unit j of the head); h0, c0, n0, m0 (N, H);
 * hs, cs, ns, ms (T, N, H); the scratch a (K, N, 4Hk): one step's recurrent GEMM outputs, head by
 * head. Per step and head the recurrent GEMM is one call of rnnkit's panel kernel or of torch's
 * BLAS (gemm_fn, column-major), the gate math one vectorised pass over the batch rows, split over
 * torch's threads:
 *
 *   pre = gx_t + bias + R h_{t-1};  log f = f~ (exp gate) or -softplus(-f~) (sigmoid gate)
 *   m_t = max(log f + m_{t-1}, i~),  i' = exp(i~ - m_t),  f' = exp(log f + m_{t-1} - m_t)
 *   c_t = f' c_{t-1} + i' tanh(z~),  n_t = f' n_{t-1} + i',  h_t = sigmoid(o~) c_t / n_t
 *
 * The backward differentiates m as autograd does (torch.maximum: a tie splits the gradient in
 * halves), so gradients reaching c, n or m of any step from outside are exact too. */

#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)
#define SFN(name) CAT(name, SFX)

#ifdef RNNKIT_F64
#define SL_LOG log
#else
#define SL_LOG logf
#endif

/* log f from f~: f~ (exp gate) or -softplus(-f~) with torch's threshold of 20 (sigmoid gate);
 * log(1 + e^y) rather than log1p, which does not vectorize: the same to 1e-16 in float64 */
static inline REAL SFN(slstm_log_f)(REAL f, long sigmoid_f) {
    const REAL y = -f;
    return sigmoid_f ? -(y > (REAL)20 ? y : SL_LOG((REAL)1 + EXP(y))) : f;
}

/* c (N, n) = a (N, k) b for head `head` of a step: on its panels (`packed`, one block of
 * `pstride` values per head, panel_gemm.h) where the Python side packed them, else torch's BLAS
 * with b the head's R_k^T (forward, `fwd`) or R_k (backward) */
static void SFN(slstm_head_gemm)(const REAL *R, const REAL *packed, long pstride, long head,
                                 const REAL *a, long lda, REAL *c, long ldc, long N, long hk,
                                 long fwd, long nthreads, gemm_fn gemm) {
    const long k = fwd ? hk : 4 * hk, n = fwd ? 4 * hk : hk;
    if (packed) {
        CAT(panel_matmul, SFX)(N, n, k, a, lda, 1, packed + head * pstride, NULL, c, ldc, 0,
                               nthreads);
        return;
    }
    /* column-major: c^T (n, N) = op(R_k) a^T, R_k (4Hk, Hk) row-major is (Hk, 4Hk) there */
    const int mi = (int)n, ni = (int)N, ki = (int)k, ldr = (int)hk, la = (int)lda, lc = (int)ldc;
    const REAL one = 1, zero = 0;
    gemm(fwd ? "T" : "N", "N", &mi, &ni, &ki, &one, R + head * 4 * hk * hk, &ldr, a, &la, &zero,
         c, &lc);
}

/* One head's units of one batch row, forward: g, p, bias the row's gate-major (4H) vectors at
 * the head's first unit (gate q at q H), r the head's GEMM output (4Hk, gate q at q Hk); the
 * state rows at the head's first unit */
static inline void SFN(slstm_fwd_units)(const REAL *restrict g, const REAL *restrict bias,
                                        const REAL *restrict r, REAL *restrict p,
                                        const REAL *restrict cp, const REAL *restrict np,
                                        const REAL *restrict mp, REAL *restrict h,
                                        REAL *restrict c, REAL *restrict n, REAL *restrict m,
                                        long hk, long H, long sigmoid_f) {
    for (long q = 0; q < 4; q++) {
        #pragma omp simd
        for (long j = 0; j < hk; j++) p[q * H + j] = g[q * H + j] + bias[q * H + j] + r[q * hk + j];
    }
    #pragma omp simd
    for (long j = 0; j < hk; j++) {
        const REAL pi = p[j], pf = p[H + j], pz = p[2 * H + j], po = p[3 * H + j];
        const REAL decayed = SFN(slstm_log_f)(pf, sigmoid_f) + mp[j];
        const REAL larger = decayed > pi ? decayed : pi;
        const REAL mt = decayed != decayed ? decayed : larger; /* NaN wins, as in torch.maximum */
        const REAL ig = EXP(pi - mt), fg = EXP(decayed - mt);
        const REAL ct = fg * cp[j] + ig * TANH(pz), nt = fg * np[j] + ig;
        c[j] = ct, n[j] = nt, m[j] = mt;
        h[j] = SFN(sig)(po) * ct / nt;
    }
}

void SFN(slstm_fwd)(const REAL *gx, const REAL *bias, const REAL *R, const REAL *packed,
                    const REAL *h0, const REAL *c0, const REAL *n0, const REAL *m0, REAL *pre,
                    REAL *hs, REAL *cs, REAL *ns, REAL *ms, REAL *a, long T, long N, long H, long K, long sigmoid_f,
                    long pstride, long nthreads, gemm_fn gemm) {
    const long hk = H / K, G = 4 * H;
    for (long t = 0; t < T; t++) {
        const long off = t * N * H;
        const REAL *hp = t ? hs + off - N * H : h0, *cp = t ? cs + off - N * H : c0;
        const REAL *np = t ? ns + off - N * H : n0, *mp = t ? ms + off - N * H : m0;
        for (long head = 0; head < K; head++)
            SFN(slstm_head_gemm)(R, packed, pstride, head, hp + head * hk, H,
                                 a + head * N * 4 * hk, 4 * hk, N, hk, 1, nthreads, gemm);
        #pragma omp parallel for num_threads(nthreads) if (nthreads > 1) schedule(static)
        for (long n = 0; n < N; n++)
            for (long head = 0; head < K; head++) {
                const long u = head * hk, row = n * H + u, at = off + row;
                const REAL *g = gx + (t * N + n) * G + u, *r = a + (head * N + n) * 4 * hk;
                REAL *p = pre + (t * N + n) * G + u;
                if (sigmoid_f) /* two copies, each with its gate known: no branch in the loop */
                    SFN(slstm_fwd_units)(g, bias + u, r, p, cp + row, np + row, mp + row, hs + at,
                                         cs + at, ns + at, ms + at, hk, H, 1);
                else
                    SFN(slstm_fwd_units)(g, bias + u, r, p, cp + row, np + row, mp + row, hs + at,
                                         cs + at, ns + at, ms + at, hk, H, 0);
            }
    }
}

/* One head's units of one batch row, backward (the layout of slstm_fwd_units; dp the row of
 * dgx, da the head's (4Hk) row of the scratch for its GEMM; dc, dn, dm the carries, updated) */
static inline void SFN(slstm_bwd_units)(const REAL *restrict p, const REAL *restrict cp,
                                        const REAL *restrict np, const REAL *restrict mp,
                                        const REAL *restrict c, const REAL *restrict n,
                                        const REAL *restrict m, const REAL *restrict dh_out,
                                        const REAL *restrict dh_rec, REAL *restrict dcc,
                                        REAL *restrict dnc, REAL *restrict dmc,
                                        REAL *restrict dp, REAL *restrict da, long hk, long H,
                                        long sigmoid_f) {
    #pragma omp simd
    for (long j = 0; j < hk; j++) {
        const REAL pi = p[j], pf = p[H + j], pz = p[2 * H + j], po = p[3 * H + j];
        const REAL decayed = SFN(slstm_log_f)(pf, sigmoid_f) + mp[j], mt = m[j];
        const REAL ig = EXP(pi - mt), fg = EXP(decayed - mt);
        const REAL tz = TANH(pz), so = SFN(sig)(po), nt = n[j], q = c[j] / nt;
        const REAL dh = dh_out[j] + dh_rec[j];
        const REAL dpo = dh * q * so * ((REAL)1 - so);
        const REAL dc = dcc[j] + dh * so / nt, dn = dnc[j] - dh * so * q / nt;
        const REAL dig = dc * tz + dn, dfg = dc * cp[j] + dn * np[j];
        const REAL dpz = dc * ig * ((REAL)1 - tz * tz);
        const REAL dm = dmc[j] - dig * ig - dfg * fg;
        /* torch.maximum's gradient: to the larger input, in halves on a tie */
        const REAL to_dec = decayed > pi ? dm : (pi > decayed ? (REAL)0 : dm / 2);
        const REAL ddec = dfg * fg + to_dec, dpi = dig * ig + (dm - to_dec);
        const REAL dpf = sigmoid_f ? ddec * SFN(sig)(-pf) : ddec;
        dcc[j] = dc * fg, dnc[j] = dn * fg, dmc[j] = ddec;
        dp[j] = dpi, dp[H + j] = dpf, dp[2 * H + j] = dpz, dp[3 * H + j] = dpo;
        da[j] = dpi, da[hk + j] = dpf, da[2 * hk + j] = dpz, da[3 * hk + j] = dpo;
    }
}

/* From the gradients reaching every step's h from outside (dhs (T, N, H)) and the final state's
 * c, n, m (dcn, dnn, dmn (N, H), or NULL for none): dgx (T, N, 4H) and the initial state's dh0,
 * dc0, dn0, dm0 (N, H); the Python side makes dR from dgx and the h of every step, one GEMM per
 * head and gate over all steps. `packed`: the panels of
 * every R_k, or NULL. Scratch: da (K, N, 4Hk), dhr (N, H) the gradient carried to h_{t-1}
 * through R; the carries of c, n, m are kept in dc0, dn0, dm0. */
void SFN(slstm_bwd)(const REAL *R, const REAL *packed, const REAL *c0, const REAL *n0,
                    const REAL *m0, const REAL *pre, const REAL *cs, const REAL *ns,
                    const REAL *ms, const REAL *dhs, const REAL *dcn, const REAL *dnn,
                    const REAL *dmn, REAL *dgx, REAL *dh0, REAL *dc0, REAL *dn0, REAL *dm0,
                    REAL *da, REAL *dhr, long T, long N, long H, long K, long sigmoid_f,
                    long pstride, long nthreads, gemm_fn gemm) {
    const long hk = H / K, G = 4 * H, NH = N * H;
    for (long i = 0; i < NH; i++) {
        dhr[i] = 0;
        dc0[i] = dcn ? dcn[i] : 0, dn0[i] = dnn ? dnn[i] : 0, dm0[i] = dmn ? dmn[i] : 0;
    }
    REAL *dcc = dc0, *dnc = dn0, *dmc = dm0; /* the carries end as the initial state's */
    for (long t = T - 1; t >= 0; t--) {
        const long off = t * NH;
        const REAL *cp = t ? cs + off - NH : c0;
        const REAL *np = t ? ns + off - NH : n0, *mp = t ? ms + off - NH : m0;
        #pragma omp parallel for num_threads(nthreads) if (nthreads > 1) schedule(static)
        for (long n = 0; n < N; n++)
            for (long head = 0; head < K; head++) {
                const long u = head * hk, row = n * H + u, at = off + row;
                const REAL *p = pre + (t * N + n) * G + u;
                REAL *dp = dgx + (t * N + n) * G + u, *dak = da + (head * N + n) * 4 * hk;
                if (sigmoid_f)
                    SFN(slstm_bwd_units)(p, cp + row, np + row, mp + row, cs + at, ns + at,
                                         ms + at, dhs + at, dhr + row, dcc + row, dnc + row,
                                         dmc + row, dp, dak, hk, H, 1);
                else
                    SFN(slstm_bwd_units)(p, cp + row, np + row, mp + row, cs + at, ns + at,
                                         ms + at, dhs + at, dhr + row, dcc + row, dnc + row,
                                         dmc + row, dp, dak, hk, H, 0);
            }
        /* per head: dhr[:, k Hk:(k+1) Hk] = da_k R_k, the gradient reaching h_{t-1} */
        if (t)
            for (long head = 0; head < K; head++)
                SFN(slstm_head_gemm)(R, packed, pstride, head, da + head * N * 4 * hk, 4 * hk,
                                     dhr + head * hk, H, N, hk, 0, nthreads, gemm);
    }
    /* dh0 = da_0 R: the last GEMM, written straight into dh0 */
    for (long head = 0; head < K; head++)
        SFN(slstm_head_gemm)(R, packed, pstride, head, da + head * N * 4 * hk, 4 * hk,
                             dh0 + head * hk, H, N, hk, 0, nthreads, gemm);
}

#undef SL_LOG
#undef SFN
#undef CAT
#undef CAT2
