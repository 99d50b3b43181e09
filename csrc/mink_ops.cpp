// Fused CPU kernels for the two GAN-loss hot spots, registered as torch.library ops.
//
//   mink_gan::minkowski_power(d, target?, tval, p, on_probs) -> loss
//       (1/p) * mean |s - t|^p,  s = sigmoid(d) (or d), t = target (same shape) or tval.
//   mink_gan::minkowski_power_backward(grad, d, target?, tval, p, on_probs) -> grad_d
//       grad * |s - t|^(p-1) * sign(s - t) * s(1 - s) / N   (no s(1 - s) on raw d).
//   mink_gan::gradient_penalty(g, lam, center) -> (loss, norms)
//       lam * mean_b (||g_b||_2 - center)^2, plus the per-sample norms for the backward.
//   mink_gan::gradient_penalty_backward(grad, g, norms, lam, center) -> grad_g
//       grad * 2 lam (||g_b|| - c) g_b / (||g_b|| B), 0 where ||g_b|| = 0.
//
// Each forward is one reading pass; each backward one read + one write pass. Sums are taken
// per fixed-size chunk (float lanes flushed into double every 1024 elements) and the chunks
// added in order, so the result does not depend on the number of threads.
// Autograd is registered here in C++ (torch::autograd::Function on the Autograd key, one
// kernel for every device): torch.library.register_autograd from Python, as in
// pytorch/extension-cpp, costs ~30 us of Python per forward+backward, which is more than
// the whole eager loss on the batch-64 logits of a training step. The fake (meta) kernels
// for torch.compile are registered from Python (ops.py). The backward ops have an autograd
// kernel whose backward raises, so double backward fails loudly instead of silently.
// The per-element formulas are in mink_math.h, shared with the CUDA kernels (mink_kernels.cuh,
// launched from mink_ops_cuda.cu). Half and bfloat16 are computed in float and give a float loss.
#include "mink_math.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace mink_gan {
namespace {

#if defined(__GNUC__)
#define MINK_INLINE inline __attribute__((always_inline))  // the hot loops vectorize only if inlined
#else
#define MINK_INLINE inline
#endif

constexpr int64_t kChunk = 16384;  // elements per parallel task (and per partial sum)
constexpr int64_t kBlock = 1024;   // elements per float-lane block before flushing to double
constexpr int kLanes = 16;

// expf for float that the compiler can vectorize (Cephes' polynomial, ~1 ulp); double uses std::exp.
MINK_INLINE float vexp(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  const float r = (x - n * 0.693359375f) - n * (-2.12194440e-4f);
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}
MINK_INLINE double vexp(double x) { return std::exp(x); }

template <typename T>
MINK_INLINE T sigm(T x) { return math::sigmoid_from_exp(vexp(-x)); }

template <typename F>
void with_pow_kind(int kind, F&& f) {
  switch (kind) {
    case 0: f(std::integral_constant<int, 0>{}); break;
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 5: f(std::integral_constant<int, 5>{}); break;
    default: f(std::integral_constant<int, 6>{}); break;
  }
}

template <typename F>
void with_bool(bool b, F&& f) {
  if (b) f(std::true_type{}); else f(std::false_type{});
}

// Sum of f(i) over [begin, end): kLanes independent float lanes (vectorizable without
// -ffast-math) flushed into a double every kBlock elements.
template <typename T, typename F>
MINK_INLINE double block_sum(int64_t begin, int64_t end, F f) {
  double total = 0;
  for (int64_t b = begin; b < end; b += kBlock) {
    const int64_t e = std::min(b + kBlock, end);
    T acc[kLanes] = {};
    int64_t i = b;
    for (; i + kLanes <= e; i += kLanes)
      for (int l = 0; l < kLanes; ++l) acc[l] += f(i + l);
    double s = 0;
    for (; i < e; ++i) s += f(i);
    for (int l = 0; l < kLanes; ++l) s += acc[l];
    total += s;
  }
  return total;
}

// The losses are float32 for half and bfloat16 inputs, as eager's under autocast on a GPU (and a
// float16 loss would overflow under GradScaler's scale).
at::ScalarType loss_type(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

void check_target(const at::Tensor& d, const std::optional<at::Tensor>& target) {
  if (target.has_value()) {
    TORCH_CHECK(target->sizes() == d.sizes(), "mink_gan::minkowski_power: target must have d's shape, got ",
                target->sizes(), " vs ", d.sizes());
    TORCH_CHECK(target->scalar_type() == d.scalar_type(), "mink_gan::minkowski_power: target dtype ",
                target->scalar_type(), " differs from d's ", d.scalar_type());
    TORCH_CHECK(target->device() == d.device(), "mink_gan::minkowski_power: target on another device");
  }
}

at::Tensor minkowski_power_cpu(const at::Tensor& d_, const std::optional<at::Tensor>& target, double tval,
                               double p, bool on_probs) {
  TORCH_CHECK(p >= 1 && std::isfinite(p), "mink_gan::minkowski_power: p must be finite and >= 1, got ", p);
  TORCH_INTERNAL_ASSERT(d_.device().is_cpu());
  check_target(d_, target);
  const at::Tensor d = d_.contiguous();
  const at::Tensor t = target.has_value() ? target->contiguous() : at::Tensor();
  const int64_t n = d.numel();
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(nchunks, 0.0);
  int iq;
  const int kind = math::pow_kind(p, &iq);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, d.scalar_type(), "mink_gan::minkowski_power", [&] {
    using T = at::opmath_type<scalar_t>;  // half and bfloat16 are computed in float
    const scalar_t* dp = d.const_data_ptr<scalar_t>();
    const scalar_t* tp = t.defined() ? t.const_data_ptr<scalar_t>() : nullptr;
    const T tv = static_cast<T>(tval), pp = static_cast<T>(p);
    with_pow_kind(kind, [&](auto K) {
      with_bool(on_probs, [&](auto PROBS) {
        with_bool(tp != nullptr, [&](auto TT) {
          at::parallel_for(0, nchunks, 1, [&](int64_t cb, int64_t ce) {
            for (int64_t c = cb; c < ce; ++c) {
              partial[c] = block_sum<T>(c * kChunk, std::min(n, (c + 1) * kChunk), [&](int64_t i) -> T {
                const T x = static_cast<T>(dp[i]);
                const T s = PROBS ? sigm(x) : x;
                const T tt = TT ? static_cast<T>(tp[i]) : tv;
                return math::pow_k<decltype(K)::value>(math::abs_of(s - tt), pp, iq);
              });
            }
          });
        });
      });
    });
  });
  double total = 0;
  for (double v : partial) total += v;
  return at::scalar_tensor(total / (p * static_cast<double>(n)), d.options().dtype(loss_type(d.scalar_type())));
}

at::Tensor minkowski_power_backward_cpu(const at::Tensor& grad, const at::Tensor& d_,
                                        const std::optional<at::Tensor>& target, double tval, double p,
                                        bool on_probs) {
  TORCH_CHECK(p >= 1 && std::isfinite(p), "mink_gan::minkowski_power_backward: p must be finite and >= 1");
  TORCH_CHECK(grad.numel() == 1, "mink_gan::minkowski_power_backward: grad must be a scalar");
  check_target(d_, target);
  const at::Tensor d = d_.contiguous();
  const at::Tensor t = target.has_value() ? target->contiguous() : at::Tensor();
  at::Tensor out = at::empty_like(d, at::MemoryFormat::Contiguous);
  const int64_t n = d.numel();
  if (n == 0) return out;
  const double scale = grad.item<double>() / static_cast<double>(n);
  int iq;
  const int kind = math::pow_kind(p - 1, &iq);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, d.scalar_type(), "mink_gan::minkowski_power_backward", [&] {
    using T = at::opmath_type<scalar_t>;
    const scalar_t* dp = d.const_data_ptr<scalar_t>();
    const scalar_t* tp = t.defined() ? t.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const T tv = static_cast<T>(tval), q = static_cast<T>(p - 1), sc = static_cast<T>(scale);
    with_pow_kind(kind, [&](auto K) {
      with_bool(on_probs, [&](auto PROBS) {
        with_bool(tp != nullptr, [&](auto TT) {
          at::parallel_for(0, n, kChunk, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) {
              const T x = static_cast<T>(dp[i]);
              const T s = PROBS ? sigm(x) : x;
              const T diff = s - (TT ? static_cast<T>(tp[i]) : tv);
              const T pow_q = math::pow_k<decltype(K)::value>(math::abs_of(diff), q, iq);
              op[i] = static_cast<scalar_t>(math::minkowski_grad<decltype(PROBS)::value>(s, diff, pow_q, sc));
            }
          });
        });
      });
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> gradient_penalty_cpu(const at::Tensor& g_, double lam, double center) {
  TORCH_CHECK(g_.dim() >= 2 && g_.size(0) > 0, "mink_gan::gradient_penalty: g must be B x ... with B > 0");
  const at::Tensor g = g_.contiguous();
  const int64_t B = g.size(0), D = g.numel() / B;
  at::Tensor norms = at::empty({B}, g.options().dtype(loss_type(g.scalar_type())));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "mink_gan::gradient_penalty", [&] {
    using T = at::opmath_type<scalar_t>;
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    T* np = norms.mutable_data_ptr<T>();  // T is float or double, as loss_type
    const int64_t grain = std::max<int64_t>(1, kChunk / std::max<int64_t>(D, 1));
    at::parallel_for(0, B, grain, [&](int64_t bb, int64_t be) {
      for (int64_t b = bb; b < be; ++b) {
        const scalar_t* row = gp + b * D;
        np[b] = static_cast<T>(std::sqrt(block_sum<T>(0, D, [&](int64_t j) -> T {
          const T v = static_cast<T>(row[j]);
          return v * v;
        })));
      }
    });
  });
  double total = 0;
  AT_DISPATCH_FLOATING_TYPES(norms.scalar_type(), "mink_gan::gradient_penalty_sum", [&] {
    const scalar_t* np = norms.const_data_ptr<scalar_t>();
    for (int64_t b = 0; b < B; ++b) {
      const double r = static_cast<double>(np[b]) - center;
      total += r * r;
    }
  });
  return {at::scalar_tensor(lam * total / static_cast<double>(B), norms.options()), norms};
}

at::Tensor gradient_penalty_backward_cpu(const at::Tensor& grad, const at::Tensor& g_, const at::Tensor& norms,
                                         double lam, double center) {
  TORCH_CHECK(grad.numel() == 1, "mink_gan::gradient_penalty_backward: grad must be a scalar");
  TORCH_CHECK(g_.dim() >= 2 && norms.dim() == 1 && norms.size(0) == g_.size(0),
              "mink_gan::gradient_penalty_backward: norms must hold one value per sample");
  const at::Tensor g = g_.contiguous();
  const int64_t B = g.size(0), D = g.numel() / B;
  at::Tensor out = at::empty_like(g, at::MemoryFormat::Contiguous);
  const double go = grad.item<double>();
  const at::Tensor nd = norms.to(at::kDouble).contiguous();
  const double* np = nd.const_data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "mink_gan::gradient_penalty_backward", [&] {
    using T = at::opmath_type<scalar_t>;
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(1, kChunk / std::max<int64_t>(D, 1));
    at::parallel_for(0, B, grain, [&](int64_t bb, int64_t be) {
      for (int64_t b = bb; b < be; ++b) {
        const T coef = static_cast<T>(math::penalty_coef<double>(go, lam, center, np[b], static_cast<double>(B)));
        const scalar_t* row = gp + b * D;
        scalar_t* orow = op + b * D;
        for (int64_t j = 0; j < D; ++j) orow[j] = static_cast<scalar_t>(coef * static_cast<T>(row[j]));
      }
    });
  });
  return out;
}

// ---------------------------------------------------------------------------------------
// autograd

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr const char* kNoDoubleBackward =
    "double backward through the fused mink_gan ops is not supported; call ops.set_backend('off') "
    "(train.py --fused off) to use the eager ops";

at::Tensor call_mink(const at::Tensor& d, const std::optional<at::Tensor>& t, double tval, double p, bool on_probs) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mink_gan::minkowski_power", "")
                       .typed<at::Tensor(const at::Tensor&, const std::optional<at::Tensor>&, double, double, bool)>();
  return op.call(d, t, tval, p, on_probs);
}

