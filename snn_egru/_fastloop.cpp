// The time loop of one EGRU layer in C++ (forward and hand-written backward), CPU.
//
// Built on first use by snn_egru/_fastloop.py (g++ against the installed torch, cached on
// disk) and called from its autograd.Function; snn_egru/functional.py's EGRULayerLoop is
// the Python twin of these two functions and the tests compare them. One step (gate order
// r, z, n, nn.GRU layout; the recurrent input is the event vector y):
//
//   gh  = y_{t-1} @ W_hh^T + b_hh
//   r   = sigmoid(gi_r + gh_r)          z = sigmoid(gi_z + gh_z)
//   n   = tanh(gi_n + r * gh_n)
//   c~  = z * c_{t-1} + (1 - z) * n     zoneout: c~ <- c_{t-1} where keep (training),
//                                       c~ <- p c_{t-1} + (1 - p) c~ (evaluation)
//   o   = H(c~ - theta)    y_t = o * c~    c_t = c~ - o * theta
//
// Only the time loop is here: the input projections gi of all steps, dW_hh and db_hh (one
// matrix product each over all steps) stay in PyTorch. The recurrent product is ATen's
// addmm (MKL) or, in event mode, the sum of the rows of W_hh^T of the units that sent an
// event (the rows of inactive units are never read; the caller chooses it for event-driven
// inference and for small batches, where one BLAS call per step costs more than the sum);
// the point-wise work is plain loops, with ATen's vectorised sigmoid/tanh for blocks large
// enough to pay for an operator dispatch.
//
// Only ATen's per-operator headers are included (no torch/extension.h, no pybind11): the
// build takes seconds, not a minute. The ops are registered with TORCH_LIBRARY and
// reached from Python as torch.ops.snn_egru_fastloop.*.

#include <ATen/core/Tensor.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/tanh.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

namespace {

// Point-wise blocks of at least this many entries per step use ATen's vectorised
// sigmoid/tanh; smaller ones (batch-1 inference of small layers) scalar std::exp/std::tanh,
// which is cheaper than two operator dispatches per step.
constexpr int64_t kVectorisedMinEntries = 256;

constexpr int64_t kDense = 0;
constexpr int64_t kEvents = 1;

constexpr int64_t kSurrogateNone = 0;
constexpr int64_t kSurrogateTriangle = 1;
// The triangle with the event's gradient amplitude max(c~, theta) instead of c~
// (TriangleSurrogate(amplitude="clamped")).
constexpr int64_t kSurrogateTriangleClamped = 2;

void check_cpu_contiguous(const at::Tensor& t, const char* name, at::ScalarType dtype) {
  TORCH_CHECK(t.device().is_cpu(), "snn_egru_fastloop: ", name, " must be a CPU tensor");
  TORCH_CHECK(t.is_contiguous(), "snn_egru_fastloop: ", name, " must be contiguous");
  TORCH_CHECK(t.scalar_type() == dtype, "snn_egru_fastloop: ", name, " has dtype ",
              t.scalar_type(), ", expected ", dtype);
}

// The dtype the loops are compiled for (float32 or float64), taken from t.
at::ScalarType compiled_dtype(const at::Tensor& t) {
  const auto dtype = t.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble,
              "snn_egru_fastloop: only float32 and float64 are compiled, got ", dtype);
  return dtype;
}

// body(T{}) with T the scalar type of the compiled loops: double or float (compiled_dtype).
template <typename Body>
auto dispatch_dtype(at::ScalarType dtype, Body&& body) {
  if (dtype == at::kDouble) return body(double{});
  return body(float{});
}

// Zoneout's keep mask, when given: bool, contiguous, (T, B, H).
void check_keep_mask(const std::optional<at::Tensor>& keep_mask, int64_t steps, int64_t batch,
                     int64_t hidden) {
  if (!keep_mask.has_value()) return;
  check_cpu_contiguous(*keep_mask, "keep_mask", at::kBool);
  TORCH_CHECK(keep_mask->dim() == 3 && keep_mask->size(0) == steps &&
                  keep_mask->size(1) == batch && keep_mask->size(2) == hidden,
              "snn_egru_fastloop: keep_mask must be (T, B, H)");
}

