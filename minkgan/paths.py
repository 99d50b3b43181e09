"""Where the repository's own files are (its root, the committed results, the paper's numbers) and where
its caches go: outside the checkout, so that no default ever writes into results/ or a cwd-relative folder."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "results")
PAPER_CSV = os.path.join(RESULTS, "paper.csv")  # the paper's Tables 2 and 3
# Built ops and real FID statistics: $MINK_GAN_CACHE, else ~/.cache/mink-gan
CACHE = os.environ.get("MINK_GAN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mink-gan")
