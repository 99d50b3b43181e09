"""The pre-registered failure rule (docs/preregistration-addendum.md): a run has failed (stalled) when
G's gradient norm has collapsed, its median over the last quarter of the G steps below 1/100 of its
median over the first tenth. Rules on D's output or on coverage misfire on this repository's runs
(WGAN's critic sits near D(G(z)) = 1e-3 while it trains; recovered runs end with coverage below 0.005)."""
import numpy as np
import pandas as pd

EARLY_SHARE, LATE_SHARE = 0.1, 0.25  # the first tenth and the last quarter of a run's G steps
COLLAPSE = 100  # failed: the late median below 1/COLLAPSE of the early one
FAILURE_COLUMNS = ["failed", "grad_g_early", "grad_g_late"]


def gradient_collapse(steps, grad_norm_g, total_steps):
    """(early median, late median, failed) of G's logged gradient norms. The early window is steps up
    to total/10, or the first logged row where none was logged that early (a 313-step WGAN run logged
    every 50 steps); the late one steps past 3/4 of total. None where either window is empty."""
    steps, grads = np.asarray(steps, float), np.asarray(grad_norm_g, float)
    if not len(steps) or not total_steps:
        return None
    early = grads[steps <= max(EARLY_SHARE * total_steps, steps.min())]
    late = grads[steps > (1 - LATE_SHARE) * total_steps]
    if not len(late) or np.isnan(early).all() or np.isnan(late).all():
        return None
    early_median, late_median = float(np.nanmedian(early)), float(np.nanmedian(late))
    return early_median, late_median, bool(late_median < early_median / COLLAPSE)


def run_failure(metrics, total_steps, status):
    """The failure columns of one run: `failed` is 'yes' for a collapsed or diverged run, 'no' for one
    that trained, and None without the logs to tell (a run not finished, or no metrics.csv)."""
    if status == "diverged":
        return {"failed": "yes", "grad_g_early": None, "grad_g_late": None}
    if status != "completed" or metrics is None or "grad_norm_g" not in metrics:
        return {"failed": None, "grad_g_early": None, "grad_g_late": None}
    found = gradient_collapse(metrics["step"], pd.to_numeric(metrics["grad_norm_g"], errors="coerce"), total_steps)
    if found is None:
        return {"failed": None, "grad_g_early": None, "grad_g_late": None}
    early, late, failed = found
    return {"failed": "yes" if failed else "no", "grad_g_early": early, "grad_g_late": late}