template <typename T>
inline T sigmoid_scalar(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// gh (batch, 3H) = bias + y (batch, H) @ W^T, from the rows W^T[j] of active units j only;
// the dense product when more than max_active_fraction of the entries are active. Skipping
// the terms of inactive units does not change the sum (adding 0 * w is exact): with
// max_active_fraction >= 1 this is also the dense product, summed unit by unit.
template <typename T>
void recurrent_events(const at::Tensor& y, const at::Tensor& weight_hh_t,
                      const at::Tensor& weight_hh, const at::Tensor& bias, at::Tensor& gh,
                      double max_active_fraction) {
  const int64_t batch = y.size(0), hidden = y.size(1), gates = 3 * hidden;
  const T* yp = y.data_ptr<T>();
  int64_t active = 0;
  for (int64_t i = 0; i < batch * hidden; ++i) active += yp[i] != T(0);
  if (static_cast<double>(active) > max_active_fraction * static_cast<double>(batch * hidden)) {
    at::addmm_out(gh, bias, y, weight_hh.t());
    return;
  }
  const T* wt = weight_hh_t.data_ptr<T>();
  const T* bp = bias.data_ptr<T>();
  T* out = gh.data_ptr<T>();
  for (int64_t b = 0; b < batch; ++b) {
    T* row = out + b * gates;
    for (int64_t k = 0; k < gates; ++k) row[k] = T(0);
    const T* yb = yp + b * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      const T v = yb[j];
      if (v == T(0)) continue;
      const T* w = wt + j * gates;
      for (int64_t k = 0; k < gates; ++k) row[k] += v * w[k];
    }
    for (int64_t k = 0; k < gates; ++k) row[k] += bp[k];
  }
}

constexpr int kZoneoutNone = 0;
constexpr int kZoneoutKeep = 1;  // training: c~ <- c_{t-1} where keep
constexpr int kZoneoutMix = 2;   // evaluation: c~ <- p c_{t-1} + (1 - p) c~

// body(std::integral_constant<int, M>{}) for the M of Modes equal to mode (the last one for
// any other value): one compiled body per mode.
template <int Mode, int... Modes, typename F>
inline void dispatch_mode(int mode, F&& body) {
  if constexpr (sizeof...(Modes) == 0) {
    body(std::integral_constant<int, Mode>{});
  } else if (mode == Mode) {
    body(std::integral_constant<int, Mode>{});
  } else {
    dispatch_mode<Modes...>(mode, body);
  }
}

template <typename F>
inline void dispatch_zoneout(int zoneout, F&& body) {
  dispatch_mode<kZoneoutKeep, kZoneoutMix, kZoneoutNone>(zoneout, body);
}

// The rest of one row of a step once the gates are known: candidate, zoneout, event and
// reset. Branch-free in the unit index (the modes are template arguments) so that the
// compiler vectorises it.
template <typename T, int Zoneout, bool Save>
inline void finish_row(const T* __restrict g, const T* __restrict gh_n,
                       const T* __restrict theta, const bool* __restrict keep, T p,
                       T* __restrict c, T* __restrict y, T* __restrict gh_n_out,
                       T* __restrict c_prev_out, T* __restrict c_tilde_out, int64_t hidden) {
  const T* z_row = g + hidden;
  const T* n_row = g + 2 * hidden;
  for (int64_t k = 0; k < hidden; ++k) {
    const T z = z_row[k], n = n_row[k], cp = c[k];
    T ct = z * cp + (T(1) - z) * n;
    if constexpr (Zoneout == kZoneoutKeep) ct = keep[k] ? cp : ct;
    if constexpr (Zoneout == kZoneoutMix) ct = p * cp + (T(1) - p) * ct;
    if constexpr (Save) {
      gh_n_out[k] = gh_n[k];
      c_prev_out[k] = cp;
      c_tilde_out[k] = ct;
    }
    const T o = (ct - theta[k]) > T(0) ? T(1) : T(0);
    y[k] = o * ct;
    c[k] = ct - o * theta[k];
  }
}

