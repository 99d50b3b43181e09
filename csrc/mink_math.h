// The per-element math of the mink_gan ops, once, for the CPU kernels (mink_ops.cpp), the CUDA
// kernels (mink_kernels.cuh) and the CPU emulation of the CUDA kernels (tests/ops/emulation/): the
// CPU tests then exercise the formulas the GPU runs. No ATen: only c10's C10_HOST_DEVICE.
//
// What is not shared, on purpose: exp (the CPU's float path uses a vectorizable polynomial, the
// GPU its libm), and how an integer power is picked (compile-time on the CPU, so loops vectorize).
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>

namespace mink_gan {
namespace math {

C10_HOST_DEVICE inline float abs_of(float x) { return fabsf(x); }
C10_HOST_DEVICE inline double abs_of(double x) { return fabs(x); }
C10_HOST_DEVICE inline float exp_of(float x) { return expf(x); }
C10_HOST_DEVICE inline double exp_of(double x) { return exp(x); }
C10_HOST_DEVICE inline float sqrt_of(float x) { return sqrtf(x); }
C10_HOST_DEVICE inline double sqrt_of(double x) { return sqrt(x); }
C10_HOST_DEVICE inline float pow_of(float a, float q) { return powf(a, q); }
C10_HOST_DEVICE inline double pow_of(double a, double q) { return pow(a, q); }

// sigmoid(x) from exp(-x), so each caller can bring its own exp.
template <typename T>
C10_HOST_DEVICE inline T sigmoid_from_exp(T exp_neg_x) { return T(1) / (T(1) + exp_neg_x); }

template <typename T>
C10_HOST_DEVICE inline T sigmoid(T x) { return sigmoid_from_exp(exp_of(-x)); }

// sign with sign(0) = 0, as torch.sign (p = 1 gives gradient 0 where s == t).
template <typename T>
C10_HOST_DEVICE inline T sign(T x) { return static_cast<T>((x > T(0)) - (x < T(0))); }

// a^q for a >= 0, specialised on the exponent: K = 0..4 exact products, 5 another integer iq
// (by squaring), 6 anything else (pow). pow_kind picks K for q.
template <int K, typename T>
C10_HOST_DEVICE inline T pow_k(T a, T q, int iq) {
  if constexpr (K == 0) { (void)a; (void)q; (void)iq; return T(1); }
  else if constexpr (K == 1) return a;
  else if constexpr (K == 2) return a * a;
  else if constexpr (K == 3) return a * a * a;
  else if constexpr (K == 4) { const T b = a * a; return b * b; }
  else if constexpr (K == 5) {
    T r = T(1), b = a;
    for (int e = iq; e; e >>= 1) { if (e & 1) r *= b; b *= b; }
    return r;
  } else return pow_of(a, q);
}

C10_HOST_DEVICE inline int pow_kind(double q, int* iq) {
  *iq = 0;
  if (q == floor(q) && q >= 0 && q <= 64) {
    *iq = static_cast<int>(q);
    return *iq <= 4 ? *iq : 5;
  }
  return 6;
}

// a^q picking the kind at run time (the GPU, where the branch is uniform across threads).
template <typename T>
C10_HOST_DEVICE inline T pow_any(T a, T q, int kind, int iq) {
  switch (kind) {
    case 0: return pow_k<0>(a, q, iq);
    case 1: return pow_k<1>(a, q, iq);
    case 2: return pow_k<2>(a, q, iq);
    case 3: return pow_k<3>(a, q, iq);
    case 4: return pow_k<4>(a, q, iq);
    case 5: return pow_k<5>(a, q, iq);
    default: return pow_k<6>(a, q, iq);
  }
}

// d/dd of |s - t|^p / (p N) times the incoming gradient, given scale = grad / N and
// pow_q = |s - t|^(p - 1): sign(s - t) |s - t|^(p-1) scale, times s (1 - s) on probabilities.
template <bool PROBS, typename T>
C10_HOST_DEVICE inline T minkowski_grad(T s, T diff, T pow_q, T scale) {
  T g = scale * pow_q * sign(diff);
  if (PROBS) g *= s * (T(1) - s);
  return g;
}

// d/dg_b of lam mean_b (||g_b|| - c)^2 is coef * g_b, 0 where ||g_b|| = 0 (as eager's norm).
template <typename T>
C10_HOST_DEVICE inline T penalty_coef(T grad_out, T lam, T center, T norm, T batch) {
  return norm > T(0) ? grad_out * T(2) * lam * (norm - center) / (norm * batch) : T(0);
}

}  // namespace math
}  // namespace mink_gan
