// CUDA kernels for the ops declared in mink_ops.cpp (see its header for the math).
//
// Each forward is ONE reduction kernel: blocks reduce their share into a partial sum, and the
// last block to finish (atomic counter + threadfence) adds the partials in block order and
// writes the loss, so results are deterministic. Half and bfloat16 are read and accumulated
// in float32 (at::acc_type); float32 in float32, float64 in float64. Backwards are one
// elementwise kernel each and read the incoming gradient from device memory (no host sync).
// Only c10/cuda headers are used (not ATen/cuda/CUDAContext.h, which needs cuBLAS/cuSPARSE
// headers), so a bare CUDA toolkit is enough to compile this file.
#include <ATen/ATen.h>
#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include <cmath>

namespace mink_gan {
namespace {

constexpr int kThreads = 256;
// block_sum reduces each warp, then the warp sums in warp 0: whole warps, at most 32 of them.
static_assert(kThreads % 32 == 0 && kThreads >= 32 && kThreads <= 1024, "kThreads: 1 to 32 whole warps");

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

template <typename acc_t>
__device__ __forceinline__ acc_t powp(acc_t a, acc_t q) {
  if (q == acc_t(0)) return acc_t(1);
  if (q == acc_t(1)) return a;
  if (q == acc_t(2)) return a * a;
  if (q == acc_t(3)) return a * a * a;
  if (q == acc_t(4)) { const acc_t b = a * a; return b * b; }
  return pow(a, q);
}

template <typename acc_t>
__device__ __forceinline__ acc_t sigmoid(acc_t x) { return acc_t(1) / (acc_t(1) + exp(-x)); }

template <typename scalar_t, typename acc_t, bool PROBS, bool TT>
__global__ void __launch_bounds__(kThreads) minkowski_fwd_kernel(const scalar_t* __restrict__ d, const scalar_t* __restrict__ t, acc_t tv,
                                     acc_t p, int64_t n, acc_t* partials, unsigned int* counter,
                                     acc_t* __restrict__ out) {
  __shared__ acc_t shared[kThreads / 32];
  acc_t sum = 0;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const acc_t x = static_cast<acc_t>(d[i]);
    const acc_t s = PROBS ? sigmoid(x) : x;
    const acc_t tt = TT ? static_cast<acc_t>(t[i]) : tv;
    sum += powp(fabs(s - tt), p);
  }
  sum = block_sum(sum, shared);
  acc_t total;
  if (last_block_sum(sum, partials, counter, shared, &total) && threadIdx.x == 0)
    out[0] = total / (p * static_cast<acc_t>(n));
}

template <typename scalar_t, typename acc_t, bool PROBS, bool TT>
__global__ void __launch_bounds__(kThreads) minkowski_bwd_kernel(const acc_t* __restrict__ grad, const scalar_t* __restrict__ d,
                                     const scalar_t* __restrict__ t, acc_t tv, acc_t p, int64_t n,
                                     scalar_t* __restrict__ out) {
  const acc_t scale = grad[0] / static_cast<acc_t>(n);
  const acc_t q = p - acc_t(1);
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const acc_t x = static_cast<acc_t>(d[i]);
    const acc_t s = PROBS ? sigmoid(x) : x;
    const acc_t diff = s - (TT ? static_cast<acc_t>(t[i]) : tv);
    const acc_t sg = static_cast<acc_t>((diff > acc_t(0)) - (diff < acc_t(0)));
    acc_t gi = scale * powp(fabs(diff), q) * sg;
    if (PROBS) gi *= s * (acc_t(1) - s);
    out[i] = static_cast<scalar_t>(gi);
  }
}

// One block per sample: its squared norm, then the last block adds the (||g_b|| - c)^2.
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads) penalty_fwd_kernel(const scalar_t* __restrict__ g, int64_t D, acc_t lam, acc_t center,
                                   acc_t* norms, acc_t* partials, unsigned int* counter,
                                   acc_t* __restrict__ out) {
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
    const acc_t nb = sqrt(ss);
    norms[blockIdx.x] = nb;
    r = (nb - center) * (nb - center);
  }
  acc_t total;
  if (last_block_sum(r, partials, counter, shared, &total) && threadIdx.x == 0)
    out[0] = lam * total / static_cast<acc_t>(gridDim.x);
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads) penalty_bwd_kernel(const acc_t* __restrict__ grad, const scalar_t* __restrict__ g,
                                   const acc_t* __restrict__ norms, int64_t B, int64_t D, acc_t lam, acc_t center,
                                   scalar_t* __restrict__ out) {
  const acc_t go = grad[0];
  const int64_t n = B * D, stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const acc_t nb = norms[i / D];
    const acc_t coef = nb > acc_t(0) ? go * acc_t(2) * lam * (nb - center) / (nb * static_cast<acc_t>(B)) : acc_t(0);
    out[i] = static_cast<scalar_t>(coef * static_cast<acc_t>(g[i]));
  }
}

