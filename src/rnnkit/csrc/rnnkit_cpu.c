/* rnnkit's CPU kernels, compiled on first use (rnnkit/cpu_kernels.py): float32 and float64. */
#include <math.h>

#include "rnnkit_cpu.h"

#define LN_EPS 1e-5

#define REAL float
#define SFX f32
#define EXP expf
#define TANH tanhf
#define SQRT sqrtf
#include "lstm_template.h"
#undef REAL
#undef SFX
#undef EXP
#undef TANH
#undef SQRT

#define REAL double
#define SFX f64
#define EXP exp
#define TANH tanh
#define SQRT sqrt
#include "lstm_template.h"

/* Bernoulli(p) masks: out[i] = 1 with probability p, else 0, from a counter-based generator
 * (splitmix64 of seed + i; Steele, Lea & Flood 2014): reproducible from the seed, which the Python
 * side draws from torch's generator, and ~10x faster than torch's CPU bernoulli_. */
static inline unsigned long long splitmix64(unsigned long long z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void bernoulli_f32(float *out, long n, double p, unsigned long long seed) {
    const unsigned long long cut = (unsigned long long)(p * 18446744073709551616.0);
    #pragma omp simd
    for (long i = 0; i < n; i++) out[i] = splitmix64(seed + (unsigned long long)i) < cut ? 1.0f : 0.0f;
}

void bernoulli_f64(double *out, long n, double p, unsigned long long seed) {
    const unsigned long long cut = (unsigned long long)(p * 18446744073709551616.0);
    #pragma omp simd
    for (long i = 0; i < n; i++) out[i] = splitmix64(seed + (unsigned long long)i) < cut ? 1.0 : 0.0;
}

/* the version the Python side checks before binding the structs */
long rnnkit_abi_version(void) { return 2; }