at::Tensor call_mink_bwd(const at::Tensor& g, const at::Tensor& d, const std::optional<at::Tensor>& t, double tval,
                         double p, bool on_probs) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mink_gan::minkowski_power_backward", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                         double, double, bool)>();
  return op.call(g, d, t, tval, p, on_probs);
}

std::tuple<at::Tensor, at::Tensor> call_gp(const at::Tensor& g, double lam, double center) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mink_gan::gradient_penalty", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, double, double)>();
  return op.call(g, lam, center);
}

at::Tensor call_gp_bwd(const at::Tensor& grad, const at::Tensor& g, const at::Tensor& norms, double lam,
                       double center) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mink_gan::gradient_penalty_backward", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, double, double)>();
  return op.call(grad, g, norms, lam, center);
}

class MinkowskiPowerFn : public torch::autograd::Function<MinkowskiPowerFn> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& d, const std::optional<at::Tensor>& target,
                            double tval, double p, bool on_probs) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({d, target.has_value() ? *target : at::Tensor()});
    ctx->saved_data["tval"] = tval;
    ctx->saved_data["p"] = p;
    ctx->saved_data["on_probs"] = on_probs;
    return call_mink(d, target, tval, p, on_probs);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const std::optional<at::Tensor> t = saved[1].defined() ? std::optional<at::Tensor>(saved[1]) : std::nullopt;
    at::Tensor grad_d = call_mink_bwd(grads[0], saved[0], t, ctx->saved_data["tval"].toDouble(),
                                      ctx->saved_data["p"].toDouble(), ctx->saved_data["on_probs"].toBool());
    return {grad_d, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};  // no gradient for the target
  }
};

