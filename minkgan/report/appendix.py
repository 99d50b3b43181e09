"""The blocks of the benchmarks, the small games (analysis/dynamics.py) and the derivations."""
import os

import pandas as pd

from minkgan import derivations
from minkgan.precision import MACHINE_KEY
from minkgan.report.text import cpu, markdown_table, not_yet, num, sig, value_range
from minkgan.report.facts import read_csv
from minkgan.report.sentences import say

PAGE = "appendix"  # its sentences: minkgan/report/sentences/appendix.txt


def load_range(frame):
    """'0.5–2.1': the lowest and highest 1-minute load average of a benchmark's rows."""
    return f"{frame['loadavg_1m'].min():g}–{frame['loadavg_1m'].max():g}"


def bf16_hardware_note(frame):
    """' (bfloat16 hardware: AMX)' where a benchmark's rows name the CPU's bfloat16 hardware, else ''."""
    hw = frame["bf16_hardware"].dropna() if "bf16_hardware" in frame else pd.Series(dtype=str)
    return " " + say(PAGE, "bf16_hardware", hardware=hw.iloc[0]) if len(hw) else ""


def bench_ops(results):
    """bench/ops.py (results/bench_ops.csv): fused against eager, forward + backward."""
    b = read_csv(results, "bench_ops.csv")
    threads = sorted(b["cpu_threads"].unique())
    header, rows = ["op", "size"], []
    for n in threads:
        header += [f"eager ms ({n} thread{'s' if n > 1 else ''})", "fused ms", "speed-up"]
    for (op, size), g in b.groupby(["op", "size"], sort=False):
        row = [op, size]
        for n in threads:
            r = g[g["cpu_threads"] == n].iloc[0]
            row += [sig(r["eager_ms"], 3), sig(r["fused_ms"], 3), f"{r['speedup']:.2f}x"]
        rows.append(row)
    return markdown_table(header, rows) + "\n\n" + say(PAGE, "bench_ops_note", devices=", ".join(b["device"].unique()),
                                                       torch=b["torch"].iloc[0], backend=b["backend"].iloc[0], load=load_range(b))


def machines(bench):
    """(device, its rows) for each machine of a benchmark CSV: a device name and its bfloat16 hardware, where
    the CSV records it (one name, "AMD EPYC", covers CPUs with and without bfloat16 units)."""
    key = [c for c in MACHINE_KEY if c in bench]
    return [(names[0], rows) for names, rows in bench.groupby(key, sort=False, dropna=False)]


def bench_step(results):
    """bench/step.py (results/bench_step.csv): one training step per variant, as ratios to plain float32,
    one table per device (a CPU's bfloat16 hardware named where the row records it)."""
    b = read_csv(results, "bench_step.csv")
    parts = []
    for device, d in machines(b):
        variants = [v for v in d["variant"].unique() if v != "plain"]
        rows = []
        for arch, g in d.groupby("arch", sort=False):
            g = g.set_index("variant")
            rows.append([f"{arch} ({g['gflop_per_step'].iloc[0]:.1f} GFLOP)", f"{g.loc['plain', 'ms']:.0f}",
                         *(f"{g.loc[v, 'ratio']:.2f}x" if v in g.index else "–" for v in variants),
                         f"{g.loc['plain', 'of_sgemm']:.2f}"])
        parts.append(markdown_table(["arch", "plain ms", *variants, "of_sgemm (plain)"], rows) + "\n\n"
                     + say(PAGE, "bench_step_device", device=device, hardware=bf16_hardware_note(d), torch=d["torch"].iloc[0],
                           sgemm=d["sgemm_gflops"].iloc[0], load=load_range(d)))
    return "\n\n".join(parts) + "\n\n" + say(PAGE, "bench_step_note")


CONVERSIONS = ("_to_copy", "copy_")  # the ATen ops a dtype or layout conversion dispatches
CONVOLUTIONS = ("convolution", "convolution_backward")


