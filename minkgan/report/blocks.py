"""Generated blocks: the marker comments in README.md and docs/*.md, the function of BLOCKS each
names, and the rewrite of what lies between a block's markers."""
import glob
import inspect
import os
import re

from minkgan import paths
from minkgan.report import appendix, cifar, regime, toys, verdict
from minkgan.utils import UserError

BLOCK = re.compile(r"<!-- report:(?P<key>[^>]+?) -->(?P<body>.*?)<!-- /report:(?P=key) -->", re.S)
BLOCKS = {
    "paper": cifar.paper, "setup": cifar.setup, "table2": cifar.table2, "table3": cifar.table3, "anova": cifar.anova,
    "contrasts": cifar.contrasts_block, "contrasts-csv": cifar.contrasts_csv, "regime": cifar.regime,
    "machines": cifar.machines, "adam-eps": cifar.adam_eps, "earlier-2epochs": cifar.earlier_2epochs,
    "horizon": cifar.horizon, "failures": cifar.failures, "samples": cifar.sample_grids, "fid-floor": cifar.fid_floor,
    "toy": toys.toy, "moments": toys.moments, "toy-moments": toys.toy_moments,
    "alignment": regime.alignment, "alignment-summary": regime.alignment_summary,
    "alignment-horizon": regime.alignment_horizon, "trajectories": regime.trajectories,
    "bench-ops": appendix.bench_ops, "bench-step": appendix.bench_step, "aten-ops": appendix.aten_ops,
    "step-profile": appendix.step_profile,
    "dirac": appendix.dirac, "two-point": appendix.two_point, "bilinear": appendix.bilinear,
    "derivations": appendix.derivation_table, "fid-precision": appendix.fid_precision,
    "bench-fid": appendix.bench_fid,
    "verdict": verdict.verdict, "answer": verdict.answer, "claim": verdict.claim,
}


def documents(root=paths.ROOT):
    """README.md and every page of docs/: the documents that may hold generated blocks."""
    return [os.path.join(root, "README.md"), *sorted(glob.glob(os.path.join(root, "docs", "*.md")))]


def block_text(key, results):
    """What BLOCKS writes for a marker's key, 'name arg=value ...'."""
    name, *words = key.split()
    if name not in BLOCKS or not all("=" in w for w in words):
        raise UserError(f"<!-- report:{key} -->: no such block; the blocks are {', '.join(BLOCKS)}")
    kwargs = dict(w.split("=", 1) for w in words)
    try:
        inspect.signature(BLOCKS[name]).bind(results, **kwargs)
    except TypeError as e:
        raise UserError(f"<!-- report:{key} -->: {e}") from None
    return BLOCKS[name](results, **kwargs).strip()


def render(text, results=paths.RESULTS):
    """text with every generated block rewritten from results: a block whose opening marker starts a
    line on lines of its own, one inside a line inline."""
    def fill(match):
        key, body = match["key"], block_text(match["key"], results)
        if match.start() == 0 or text[match.start() - 1] == "\n":  # blank lines: Markdown ends the comment there
            body = "\n\n" + body + "\n\n"
        return f"<!-- report:{key} -->{body}<!-- /report:{key} -->"
    return BLOCK.sub(fill, text)


def stale(root=paths.ROOT, results=paths.RESULTS):
    """The documents whose generated blocks differ from what results gives."""
    out = []
    for path in documents(root):
        with open(path) as f:
            text = f.read()
        if render(text, results) != text:
            out.append(os.path.relpath(path, root))
    return out
