"""How numbers are written in the generated blocks: digits, signs, intervals, ranges, Markdown tables."""
import pandas as pd


def num(x, digits=1):
    return "–" if pd.isna(x) else f"{x:.{digits}f}"


def sig(x, digits=2):
    """Significant digits, for values that span decades (logit gaps, p-values, ratios)."""
    return "–" if pd.isna(x) else f"{x:.{digits}g}"


def mean_sd(values, digits=1):
    values = pd.Series(values, dtype=float).dropna()
    if len(values) == 1:
        return num(values.iloc[0], digits)
    return f"{num(values.mean(), digits)} ± {num(values.std(), digits)}" if len(values) else "–"


def signed(x, digits=1):
    return "–" if pd.isna(x) else f"{x:+.{digits}f}"


def interval(low, high, digits=1):
    return f"{signed(low, digits)} to {signed(high, digits)}"


def small(x):
    """Two decimals, or two significant digits below 0.1 (D's logit gaps span four decades)."""
    return "–" if pd.isna(x) else f"{x:.2f}" if abs(x) >= 0.095 else f"{x:.2g}"


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def span(values):
    """'0–3' for consecutive integers, else '0, 2, 5'."""
    values = sorted({int(v) for v in values})
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}–{values[-1]}"
    return ", ".join(str(v) for v in values)


def not_yet(path, what):
    return f"Not yet measured: `results/{path}` ({what}) is not committed yet."


def per_seed(values, fmt=num):
    return ", ".join(fmt(v) for v in values)


def value_range(values, digits=2):
    low, high = f"{values.min():.{digits}f}", f"{values.max():.{digits}f}"
    return low if low == high else f"{low}–{high}"


def spread_median(values):
    """' (median m)' beside a range, nothing beside a single value."""
    return "" if f"{values.min():.2f}" == f"{values.max():.2f}" else f" (median {values.median():.2f})"


def listed_p(ps):
    """'p = 7 and 8', 'p = 8', 'p = 5, 7 and 8'."""
    names = [f"{p:g}" for p in ps]
    return "p = " + (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0])


def ranked(values):
    """'A 83.1, B 90.0, C 133.1' from (value, text) pairs, best (lowest) first."""
    return ", ".join(text for _, text in sorted(values))


def cpu(device):
    """'Intel(R) Xeon(R) Processor x2 threads' -> 'Intel Xeon x2 threads'."""
    return device.replace("(R)", "").replace(" Processor", "")
