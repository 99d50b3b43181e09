"""Write the results tables of README.md and docs/*.md from the committed results/.

    python report.py            # rewrite every generated block in place
    python report.py --check    # exit 1, naming each document whose blocks are stale

A generated block lies between two marker comments that carry its name and arguments:

    <!-- report:table3 epochs=2 -->
    (what report.py writes)
    <!-- /report:table3 epochs=2 -->

A rerun replaces exactly what lies between them, so the prose around a block is never touched; a
pair of markers inside a line gives an inline value. The name picks a function of BLOCKS, the
key=value words are its arguments. Every table states its budget (epochs, G steps, samples, seeds,
hardware) and every comparison its 95 % interval; a results file not committed yet
(results/contrasts.csv, results/horizon.csv) gives one line saying so. Runs of two readings of the
paper's setup (the nets, the clip, what it clips: runs.csv's arch, clip, clip_params) never share a
mean: a table shows one reading, the paper's by default, another when its arguments name it.
tests/report/test_docs.py fails when a committed document differs from what this script writes.
"""
import argparse
import os
import subprocess
import sys

import pandas as pd

from minkgan import paths
from minkgan.report.blocks import documents, render, stale
from minkgan.report.verdict import claim_words
from minkgan.utils import OneLineParser, UserError, atomic_write_text, run_main

HERE, RESULTS = paths.ROOT, paths.RESULTS


# The analyses that derive a results file from runs.csv and the run logs, as `--recompute` reruns them
# ({r} is the results folder): each merges its rows by key, so a rerun on the same data changes nothing.
RECOMPUTE = [
    ["analysis.contrasts", "{r}/runs.csv", "--epochs", "2", "10", "--csv", "{r}/contrasts.csv",
     "--figure", "{r}/figures/contrasts.png"],
    ["analysis.p_effect", "{r}/runs.csv", "--steps", "1562", "--csv", "{r}/p_effect.csv",
     "--figure", "{r}/figures/fid_vs_p_2ep.png"],
    ["analysis.p_effect", "{r}/runs.csv", "--steps", "781", "--csv", "{r}/p_effect.csv", "--figure", "{r}/figures/fid_vs_p.png"],
    ["analysis.stability", "{r}/run_logs/folder-1562steps", "{r}/run_logs/folder-313steps", "--csv", "{r}/stability.csv"],
    ["analysis.failures", "{r}/runs.csv", "--csv", "{r}/failures.csv", "--figure", "{r}/figures/failures.png"],
]


def recompute(results):
    """Rerun every analysis of RECOMPUTE on results/ (as separate processes: report.py imports no command);
    the first that fails stops it with its one-line error."""
    for module, *argv in RECOMPUTE:
        cmd = [sys.executable, "-m", module, *(a.format(r=results) for a in argv)]
        done = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise UserError(f"python -m {module} failed ({last}); fix it, then rerun report.py --recompute")
        print(f"recomputed: python -m {module} {' '.join(argv[:1])}".replace("{r}", os.path.relpath(results, HERE)))


def write_verdicts(results):
    """results/verdicts.csv: each rule's word (claim_words) with the rule that chose it, so that a reader
    of the results files sees the outcomes the documents state."""
    rules = {"best_p": "verdicts.best_p", "far_behind": "verdicts.far_behind", "modes_ring8": "verdicts.direction",
             "modes_grid25": "verdicts.direction", "coverage": "verdicts.direction", "one_loss": "verdicts.one_loss",
             "one_loss_weights": "verdicts.one_loss", "steadier_d": "H6: contrasts.verdict",
             "steadier_loss_d": "exploratory: contrasts.verdict", "steadier_loss_g": "exploratory: contrasts.verdict",
             "setup": "verdicts.setup_reproduced", "moments": "H7: toys.h7",
             "arguments_fail": "verdicts.arguments_that_fail", "even_p": "verdicts.even_p_fails",
             "binomial": "verdicts.binomial_fails", "optimal_d": "verdicts.optimal_d_checked"}
    rows = [{"outcome": name, "word": " ".join(f"{p:g}" for p in word) if isinstance(word, list) else word,
             "rule": rules.get(name, "contrasts.verdict")} for name, word in claim_words(results).items()]
    atomic_write_text(os.path.join(results, "verdicts.csv"), pd.DataFrame(rows).to_csv(index=False))
    print(f"wrote {os.path.join(results, 'verdicts.csv')}")


def main(argv=None):
    ap = OneLineParser(prog="report.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a document is stale")
    ap.add_argument("--recompute", action="store_true",
                    help="first rerun every analysis that derives a results file from runs.csv and the run logs "
                         "(contrasts, p_effect, stability, failures), then rewrite the documents")
    ap.add_argument("--results", default=None, help="the results folder to read (default results/; "
                    "--recompute rewrites its files, so it must be named there)")
    args = ap.parse_args(argv)
    if args.recompute and args.results is None:
        raise UserError("--recompute rewrites results files: name the folder, e.g. --recompute --results results")
    args.results = args.results or RESULTS
    if not os.path.isdir(args.results):
        raise UserError(f"--results {args.results} is not a folder; name the results folder to read")
    if args.check and args.recompute:
        raise UserError("--check writes nothing and --recompute rewrites the results files: use one")
    if args.recompute:
        recompute(args.results)
        write_verdicts(args.results)
    if args.check:
        changed = stale(HERE, args.results)
        for path in changed:
            print(f"{path} differs from what report.py writes: run python report.py")
        return 1 if changed else 0
    for path in documents():
        with open(path) as f:
            text = f.read()
        new = render(text, args.results)
        if new != text:
            atomic_write_text(path, new)
            print(f"wrote {os.path.relpath(path, HERE)}")
    return 0


if __name__ == "__main__":
    run_main(main)