class MinkowskiPowerBackwardFn : public torch::autograd::Function<MinkowskiPowerBackwardFn> {
 public:
  static at::Tensor forward(AutogradContext*, const at::Tensor& grad, const at::Tensor& d,
                            const std::optional<at::Tensor>& target, double tval, double p, bool on_probs) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_mink_bwd(grad, d, target, tval, p, on_probs);
  }
  static variable_list backward(AutogradContext*, variable_list) { TORCH_CHECK(false, kNoDoubleBackward); }
};

class GradientPenaltyFn : public torch::autograd::Function<GradientPenaltyFn> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& g, double lam, double center) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [loss, norms] = call_gp(g, lam, center);
    ctx->save_for_backward({g, norms});
    ctx->saved_data["lam"] = lam;
    ctx->saved_data["center"] = center;
    ctx->mark_non_differentiable({norms});
    return {loss, norms};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    at::Tensor grad_g = call_gp_bwd(grads[0], saved[0], saved[1], ctx->saved_data["lam"].toDouble(),
                                    ctx->saved_data["center"].toDouble());
    return {grad_g, at::Tensor(), at::Tensor()};
  }
};

class GradientPenaltyBackwardFn : public torch::autograd::Function<GradientPenaltyBackwardFn> {
 public:
  static at::Tensor forward(AutogradContext*, const at::Tensor& grad, const at::Tensor& g, const at::Tensor& norms,
                            double lam, double center) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_gp_bwd(grad, g, norms, lam, center);
  }
  static variable_list backward(AutogradContext*, variable_list) { TORCH_CHECK(false, kNoDoubleBackward); }
};

