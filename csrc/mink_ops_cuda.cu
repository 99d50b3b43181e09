// CUDA launches of the kernels in mink_kernels.cuh (see it for the reductions, and mink_ops.cpp
// for the math): checks, dtype dispatch and the grid; the losses are float32 for half and
// bfloat16 (at::acc_type), float64 for float64.
// Only c10/cuda headers are used (not ATen/cuda/CUDAContext.h, which needs cuBLAS/cuSPARSE
// headers), so a bare CUDA toolkit is enough to compile this file.
#include "mink_kernels.cuh"

#include <ATen/ATen.h>
#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include <cmath>
#include <map>
#include <mutex>
#include <utility>

namespace mink_gan {
namespace {

using kernels::kThreads;
using kernels::minkowski_bwd_kernel;
using kernels::minkowski_fwd_kernel;
using kernels::penalty_bwd_kernel;
using kernels::penalty_fwd_kernel;

int grid_for(int64_t n) {
  int dev = 0, sms = 0;
  C10_CUDA_CHECK(cudaGetDevice(&dev));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  return kernels::grid_for(n, sms);
}

at::ScalarType acc_scalar_type(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

// Scratch memory of a forward's reduction: a 16-byte header holding the blocks' arrival counter, then
// one partial sum per block. The last block resets the counter (mink_kernels.cuh), so eager calls
// reuse one buffer per device and stream, zeroed once, instead of allocating and zeroing a counter
// on every call (kernels of one stream run in order; two streams never share a buffer). A call under
// CUDA-graph capture gets a buffer of its own, zeroed inside the graph, so a graph's replays share
// nothing with eager calls or with other graphs.
constexpr int64_t kHeaderBytes = 16;

at::Tensor scratch(const at::Tensor& like, int64_t partial_bytes) {
  const c10::cuda::CUDAStream stream = c10::cuda::getCurrentCUDAStream(like.device().index());
  const int64_t bytes = kHeaderBytes + partial_bytes;
  const auto options = like.options().dtype(at::kByte);
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  C10_CUDA_CHECK(cudaStreamIsCapturing(stream.stream(), &capture));
  if (capture != cudaStreamCaptureStatusNone) return at::zeros({bytes}, options);
  static std::mutex mutex;
  // never destroyed: freeing CUDA memory from a static destructor at exit can fail after the driver is gone
  static auto* buffers = new std::map<std::pair<c10::DeviceIndex, c10::StreamId>, at::Tensor>();
  const std::lock_guard<std::mutex> lock(mutex);
  at::Tensor& buffer = (*buffers)[{stream.device_index(), stream.id()}];
  if (!buffer.defined() || buffer.numel() < bytes) buffer = at::zeros({bytes}, options);
  return buffer;
}

unsigned int* counter_of(at::Tensor& scratch) { return reinterpret_cast<unsigned int*>(scratch.mutable_data_ptr<uint8_t>()); }

template <typename acc_t>
acc_t* partials_of(at::Tensor& scratch) {
  return reinterpret_cast<acc_t*>(scratch.mutable_data_ptr<uint8_t>() + kHeaderBytes);
}

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
  at::Tensor work = scratch(d, grid * static_cast<int64_t>(at::elementSize(acc_scalar_type(d.scalar_type()))));
  int iq;
  const int kind = math::pow_kind(p, &iq);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, d.scalar_type(), "mink_gan::minkowski_power_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, true>;
    const scalar_t* tp = t.defined() ? t.const_data_ptr<scalar_t>() : nullptr;
    auto launch = [&](auto kernel) {
      kernel<<<grid, kThreads, 0, stream>>>(d.const_data_ptr<scalar_t>(), tp, static_cast<acc_t>(tval),
                                            static_cast<acc_t>(p), kind, iq, n, partials_of<acc_t>(work),
                                            counter_of(work), out.mutable_data_ptr<acc_t>());
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
  int iq;
  const int kind = math::pow_kind(p - 1, &iq);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, d.scalar_type(), "mink_gan::minkowski_power_backward_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, true>;
    const scalar_t* tp = t.defined() ? t.const_data_ptr<scalar_t>() : nullptr;
    auto launch = [&](auto kernel) {
      kernel<<<grid, kThreads, 0, stream>>>(grad.const_data_ptr<acc_t>(), d.const_data_ptr<scalar_t>(), tp,
                                            static_cast<acc_t>(tval), static_cast<acc_t>(p), kind, iq, n,
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
  at::Tensor work = scratch(g, B * static_cast<int64_t>(at::elementSize(acc_type)));
  at::Tensor out = at::empty({}, g.options().dtype(acc_type));
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "mink_gan::gradient_penalty_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, true>;
    penalty_fwd_kernel<scalar_t, acc_t><<<static_cast<unsigned int>(B), kThreads, 0, stream>>>(
        g.const_data_ptr<scalar_t>(), D, static_cast<acc_t>(lam), static_cast<acc_t>(center),
        norms.mutable_data_ptr<acc_t>(), partials_of<acc_t>(work), counter_of(work), out.mutable_data_ptr<acc_t>());
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
