// The CUDA kernels of csrc/mink_kernels.cuh, compiled for the CPU with the emulation layer of
// cuda_on_cpu.h, as a Python module for tests/ops/test_emulation.py. The wrappers mirror
// csrc/mink_ops_cuda.cu's host code (buffers, dtypes, the pow kind), but the grid and the order
// of the blocks are the test's to choose.
#include <torch/extension.h>

#include "cuda_on_cpu.h"
#include "mink_kernels.cuh"  // csrc/, on the include path the test passes

namespace {

using namespace mink_gan;

at::ScalarType acc_type(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

unsigned int* counter_ptr(at::Tensor& counter) { return reinterpret_cast<unsigned int*>(counter.data_ptr<int>()); }

template <typename F>
void dispatch(at::ScalarType t, F&& f) {
  switch (t) {
    case at::kFloat: f(float{}, float{}); break;
    case at::kDouble: f(double{}, double{}); break;
    case at::kHalf: f(c10::Half{}, float{}); break;
    case at::kBFloat16: f(c10::BFloat16{}, float{}); break;
    default: throw std::invalid_argument("dtype not emulated");
  }
}

template <typename F>
void with_flags(bool probs, bool tt, F&& f) {
  if (probs) {
    if (tt) f(std::true_type{}, std::true_type{}); else f(std::true_type{}, std::false_type{});
  } else {
    if (tt) f(std::false_type{}, std::true_type{}); else f(std::false_type{}, std::false_type{});
  }
}

at::Tensor minkowski_forward(const at::Tensor& d, const std::optional<at::Tensor>& t, double tval, double p,
                             bool on_probs, int64_t grid, uint64_t seed) {
  const int64_t n = d.numel();
  at::Tensor partials = at::full({grid}, NAN, d.options().dtype(acc_type(d.scalar_type())));
  at::Tensor counter = at::zeros({1}, d.options().dtype(at::kInt));
  at::Tensor out = at::full({}, NAN, d.options().dtype(acc_type(d.scalar_type())));
  int iq;
  const int kind = math::pow_kind(p, &iq);
  dispatch(d.scalar_type(), [&](auto s, auto a) {
    using scalar_t = decltype(s);
    using acc_t = decltype(a);
    const scalar_t* tp = t ? static_cast<const scalar_t*>(t->data_ptr()) : nullptr;
    with_flags(on_probs, tp != nullptr, [&](auto PROBS, auto TT) {
      emulation::launch(grid, kernels::kThreads, seed,
                        kernels::minkowski_fwd_kernel<scalar_t, acc_t, decltype(PROBS)::value, decltype(TT)::value>,
                        static_cast<const scalar_t*>(d.data_ptr()), tp, static_cast<acc_t>(tval),
                        static_cast<acc_t>(p), kind, iq, n, partials.data_ptr<acc_t>(), counter_ptr(counter),
                        out.data_ptr<acc_t>());
    });
  });
  TORCH_CHECK(counter.item<int>() == 0, "the last block did not reset the counter");
  return out;
}

at::Tensor minkowski_backward(const at::Tensor& grad, const at::Tensor& d, const std::optional<at::Tensor>& t,
                              double tval, double p, bool on_probs, int64_t grid, uint64_t seed) {
  at::Tensor out = at::full_like(d, NAN);
  int iq;
  const int kind = math::pow_kind(p - 1, &iq);
  dispatch(d.scalar_type(), [&](auto s, auto a) {
    using scalar_t = decltype(s);
    using acc_t = decltype(a);
    const at::Tensor g = grad.to(acc_type(d.scalar_type()));
    const scalar_t* tp = t ? static_cast<const scalar_t*>(t->data_ptr()) : nullptr;
    with_flags(on_probs, tp != nullptr, [&](auto PROBS, auto TT) {
      emulation::launch(grid, kernels::kThreads, seed,
                        kernels::minkowski_bwd_kernel<scalar_t, acc_t, decltype(PROBS)::value, decltype(TT)::value>,
                        g.data_ptr<acc_t>(), static_cast<const scalar_t*>(d.data_ptr()), tp,
                        static_cast<acc_t>(tval), static_cast<acc_t>(p), kind, iq, d.numel(),
                        static_cast<scalar_t*>(out.data_ptr()));
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> penalty_forward(const at::Tensor& g, double lam, double center, uint64_t seed) {
  const int64_t B = g.size(0), D = g.numel() / B;
  const auto acc = acc_type(g.scalar_type());
  at::Tensor norms = at::full({B}, NAN, g.options().dtype(acc));
  at::Tensor partials = at::full({B}, NAN, g.options().dtype(acc));
  at::Tensor counter = at::zeros({1}, g.options().dtype(at::kInt));
  at::Tensor out = at::full({}, NAN, g.options().dtype(acc));
  dispatch(g.scalar_type(), [&](auto s, auto a) {
    using scalar_t = decltype(s);
    using acc_t = decltype(a);
    emulation::launch(static_cast<unsigned int>(B), kernels::kThreads, seed,
                      kernels::penalty_fwd_kernel<scalar_t, acc_t>, static_cast<const scalar_t*>(g.data_ptr()), D,
                      static_cast<acc_t>(lam), static_cast<acc_t>(center), norms.data_ptr<acc_t>(),
                      partials.data_ptr<acc_t>(), counter_ptr(counter), out.data_ptr<acc_t>());
  });
  TORCH_CHECK(counter.item<int>() == 0, "the last block did not reset the counter");
  return {out, norms};
}

at::Tensor penalty_backward(const at::Tensor& grad, const at::Tensor& g, const at::Tensor& norms, double lam,
                            double center, int64_t grid, uint64_t seed) {
  const int64_t B = g.size(0), D = g.numel() / B;
  at::Tensor out = at::full_like(g, NAN);
  dispatch(g.scalar_type(), [&](auto s, auto a) {
    using scalar_t = decltype(s);
    using acc_t = decltype(a);
    const at::Tensor go = grad.to(acc_type(g.scalar_type())), nb = norms.to(acc_type(g.scalar_type()));
    emulation::launch(grid, kernels::kThreads, seed, kernels::penalty_bwd_kernel<scalar_t, acc_t>,
                      go.data_ptr<acc_t>(), static_cast<const scalar_t*>(g.data_ptr()), nb.data_ptr<acc_t>(), B, D,
                      static_cast<acc_t>(lam), static_cast<acc_t>(center), static_cast<scalar_t*>(out.data_ptr()));
  });
  return out;
}

// Deliberately wrong kernels, to show that the emulation catches what the GPU would not forgive.
void divergent_syncthreads_kernel(int* hits) {
  if (threadIdx.x < 32) __syncthreads();  // the other warps never arrive
  std::atomic_ref<int>(*hits).fetch_add(1);
}

void partial_warp_shuffle_kernel(float* out) {
  float v = 1;
  if ((threadIdx.x & 31) < 16) v = __shfl_down_sync(0xffffffffu, v, 1);  // half of each warp only
  out[threadIdx.x] = v;
}

// The leaked threads of a hung launch keep these, so they are static.
void run_broken(const std::string& which, double watchdog_seconds) {
  static int hits = 0;
  static float out[kernels::kThreads];
  const double saved = emulation::watchdog_seconds;
  emulation::watchdog_seconds = watchdog_seconds;
  try {
    if (which == "syncthreads") emulation::launch(1, kernels::kThreads, 0, divergent_syncthreads_kernel, &hits);
    else emulation::launch(1, kernels::kThreads, 0, partial_warp_shuffle_kernel, out);
  } catch (...) {
    emulation::watchdog_seconds = saved;
    throw;
  }
  emulation::watchdog_seconds = saved;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("minkowski_forward", &minkowski_forward);
  m.def("minkowski_backward", &minkowski_backward);
  m.def("penalty_forward", &penalty_forward);
  m.def("penalty_backward", &penalty_backward);
  m.def("grid_for", &kernels::grid_for);
  m.attr("threads") = kernels::kThreads;
  m.def("run_broken", &run_broken, "run a deliberately divergent kernel (raises the watchdog's error)");
}