at::Tensor minkowski_power_autograd(const at::Tensor& d, const std::optional<at::Tensor>& target, double tval,
                                    double p, bool on_probs) {
  return MinkowskiPowerFn::apply(d, target, tval, p, on_probs);
}

at::Tensor minkowski_power_backward_autograd(const at::Tensor& grad, const at::Tensor& d,
                                             const std::optional<at::Tensor>& target, double tval, double p,
                                             bool on_probs) {
  return MinkowskiPowerBackwardFn::apply(grad, d, target, tval, p, on_probs);
}

std::tuple<at::Tensor, at::Tensor> gradient_penalty_autograd(const at::Tensor& g, double lam, double center) {
  auto out = GradientPenaltyFn::apply(g, lam, center);
  return {out[0], out[1]};
}

at::Tensor gradient_penalty_backward_autograd(const at::Tensor& grad, const at::Tensor& g, const at::Tensor& norms,
                                              double lam, double center) {
  return GradientPenaltyBackwardFn::apply(grad, g, norms, lam, center);
}

}  // namespace

TORCH_LIBRARY(mink_gan, m) {
  m.def("minkowski_power(Tensor d, Tensor? target, float tval, float p, bool on_probs) -> Tensor");
  m.def("minkowski_power_backward(Tensor grad, Tensor d, Tensor? target, float tval, float p, bool on_probs) -> Tensor");
  m.def("gradient_penalty(Tensor g, float lam, float center) -> (Tensor, Tensor)");
  m.def("gradient_penalty_backward(Tensor grad, Tensor g, Tensor norms, float lam, float center) -> Tensor");
}

TORCH_LIBRARY_IMPL(mink_gan, CPU, m) {
  m.impl("minkowski_power", &minkowski_power_cpu);
  m.impl("minkowski_power_backward", &minkowski_power_backward_cpu);
  m.impl("gradient_penalty", &gradient_penalty_cpu);
  m.impl("gradient_penalty_backward", &gradient_penalty_backward_cpu);
}

TORCH_LIBRARY_IMPL(mink_gan, Autograd, m) {
  m.impl("minkowski_power", &minkowski_power_autograd);
  m.impl("minkowski_power_backward", &minkowski_power_backward_autograd);
  m.impl("gradient_penalty", &gradient_penalty_autograd);
  m.impl("gradient_penalty_backward", &gradient_penalty_backward_autograd);
}

}  // namespace mink_gan