def step_profile(results, arch="dcgan", top=8):
    """bench/step.py --profile (results/step_profile.csv): the largest ATen ops of one step, milliseconds per
    step for each variant, one table per device; beside each bfloat16 variant, what still runs in float32
    and what the conversions cost."""
    p = read_csv(results, "step_profile.csv")
    if p is None:
        return not_yet("step_profile.csv", say(PAGE, "step_profile_not_yet"))
    parts = []
    for device, d in machines(p[p["arch"] == arch]):
        variants = list(d["variant"].unique())
        ms = d.groupby(["op", "variant"])["ms"].sum().unstack("variant")[variants]
        largest = ms.drop(index="(other)", errors="ignore").max(axis=1).sort_values(ascending=False).index[:top]
        step = d.groupby("variant")["step_ms"].first()
        rows = [[f"`{op}`", *(num(ms.loc[op, v], 0) for v in variants)] for op in largest]
        rows += [["every other op", *(num(ms.drop(index=largest)[v].sum(), 0) for v in variants)],
                 ["step (sum of its ops)", *(num(step[v], 0) for v in variants)]]
        conv = ms.loc[[op for op in CONVOLUTIONS if op in ms.index]].sum() / step[variants]
        notes = [say(PAGE, "step_profile_convolutions", shares=", ".join(f"{v} {conv[v]:.0%}" for v in variants)),
                 *(bfloat16_leftovers(d[d["variant"] == v], v) for v in variants if "bfloat16" in v)]
        parts.append(markdown_table(["op (ms per step)", *variants], rows) + "\n\n" + " ".join(
            [say(PAGE, "step_profile_device", device=cpu(device), hardware=bf16_hardware_note(d), arch=arch,
                 steps=d["steps"].iloc[0], torch=d["torch"].iloc[0], load=load_range(d)), *notes]))
    return "\n\n".join(parts)


def bfloat16_leftovers(v, variant):
    """The sentence on a bfloat16 variant's ops whose floating inputs are all float32, and its conversions."""
    float32 = v[v["dtypes"] == "float32"].sort_values("ms", ascending=False)
    return say(PAGE, "step_profile_bfloat16", variant=variant, float32=float32["ms"].sum(), step=v["step_ms"].iloc[0],
               largest=float32["op"].iloc[0] if len(float32) else "none", largest_ms=float32["ms"].max() if len(float32) else 0,
               conversions=v[v["op"].isin(CONVERSIONS)]["ms"].sum())


def aten_ops(results):
    """bench/step.py --count-only (results/aten_ops.csv): ATen ops per training step, each revision."""
    a = read_csv(results, "aten_ops.csv")
    if a is None:
        return say(PAGE, "aten_ops_none")
    first = a["revision"].iloc[0]
    rows = []
    for (arch, loss), g in a.groupby(["arch", "loss"], sort=False):
        counts = [int(g.loc[g["revision"] == rev, "aten_ops"].iloc[0]) if (g["revision"] == rev).any() else None
                  for rev in a["revision"].unique()]
        change = f"{counts[-1] / counts[0] - 1:+.1%}" if None not in (counts[0], counts[-1]) else ""
        rows.append([arch, loss, *(str(c) if c is not None else "" for c in counts), change])
    revisions = [f"at {rev[:7]}" for rev in a["revision"].unique()]
    return (markdown_table(["arch", "loss", *revisions, "change"], rows)
            + "\n\n" + say(PAGE, "aten_ops_note", torch=a["torch"].iloc[0], first=first[:7]))


def dirac(results):
    """analysis/dynamics.py's Dirac-GAN (results/dynamics/dirac.csv): the Jacobian's eigenvalues at the
    equilibrium without a penalty and with R1, and whether the iterates converge."""
    d = read_csv(results, os.path.join("dynamics", "dirac.csv"))
    rows = []
    for loss, g in d.groupby("loss", sort=False):
        g = g.set_index("penalty")
        none, r1 = g.loc["none"], g.loc["r1"]
        eigen = f"±{none['eig1_im']:.4g}i" if none["eig1_im"] else "0, 0"
        rows.append([loss, eigen, "yes" if none["sim_converged"] or none["alt_converged"] else "no",
                     f"{r1['max_re']:.3g}", "yes" if r1["sim_converged"] else "no",
                     "yes" if g.loc["wgan-gp", "sim_converged"] else "no"])
    lam = d[d["penalty"] == "r1"]["lam"].iloc[0]
    return (markdown_table(["loss", "eigenvalues, no penalty", "converges (simultaneous or alternating)",
                            f"with R1 (λ = {lam:g}): largest real part", "converges with R1",
                            "converges with the WGAN-GP penalty"], rows)
            + "\n\n" + say(PAGE, "dirac_note"))