std::vector<at::Tensor> layer_forward(const at::Tensor& gi, const at::Tensor& y0,
                                      const at::Tensor& c0, const at::Tensor& weight_hh,
                                      const std::optional<at::Tensor>& weight_hh_t,
                                      const at::Tensor& bias_hh, const at::Tensor& threshold,
                                      const std::optional<at::Tensor>& keep_mask,
                                      double zoneout_eval, int64_t recurrent,
                                      double max_active_fraction, bool save) {
  TORCH_CHECK(gi.dim() == 3, "snn_egru_fastloop: gi must be (T, B, 3H)");
  const auto dtype = compiled_dtype(gi);
  const int64_t steps = gi.size(0), batch = gi.size(1), hidden = c0.size(-1);
  check_cpu_contiguous(gi, "gi", dtype);
  check_cpu_contiguous(y0, "y0", dtype);
  check_cpu_contiguous(c0, "c0", dtype);
  check_cpu_contiguous(weight_hh, "weight_hh", dtype);
  check_cpu_contiguous(bias_hh, "bias_hh", dtype);
  check_cpu_contiguous(threshold, "threshold", dtype);
  TORCH_CHECK(gi.size(2) == 3 * hidden, "snn_egru_fastloop: gi must be (T, B, 3H)");
  TORCH_CHECK(y0.dim() == 2 && y0.size(0) == batch && y0.size(1) == hidden &&
                  c0.dim() == 2 && c0.size(0) == batch,
              "snn_egru_fastloop: y0 and c0 must be (B, H)");
  TORCH_CHECK(weight_hh.dim() == 2 && weight_hh.size(0) == 3 * hidden &&
                  weight_hh.size(1) == hidden,
              "snn_egru_fastloop: weight_hh must be (3H, H)");
  TORCH_CHECK(bias_hh.numel() == 3 * hidden && threshold.numel() == hidden,
              "snn_egru_fastloop: bias_hh must be (3H,) and threshold (H,)");
  TORCH_CHECK(recurrent == kDense || recurrent == kEvents,
              "snn_egru_fastloop: recurrent must be 0 (dense) or 1 (events)");
  if (recurrent == kEvents && weight_hh_t.has_value()) {
    check_cpu_contiguous(*weight_hh_t, "weight_hh_t", dtype);
    TORCH_CHECK(weight_hh_t->size(0) == hidden && weight_hh_t->size(1) == 3 * hidden,
                "snn_egru_fastloop: weight_hh_t must be (H, 3H)");
  }
  check_keep_mask(keep_mask, steps, batch, hidden);
  return dispatch_dtype(dtype, [&](auto tag) -> std::vector<at::Tensor> {
    using T = decltype(tag);
    const int64_t gates_n = 3 * hidden, h2 = 2 * hidden;
    const auto opts = gi.options();
    at::Tensor ys = at::empty({steps, batch, hidden}, opts);
    at::Tensor c_state = c0.clone();
    at::Tensor gh = at::empty({batch, gates_n}, opts);
    at::Tensor gates_all, gh_n_all, c_prev_all, c_tilde_all;
    if (save) {
      gates_all = at::empty({steps, batch, gates_n}, opts);
      gh_n_all = at::empty({steps, batch, hidden}, opts);
      c_prev_all = at::empty({steps, batch, hidden}, opts);
      c_tilde_all = at::empty({steps, batch, hidden}, opts);
    } else {
      gates_all = at::empty({1, batch, gates_n}, opts);  // one step's gates, reused
    }
    const bool vectorised = batch * hidden >= kVectorisedMinEntries;
    const T* gip = gi.data_ptr<T>();
    const T* theta = threshold.data_ptr<T>();
    const bool* keep = keep_mask.has_value() ? keep_mask->data_ptr<bool>() : nullptr;
    const T p = static_cast<T>(zoneout_eval);
    T* c = c_state.data_ptr<T>();
    T* ysp = ys.data_ptr<T>();
    T* ghp = gh.data_ptr<T>();
    const at::Tensor w_t = weight_hh.t();
    at::Tensor rows;  // W_hh^T contiguous: row j is the fan-out of unit j
    if (recurrent == kEvents) rows = weight_hh_t.has_value() ? *weight_hh_t : w_t.contiguous();
    for (int64_t t = 0; t < steps; ++t) {
      const at::Tensor y_prev = t == 0 ? y0 : ys.select(0, t - 1);
      if (recurrent == kEvents) {
        recurrent_events<T>(y_prev, rows, weight_hh, bias_hh, gh, max_active_fraction);
      } else {
        at::addmm_out(gh, bias_hh, y_prev, w_t);
      }
      const T* git = gip + t * batch * gates_n;
      const int64_t slot = save ? t : 0;
      T* gate = gates_all.data_ptr<T>() + slot * batch * gates_n;
      if (vectorised) {
        for (int64_t b = 0; b < batch; ++b) {
          const T* gir = git + b * gates_n;
          const T* ghr = ghp + b * gates_n;
          T* g = gate + b * gates_n;
          for (int64_t k = 0; k < h2; ++k) g[k] = gir[k] + ghr[k];
        }
        at::Tensor step_gates = gates_all.select(0, slot);
        at::Tensor rz = step_gates.narrow(1, 0, h2);
        at::sigmoid_out(rz, rz);
        for (int64_t b = 0; b < batch; ++b) {
          const T* gir = git + b * gates_n;
          const T* ghr = ghp + b * gates_n;
          T* g = gate + b * gates_n;
          for (int64_t k = 0; k < hidden; ++k) g[h2 + k] = gir[h2 + k] + g[k] * ghr[h2 + k];
        }
        at::Tensor n_block = step_gates.narrow(1, h2, hidden);
        at::tanh_out(n_block, n_block);
      } else {
        for (int64_t b = 0; b < batch; ++b) {
          const T* gir = git + b * gates_n;
          const T* ghr = ghp + b * gates_n;
          T* g = gate + b * gates_n;
          for (int64_t k = 0; k < h2; ++k) g[k] = sigmoid_scalar<T>(gir[k] + ghr[k]);
          for (int64_t k = 0; k < hidden; ++k)
            g[h2 + k] = std::tanh(gir[h2 + k] + g[k] * ghr[h2 + k]);
        }
      }
      T* yt = ysp + t * batch * hidden;
      T* gh_n_t = save ? gh_n_all.data_ptr<T>() + t * batch * hidden : nullptr;
      T* c_prev_t = save ? c_prev_all.data_ptr<T>() + t * batch * hidden : nullptr;
      T* c_tilde_t = save ? c_tilde_all.data_ptr<T>() + t * batch * hidden : nullptr;
      const bool* keep_t = keep ? keep + t * batch * hidden : nullptr;
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t i = b * hidden;
        const T* g = gate + b * gates_n;
        const T* ghr = ghp + b * gates_n + h2;
        const int zoneout = keep_t ? kZoneoutKeep : (p != T(0) ? kZoneoutMix : kZoneoutNone);
        if (save) {
          dispatch_zoneout(zoneout, [&](auto mode) {
            finish_row<T, decltype(mode)::value, true>(g, ghr, theta, keep_t ? keep_t + i : nullptr,
                                                       p, c + i, yt + i, gh_n_t + i,
                                                       c_prev_t + i, c_tilde_t + i, hidden);
          });
        } else {
          dispatch_zoneout(zoneout, [&](auto mode) {
            finish_row<T, decltype(mode)::value, false>(g, ghr, theta,
                                                        keep_t ? keep_t + i : nullptr, p, c + i,
                                                        yt + i, nullptr, nullptr, nullptr, hidden);
          });
        }
      }
    }
    if (save) return {ys, c_state, gates_all, gh_n_all, c_prev_all, c_tilde_all};
    return {ys, c_state};
  });
}

