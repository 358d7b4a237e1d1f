/* rnnkit's CPU kernels, compiled on first use (rnnkit/cpu_kernels.py), one library per type:
 * float32 by default, float64 with -DRNNKIT_F64 (compiling one type takes half the time). */
#include <math.h>

#include "rnnkit_cpu.h"

#define LN_EPS 1e-5

#ifdef RNNKIT_F64
#define REAL double
#define SFX f64
#define EXP exp
#define TANH tanh
#define SQRT sqrt
#else
#define REAL float
#define SFX f32
#define EXP expf
#define TANH tanhf
#define SQRT sqrtf
#endif
#include "lstm_template.h"
#include "gru_template.h"

/* Bernoulli(p) masks: out[i] = 1 with probability p, else 0, from a counter-based generator
 * (splitmix64 of seed + i; Steele, Lea & Flood 2014): reproducible from the seed, which the Python
 * side draws from torch's generator, and ~10x faster than torch's CPU bernoulli_. */
static inline unsigned long long splitmix64(unsigned long long z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

#define BERNOULLI_CAT2(a, b) a##_##b
#define BERNOULLI_CAT(a, b) BERNOULLI_CAT2(a, b)
void BERNOULLI_CAT(bernoulli, SFX)(REAL *out, long n, double p, unsigned long long seed) {
    const unsigned long long cut = (unsigned long long)(p * 18446744073709551616.0);
    #pragma omp simd
    for (long i = 0; i < n; i++) out[i] = splitmix64(seed + (unsigned long long)i) < cut ? (REAL)1 : (REAL)0;
}

/* the version the Python side checks before binding the structs */
long rnnkit_abi_version(void) { return 4; }