int grid_for(int64_t n) {
  int dev = 0, sms = 0;
  C10_CUDA_CHECK(cudaGetDevice(&dev));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(blocks, 4LL * sms)));
}

at::ScalarType acc_scalar_type(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

void check_target(const at::Tensor& d, const std::optional<at::Tensor>& target) {
  if (target.has_value()) {
    TORCH_CHECK(target->sizes() == d.sizes(), "mink_gan::minkowski_power: target must have d's shape");
    TORCH_CHECK(target->scalar_type() == d.scalar_type(), "mink_gan::minkowski_power: target dtype differs from d's");
    TORCH_CHECK(target->device() == d.device(), "mink_gan::minkowski_power: target on another device");
  }
}

at::Tensor minkowski_power_cuda(const at::Tensor& d_, const std::optional<at::Tensor>& target, double tval,
                                double p, bool on_probs) {
  TORCH_CHECK(p >= 1 && std::isfinite(p), "mink_gan::minkowski_power: p must be finite and >= 1");
  check_target(d_, target);
  const c10::cuda::CUDAGuard guard(d_.device());
  const at::Tensor d = d_.contiguous();
  const at::Tensor t = target.has_value() ? target->contiguous() : at::Tensor();
  const int64_t n = d.numel();
  at::Tensor out = at::empty({}, d.options().dtype(acc_scalar_type(d.scalar_type())));
  if (n == 0) return out.fill_(std::nan(""));
  const int grid = grid_for(n);
  at::Tensor partials = at::empty({grid}, d.options().dtype(acc_scalar_type(d.scalar_type())));
  at::Tensor counter = at::zeros({1}, d.options().dtype(at::kInt));
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, d.scalar_type(), "mink_gan::minkowski_power_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, true>;
    const scalar_t* tp = t.defined() ? t.const_data_ptr<scalar_t>() : nullptr;
    auto launch = [&](auto kernel) {
      kernel<<<grid, kThreads, 0, stream>>>(d.const_data_ptr<scalar_t>(), tp, static_cast<acc_t>(tval),
                                            static_cast<acc_t>(p), n, partials.mutable_data_ptr<acc_t>(),
                                            reinterpret_cast<unsigned int*>(counter.mutable_data_ptr<int>()),
                                            out.mutable_data_ptr<acc_t>());
    };
    if (on_probs) {
      if (tp) launch(minkowski_fwd_kernel<scalar_t, acc_t, true, true>);
      else launch(minkowski_fwd_kernel<scalar_t, acc_t, true, false>);
    } else {
      if (tp) launch(minkowski_fwd_kernel<scalar_t, acc_t, false, true>);
      else launch(minkowski_fwd_kernel<scalar_t, acc_t, false, false>);
    }
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor minkowski_power_backward_cuda(const at::Tensor& grad_, const at::Tensor& d_,
                                         const std::optional<at::Tensor>& target, double tval, double p,
                                         bool on_probs) {
  TORCH_CHECK(grad_.numel() == 1, "mink_gan::minkowski_power_backward: grad must be a scalar");
  TORCH_CHECK(grad_.device() == d_.device(), "mink_gan::minkowski_power_backward: grad on another device");
  check_target(d_, target);
  const c10::cuda::CUDAGuard guard(d_.device());
  const at::Tensor d = d_.contiguous();
  const at::Tensor t = target.has_value() ? target->contiguous() : at::Tensor();
  const at::Tensor grad = grad_.to(acc_scalar_type(d.scalar_type())).contiguous();
  at::Tensor out = at::empty_like(d, at::MemoryFormat::Contiguous);
  const int64_t n = d.numel();
  if (n == 0) return out;
  const int grid = grid_for(n);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, d.scalar_type(), "mink_gan::minkowski_power_backward_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, true>;
    const scalar_t* tp = t.defined() ? t.const_data_ptr<scalar_t>() : nullptr;
    auto launch = [&](auto kernel) {
      kernel<<<grid, kThreads, 0, stream>>>(grad.const_data_ptr<acc_t>(), d.const_data_ptr<scalar_t>(), tp,
                                            static_cast<acc_t>(tval), static_cast<acc_t>(p), n,
                                            out.mutable_data_ptr<scalar_t>());
    };
    if (on_probs) {
      if (tp) launch(minkowski_bwd_kernel<scalar_t, acc_t, true, true>);
      else launch(minkowski_bwd_kernel<scalar_t, acc_t, true, false>);
    } else {
      if (tp) launch(minkowski_bwd_kernel<scalar_t, acc_t, false, true>);
      else launch(minkowski_bwd_kernel<scalar_t, acc_t, false, false>);
    }
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

std::tuple<at::Tensor, at::Tensor> gradient_penalty_cuda(const at::Tensor& g_, double lam, double center) {
  TORCH_CHECK(g_.dim() >= 2 && g_.size(0) > 0, "mink_gan::gradient_penalty: g must be B x ... with B > 0");
  const c10::cuda::CUDAGuard guard(g_.device());
  const at::Tensor g = g_.contiguous();
  const int64_t B = g.size(0), D = g.numel() / B;
  TORCH_CHECK(B <= 0x7fffffff, "mink_gan::gradient_penalty: batch too large");
  const auto acc_type = acc_scalar_type(g.scalar_type());
  at::Tensor norms = at::empty({B}, g.options().dtype(acc_type));
  at::Tensor partials = at::empty({B}, g.options().dtype(acc_type));
  at::Tensor counter = at::zeros({1}, g.options().dtype(at::kInt));
  at::Tensor out = at::empty({}, g.options().dtype(acc_type));
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "mink_gan::gradient_penalty_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, true>;
    penalty_fwd_kernel<scalar_t, acc_t><<<static_cast<unsigned int>(B), kThreads, 0, stream>>>(
        g.const_data_ptr<scalar_t>(), D, static_cast<acc_t>(lam), static_cast<acc_t>(center),
        norms.mutable_data_ptr<acc_t>(), partials.mutable_data_ptr<acc_t>(),
        reinterpret_cast<unsigned int*>(counter.mutable_data_ptr<int>()), out.mutable_data_ptr<acc_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {out, norms};
}

at::Tensor gradient_penalty_backward_cuda(const at::Tensor& grad_, const at::Tensor& g_, const at::Tensor& norms_,
                                          double lam, double center) {
  TORCH_CHECK(grad_.numel() == 1, "mink_gan::gradient_penalty_backward: grad must be a scalar");
  TORCH_CHECK(g_.dim() >= 2 && norms_.dim() == 1 && norms_.size(0) == g_.size(0),
              "mink_gan::gradient_penalty_backward: norms must hold one value per sample");
  TORCH_CHECK(grad_.device() == g_.device() && norms_.device() == g_.device(),
              "mink_gan::gradient_penalty_backward: grad and norms must be on g's device");
  const c10::cuda::CUDAGuard guard(g_.device());
  const at::Tensor g = g_.contiguous();
  const int64_t B = g.size(0), D = g.numel() / B;
  const at::Tensor grad = grad_.to(acc_scalar_type(g.scalar_type())).contiguous();
  const at::Tensor norms = norms_.to(acc_scalar_type(g.scalar_type())).contiguous();
  at::Tensor out = at::empty_like(g, at::MemoryFormat::Contiguous);
  if (g.numel() == 0) return out;
  const int grid = grid_for(g.numel());
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "mink_gan::gradient_penalty_backward_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, true>;
    penalty_bwd_kernel<scalar_t, acc_t><<<grid, kThreads, 0, stream>>>(
        grad.const_data_ptr<acc_t>(), g.const_data_ptr<scalar_t>(), norms.const_data_ptr<acc_t>(), B, D,
        static_cast<acc_t>(lam), static_cast<acc_t>(center), out.mutable_data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(mink_gan, CUDA, m) {
  m.impl("minkowski_power", &minkowski_power_cuda);
  m.impl("minkowski_power_backward", &minkowski_power_backward_cuda);
  m.impl("gradient_penalty", &gradient_penalty_cuda);
  m.impl("gradient_penalty_backward", &gradient_penalty_backward_cuda);
}

}  // namespace mink_gan
