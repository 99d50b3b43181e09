// The CUDA kernels of the mink_gan ops and their launch configuration, with no ATen and no CUDA
// runtime calls, so that tests/ops/emulation/ can compile this file for the CPU and run it thread by
// thread. mink_ops_cuda.cu launches them; the math per element is mink_math.h's.
//
// Each forward is ONE reduction kernel: blocks reduce their share into a partial sum, and the
// last block to finish (atomic counter + threadfence) adds the partials in block order and
// writes the loss, so results are deterministic. acc_t is float for float, half and bfloat16,
// double for double; the loss is acc_t. Backwards are one elementwise kernel each and read the
// incoming gradient (acc_t) from device memory (no host sync).
#pragma once

#include "mink_math.h"

#include <cstdint>

namespace mink_gan {
namespace kernels {

constexpr int kThreads = 256;
// block_sum reduces each warp, then the warp sums in warp 0: whole warps, at most 32 of them.
static_assert(kThreads % 32 == 0 && kThreads >= 32 && kThreads <= 1024, "kThreads: 1 to 32 whole warps");

// Blocks for n elements on a GPU with `sms` multiprocessors: one element per thread, at most
// 4 blocks per multiprocessor (grid-stride loops do the rest), at least one.
inline int grid_for(int64_t n, int sms) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  const int64_t most = 4LL * (sms > 0 ? sms : 1);
  return static_cast<int>(blocks < 1 ? 1 : (blocks < most ? blocks : most));
}

template <typename acc_t>
__device__ __forceinline__ acc_t warp_sum(acc_t v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block; the result is valid in thread 0. `shared` holds kThreads / 32 values.
template <typename acc_t>
__device__ __forceinline__ acc_t block_sum(acc_t v, acc_t* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // shared may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = threadIdx.x < (blockDim.x >> 5) ? shared[lane] : acc_t(0);
  if (warp == 0) v = warp_sum(v);
  return v;
}

// The last block to arrive adds partials[0..nblocks) in order; returns true in that block.
template <typename acc_t>
__device__ __forceinline__ bool last_block_sum(acc_t block_value, acc_t* partials, unsigned int* counter,
                                               acc_t* shared, acc_t* result) {
  __shared__ bool is_last;
  if (threadIdx.x == 0) {
    partials[blockIdx.x] = block_value;
    __threadfence();
    is_last = atomicAdd(counter, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!is_last) return false;
  __threadfence();
  acc_t s = 0;
  const volatile acc_t* vp = partials;
  for (unsigned int j = threadIdx.x; j < gridDim.x; j += blockDim.x) s += vp[j];
  s = block_sum(s, shared);
  if (threadIdx.x == 0) {
    *result = s;
    *counter = 0;
  }
  return true;
}

// pow_kind / pow_iq: math::pow_kind of p (forward) or p - 1 (backward), picked on the host.
template <typename scalar_t, typename acc_t, bool PROBS, bool TT>
__global__ void __launch_bounds__(kThreads)
minkowski_fwd_kernel(const scalar_t* __restrict__ d, const scalar_t* __restrict__ t, acc_t tv, acc_t p, int pow_kind,
                     int pow_iq, int64_t n, acc_t* partials, unsigned int* counter, acc_t* __restrict__ out) {
  __shared__ acc_t shared[kThreads / 32];
  acc_t sum = 0;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const acc_t x = static_cast<acc_t>(d[i]);
    const acc_t s = PROBS ? math::sigmoid(x) : x;
    const acc_t tt = TT ? static_cast<acc_t>(t[i]) : tv;
    sum += math::pow_any(math::abs_of(s - tt), p, pow_kind, pow_iq);
  }
  sum = block_sum(sum, shared);
  acc_t total;
  if (last_block_sum(sum, partials, counter, shared, &total) && threadIdx.x == 0)
    out[0] = total / (p * static_cast<acc_t>(n));
}

template <typename scalar_t, typename acc_t, bool PROBS, bool TT>
__global__ void __launch_bounds__(kThreads)
minkowski_bwd_kernel(const acc_t* __restrict__ grad, const scalar_t* __restrict__ d, const scalar_t* __restrict__ t,
                     acc_t tv, acc_t p, int pow_kind, int pow_iq, int64_t n, scalar_t* __restrict__ out) {
  const acc_t scale = grad[0] / static_cast<acc_t>(n);
  const acc_t q = p - acc_t(1);
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const acc_t x = static_cast<acc_t>(d[i]);
    const acc_t s = PROBS ? math::sigmoid(x) : x;
    const acc_t diff = s - (TT ? static_cast<acc_t>(t[i]) : tv);
    const acc_t pow_q = math::pow_any(math::abs_of(diff), q, pow_kind, pow_iq);
    out[i] = static_cast<scalar_t>(math::minkowski_grad<PROBS>(s, diff, pow_q, scale));
  }
}

// One block per sample (grid = B): its squared norm, then the last block adds the (||g_b|| - c)^2.
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
penalty_fwd_kernel(const scalar_t* __restrict__ g, int64_t D, acc_t lam, acc_t center, acc_t* norms,
                   acc_t* partials, unsigned int* counter, acc_t* __restrict__ out) {
  __shared__ acc_t shared[kThreads / 32];
  const scalar_t* row = g + static_cast<int64_t>(blockIdx.x) * D;
  acc_t ss = 0;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
    const acc_t v = static_cast<acc_t>(row[j]);
    ss += v * v;
  }
  ss = block_sum(ss, shared);
  acc_t r = 0;
  if (threadIdx.x == 0) {
    const acc_t nb = math::sqrt_of(ss);
    norms[blockIdx.x] = nb;
    r = (nb - center) * (nb - center);
  }
  acc_t total;
  if (last_block_sum(r, partials, counter, shared, &total) && threadIdx.x == 0)
    out[0] = lam * total / static_cast<acc_t>(gridDim.x);
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
penalty_bwd_kernel(const acc_t* __restrict__ grad, const scalar_t* __restrict__ g, const acc_t* __restrict__ norms,
                   int64_t B, int64_t D, acc_t lam, acc_t center, scalar_t* __restrict__ out) {
  if (D == 0) return;
  const acc_t go = grad[0];
  const int64_t n = B * D, stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  // The row of element i, advanced with the stride: a 64-bit division per element made the
  // float64 kernel spill registers (test_cuda_kernels_do_not_spill_registers).
  int64_t row = i / D, col = i - row * D;
  const int64_t row_step = stride / D, col_step = stride - row_step * D;
  for (; i < n; i += stride) {
    const acc_t coef = math::penalty_coef(go, lam, center, norms[row], static_cast<acc_t>(B));
    out[i] = static_cast<scalar_t>(coef * static_cast<acc_t>(g[i]));
    row += row_step;
    col += col_step;
    if (col >= D) {
      col -= D;
      ++row;
    }
  }
}

}  // namespace kernels
}  // namespace mink_gan