// One row of one step of BPTT (the derivative of finish_row and the gates): dc is
// dL/dc_t in and dL/dc_{t-1} out, acc accumulates dL/d(-theta), d_gi and d_gh (3H) are
// written. Branch-free in the unit index, as finish_row.
template <typename T, int Surrogate, int Zoneout>
inline void backward_row(const T* __restrict gy, const T* __restrict dyr,
                         const T* __restrict c_tilde, const T* __restrict c_prev,
                         const T* __restrict gh_n, const T* __restrict g,
                         const T* __restrict theta, const bool* __restrict keep, T p, T damp,
                         T supp, T* __restrict dc, T* __restrict acc, T* __restrict d_gi,
                         T* __restrict d_gh, int64_t hidden) {
  const int64_t h2 = 2 * hidden;
  for (int64_t k = 0; k < hidden; ++k) {
    const T dy = gy[k] + dyr[k];
    const T ct = c_tilde[k], th = theta[k];
    const T v = ct - th;
    const T o = v > T(0) ? T(1) : T(0);
    const T dci = dc[k];
    // y = o c~, c = c~ - o theta, o = H(c~ - theta) with the surrogate dH/dv
    T dv = T(0);
    if constexpr (Surrogate != kSurrogateNone) {
      const T width = T(1) - supp * std::abs(v);
      const T pd = damp * (width > T(0) ? width : T(0));
      T amp = ct;
      if constexpr (Surrogate == kSurrogateTriangleClamped) amp = ct > th ? ct : th;
      dv = (dy * amp - dci * th) * pd;
    }
    const T d_ct = dy * o + dci + dv;
    acc[k] += dci * o + dv;
    T d_cand = d_ct, dc_prev = T(0);
    if constexpr (Zoneout == kZoneoutKeep) {
      const T kept = static_cast<T>(reinterpret_cast<const uint8_t*>(keep)[k]);
      d_cand = (T(1) - kept) * d_ct;  // kept is 0 or 1: exact
      dc_prev = kept * d_ct;
    }
    if constexpr (Zoneout == kZoneoutMix) {
      d_cand = (T(1) - p) * d_ct;
      dc_prev = p * d_ct;
    }
    const T r = g[k], z = g[hidden + k], n = g[h2 + k];
    // c~ = z c_prev + (1 - z) n
    dc[k] = dc_prev + d_cand * z;
    const T d_a_n = d_cand * (T(1) - z) * (T(1) - n * n);
    const T d_z = d_cand * (c_prev[k] - n) * z * (T(1) - z);
    const T d_r = d_a_n * gh_n[k] * r * (T(1) - r);
    d_gi[k] = d_r;
    d_gi[hidden + k] = d_z;
    d_gi[h2 + k] = d_a_n;
    d_gh[k] = d_r;
    d_gh[hidden + k] = d_z;
    d_gh[h2 + k] = d_a_n * r;
  }
}

