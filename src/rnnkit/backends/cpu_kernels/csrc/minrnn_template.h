/* minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?") over a whole sequence, for one
 * REAL type; included by rnnkit_cpu.c after lstm_template.h (whose sig it uses). The gates read
 * only the input, so the recurrence h_t = a_t h_{t-1} + b_t is elementwise: each batch row runs
 * its T steps in one pass, vectorised over the H units, the rows split over torch's threads. The
 * formulas are rnnkit.registry.mingru's and minlstm's; tests check these against them in float64.
 *
 *   minGRU  gx (T, N, 2H) = [k_z, k_h]:       z = sig(k_z), a = 1 - z, b = z g(k_h)
 *   minLSTM gx (T, N, 3H) = [k_f, k_i, k_h]:  f = sig(k_f), i = sig(k_i), i' = i / (f + i),
 *                                             a = 1 - i', b = i' g(k_h)
 *   with i' = (1 + e^-k_f) / (2 + e^-k_f + e^-k_i), every exponential scaled by e^-m,
 *   m = max(-k_f, -k_i, 0), so that none overflows (the normalised gates are finite for any k)
 *   g(x) = x + 0.5 for x >= 0, sig(x) else;  h (T, N, H), h0 (N, H) */

#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)
#define FN(name) CAT(name, SFX)

static inline REAL FN(g)(REAL x) { return x >= 0 ? x + (REAL)0.5 : FN(sig)(x); }
/* i' = i / (f + i) of minLSTM, from k_f and k_i without overflow */
static inline REAL FN(norm_input_gate)(REAL kf, REAL ki) {
    const REAL nf = -kf, ni = -ki;
    const REAL m = nf > ni ? (nf > 0 ? nf : 0) : (ni > 0 ? ni : 0);
    const REAL e0 = EXP(-m), ef = EXP(nf - m), ei = EXP(ni - m);
    return (e0 + ef) / ((REAL)2 * e0 + ef + ei);
}

static inline REAL FN(dg)(REAL x) {
    const REAL s = FN(sig)(x);
    return x > 0 ? (REAL)1 : s * ((REAL)1 - s); /* at 0: sigmoid's side, as autograd's relu */
}

void FN(minrnn_fwd)(const REAL *gx, const REAL *h0, REAL *h, long T, long N, long H, long lstm,
                    long nthreads) {
    const long G = (lstm ? 3 : 2) * H;
    #pragma omp parallel for num_threads(nthreads) if (nthreads > 1) schedule(static)
    for (long n = 0; n < N; n++) {
        const REAL *prev = h0 + n * H;
        for (long t = 0; t < T; t++) {
            const REAL *k = gx + (t * N + n) * G;
            REAL *out = h + (t * N + n) * H;
            if (lstm) {
                #pragma omp simd
                for (long j = 0; j < H; j++) {
                    const REAL ip = FN(norm_input_gate)(k[j], k[H + j]);
                    out[j] = prev[j] + ip * (FN(g)(k[2 * H + j]) - prev[j]);
                }
            } else {
                #pragma omp simd
                for (long j = 0; j < H; j++) {
                    const REAL z = FN(sig)(k[j]);
                    out[j] = prev[j] + z * (FN(g)(k[H + j]) - prev[j]);
                }
            }
            prev = out;
        }
    }
}

/* dgx (T, N, G) and dh0 (N, H) from dh (T, N, H), the gradient reaching each h_t from outside
 * the recurrence; carry (N, H) is scratch for the gradient carried to h_{t-1}. */
void FN(minrnn_bwd)(const REAL *gx, const REAL *h0, const REAL *h, const REAL *dh, REAL *dgx,
                    REAL *dh0, REAL *carry, long T, long N, long H, long lstm, long nthreads) {
    const long G = (lstm ? 3 : 2) * H;
    #pragma omp parallel for num_threads(nthreads) if (nthreads > 1) schedule(static)
    for (long n = 0; n < N; n++) {
        REAL *c = carry + n * H;
        #pragma omp simd
        for (long j = 0; j < H; j++) c[j] = 0;
        for (long t = T - 1; t >= 0; t--) {
            const REAL *k = gx + (t * N + n) * G, *d_out = dh + (t * N + n) * H;
            const REAL *prev = t ? h + ((t - 1) * N + n) * H : h0 + n * H;
            REAL *dk = dgx + (t * N + n) * G;
            if (lstm) {
                #pragma omp simd
                for (long j = 0; j < H; j++) {
                    /* i' = sig(log i - log f): d i'/d k_f = -i'(1 - i')(1 - f), d/d k_i = ...(1 - i) */
                    const REAL d = d_out[j] + c[j];
                    const REAL ip = FN(norm_input_gate)(k[j], k[H + j]);
                    const REAL gh = FN(g)(k[2 * H + j]), dip = d * (gh - prev[j]) * ip * ((REAL)1 - ip);
                    dk[j] = -dip * FN(sig)(-k[j]);
                    dk[H + j] = dip * FN(sig)(-k[H + j]);
                    dk[2 * H + j] = d * ip * FN(dg)(k[2 * H + j]);
                    c[j] = d * ((REAL)1 - ip);
                }
            } else {
                #pragma omp simd
                for (long j = 0; j < H; j++) {
                    const REAL d = d_out[j] + c[j];
                    const REAL z = FN(sig)(k[j]), gh = FN(g)(k[H + j]);
                    dk[j] = d * (gh - prev[j]) * z * ((REAL)1 - z);
                    dk[H + j] = d * z * FN(dg)(k[H + j]);
                    c[j] = d * ((REAL)1 - z);
                }
            }
        }
        #pragma omp simd
        for (long j = 0; j < H; j++) dh0[n * H + j] = c[j];
    }
}

#undef FN
#undef CAT
#undef CAT2