def two_point(results):
    """analysis/dynamics.py's two-point game (results/dynamics/two_point.csv), one row per setting."""
    t = read_csv(results, os.path.join("dynamics", "two_point.csv"))
    rows = []
    for setting, g in t.groupby("setting", sort=False):
        rows.append([setting, f"{g['eta_g'].iloc[0]:g}, {g['eta_d'].iloc[0]:g}", f"{g['converged'].sum()} of {len(g)}",
                     f"{g['q_min_last'].min():.2f}–{g['q_max_last'].max():.2f}",
                     sig(g["spectral_radius_at_equilibrium"].iloc[0], 4),
                     sig(g["q_after_hold_at_lambda0"].iloc[0], 3)])
    held = t.dropna(subset=["hold_steps"]).iloc[0]
    return markdown_table(["setting", "η_G, η_D", "starts that reach q = ½", "q over the last steps",
                           "spectral radius at the equilibrium",
                           f"q after {held['hold_steps']:g} steps at λ = 0 from a {held['hold_perturbation_du']:g} nudge"],
                          rows)


def bilinear(results):
    """analysis/dynamics.py's bilinear game (results/dynamics/bilinear.csv): the radius after the last step."""
    b = read_csv(results, os.path.join("dynamics", "bilinear.csv"))
    last = b.groupby("method", sort=False).tail(1)
    return markdown_table(["method", f"radius at step {last['step'].iloc[0]}", "closed form"],
                          [[r["method"], f"{r['radius']:.4f}", num(r["radius_closed_form"], 4)] for _, r in last.iterrows()])


def derivation_table(results):
    """analysis/derivations.py's closed forms, checked there against the repository's losses by tests/analysis/test_derivations.py."""
    ps = range(1, 9)
    b = derivations.binomial_table()
    g = [derivations.generator_gradient(p, [1 / (p + 1), 0.5]).abs().tolist() for p in ps]
    rows = [["C(p, 4)", *b["C"]],
            ["size of G's gradient through the logit at its peak, D = 1/(p + 1)", *(f"{v[0]:.3f}" for v in g)],
            ["... at D = ½, where a clipped D sits", *(sig(v[1], 3) for v in g)],
            ["optimal D for p_g / p_data = 1/3", "–", *(f"{derivations.optimal_d(p, 1 / 3):.3f}" for p in ps if p > 1)]]
    return markdown_table(["p", *map(str, ps)], rows) + "\n\n" + say(
        PAGE, "derivations_note", digamma=b["dlog_digamma"], numeric=b["dlog_numeric"],
        paper=derivations.PAPER_DLOG_BINOMIAL, optimal_d_32=derivations.optimal_d(32, 1 / 3))


def fid_precision(results):
    """analysis/fid_precision.py (results/fid_precision.csv): the FID of bfloat16 Inception against float32's
    on the same samples, per sample count."""
    t = read_csv(results, "fid_precision.csv")
    if t is None:
        return not_yet("fid_precision.csv", say(PAGE, "fid_precision_not_yet"))
    percent = lambda v: f"{100 * v:+.2f} %"  # noqa: E731
    rows = [[f"{n}", f"{len(g)}", f"{value_range(g['fid_float32'], 2)}",
             percent(g["rel_diff"].min()) + (f" to {percent(g['rel_diff'].max())}" if len(g) > 1 else "")]
            for n, g in t.groupby("n")]
    way = "down" if (t["rel_diff"] < 0).all() else "up" if (t["rel_diff"] > 0).all() else "up or down"
    machines = ", ".join(f"{cpu(c)} ({hw} bfloat16 hardware)" for c, hw in t[["cpu", "bf16_hardware"]].drop_duplicates()
                         .itertuples(index=False))
    return (markdown_table(["samples a side", "sample sets", "FID, float32 Inception", "bfloat16 − float32, relative"],
                           rows)
            + "\n\n" + say(PAGE, "fid_precision_note", machines=machines, way=way, largest=100 * t["rel_diff"].abs().max()))


def bench_fid(results):
    """bench/fid.py --throughput-only (results/bench_fid.csv): Inception images per second, each variant as a
    ratio to evaluate.py's float32 pass on the same CPU and threads, measured in one run."""
    b = read_csv(results, "bench_fid.csv")
    if b is None:
        return not_yet("bench_fid.csv", say(PAGE, "bench_fid_not_yet"))
    parts = []
    for device, d in machines(b):
        rows = [[r["variant"], f"{r['images_per_s']:.1f}", f"{r['ratio']:.2f}x"] for _, r in d.iterrows()]
        parts.append(markdown_table(["Inception pass", "images/s", "ratio"], rows) + "\n\n"
                     + say(PAGE, "bench_fid_device", device=cpu(device), hardware=bf16_hardware_note(d), torch=d["torch"].iloc[0],
                           n=d["n"].iloc[0], rounds=d["rounds"].iloc[0], load=load_range(d)))
    return "\n\n".join(parts)