std::vector<at::Tensor> layer_backward(const at::Tensor& grad_ys, const at::Tensor& grad_c,
                                       const at::Tensor& weight_hh, const at::Tensor& threshold,
                                       const at::Tensor& gates_all, const at::Tensor& gh_n_all,
                                       const at::Tensor& c_prev_all,
                                       const at::Tensor& c_tilde_all,
                                       const std::optional<at::Tensor>& keep_mask,
                                       double zoneout_eval, int64_t surrogate, double dampening,
                                       double support) {
  const auto dtype = compiled_dtype(gates_all);
  TORCH_CHECK(gates_all.dim() == 3 && c_tilde_all.dim() == 3,
              "snn_egru_fastloop: saved tensors must be (T, B, .)");
  const int64_t steps = gates_all.size(0), batch = gates_all.size(1),
                hidden = c_tilde_all.size(2);
  for (const auto* pair :
       {&grad_ys, &grad_c, &weight_hh, &threshold, &gates_all, &gh_n_all, &c_prev_all,
        &c_tilde_all}) {
    check_cpu_contiguous(*pair, "backward input", dtype);
  }
  TORCH_CHECK(grad_ys.sizes() == c_tilde_all.sizes() && gh_n_all.sizes() == c_tilde_all.sizes() &&
                  c_prev_all.sizes() == c_tilde_all.sizes(),
              "snn_egru_fastloop: grad_ys and the saved tensors must be (T, B, H)");
  TORCH_CHECK(gates_all.size(2) == 3 * hidden && grad_c.dim() == 2 &&
                  grad_c.size(0) == batch && grad_c.size(1) == hidden,
              "snn_egru_fastloop: gates must be (T, B, 3H) and grad_c (B, H)");
  TORCH_CHECK(weight_hh.size(0) == 3 * hidden && weight_hh.size(1) == hidden &&
                  threshold.numel() == hidden,
              "snn_egru_fastloop: weight_hh must be (3H, H) and threshold (H,)");
  TORCH_CHECK(surrogate == kSurrogateNone || surrogate == kSurrogateTriangle ||
                  surrogate == kSurrogateTriangleClamped,
              "snn_egru_fastloop: surrogate must be 0 (none), 1 (triangle) or 2 (triangle, "
              "clamped amplitude)");
  check_keep_mask(keep_mask, steps, batch, hidden);
  return dispatch_dtype(dtype, [&](auto tag) -> std::vector<at::Tensor> {
    using T = decltype(tag);
    const int64_t gates_n = 3 * hidden;
    const auto opts = gates_all.options();
    at::Tensor d_gi = at::empty({steps, batch, gates_n}, opts);
    at::Tensor d_gh = at::empty({steps, batch, gates_n}, opts);
    at::Tensor dc_state = grad_c.clone();
    at::Tensor dy_rec = at::zeros({batch, hidden}, opts);
    at::Tensor d_theta = at::zeros({hidden}, opts);
    std::vector<T> theta_step(hidden);
    const T* gys = grad_ys.data_ptr<T>();
    const T* theta = threshold.data_ptr<T>();
    const T* gates = gates_all.data_ptr<T>();
    const T* gh_n_p = gh_n_all.data_ptr<T>();
    const T* c_prev_p = c_prev_all.data_ptr<T>();
    const T* c_tilde_p = c_tilde_all.data_ptr<T>();
    const bool* keep = keep_mask.has_value() ? keep_mask->data_ptr<bool>() : nullptr;
    const T p = static_cast<T>(zoneout_eval);
    const T damp = static_cast<T>(dampening), supp = static_cast<T>(support);
    T* dc = dc_state.data_ptr<T>();
    T* dyr = dy_rec.data_ptr<T>();
    T* d_gi_p = d_gi.data_ptr<T>();
    T* d_gh_p = d_gh.data_ptr<T>();
    T* d_th = d_theta.data_ptr<T>();
    const int zoneout = keep ? kZoneoutKeep : (p != T(0) ? kZoneoutMix : kZoneoutNone);
    for (int64_t t = steps - 1; t >= 0; --t) {
      const int64_t off = t * batch * hidden;
      for (int64_t k = 0; k < hidden; ++k) theta_step[k] = T(0);
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t i = off + b * hidden;
        const int64_t row = (t * batch + b) * gates_n;
        const bool* keep_row = keep ? keep + i : nullptr;
        dispatch_zoneout(zoneout, [&](auto mode) {
          constexpr int kMode = decltype(mode)::value;
          auto run_row = [&](auto kind) {
            constexpr int kKind = decltype(kind)::value;
            backward_row<T, kKind, kMode>(gys + i, dyr + b * hidden, c_tilde_p + i, c_prev_p + i,
                                          gh_n_p + i, gates + row, theta, keep_row, p, damp, supp,
                                          dc + b * hidden, theta_step.data(), d_gi_p + row,
                                          d_gh_p + row, hidden);
          };
          dispatch_mode<kSurrogateTriangle, kSurrogateTriangleClamped, kSurrogateNone>(surrogate,
                                                                                     run_row);
        });
      }
      for (int64_t k = 0; k < hidden; ++k) d_th[k] -= theta_step[k];
      at::mm_out(dy_rec, d_gh.select(0, t), weight_hh);
    }
    return {d_gi, d_gh, dy_rec, dc_state, d_theta};
  });
}

}  // namespace

TORCH_LIBRARY(snn_egru_fastloop, m) {
  m.def(
      "layer_forward(Tensor gi, Tensor y0, Tensor c0, Tensor weight_hh, Tensor? weight_hh_t, "
      "Tensor bias_hh, Tensor threshold, Tensor? keep_mask, float zoneout_eval, int recurrent, "
      "float max_active_fraction, bool save) -> Tensor[]",
      &layer_forward);
  m.def(
      "layer_backward(Tensor grad_ys, Tensor grad_c, Tensor weight_hh, Tensor threshold, "
      "Tensor gates, Tensor gh_n, Tensor c_prev, Tensor c_tilde, Tensor? keep_mask, "
      "float zoneout_eval, int surrogate, float dampening, float support) -> Tensor[]",
      &layer_backward);
}
