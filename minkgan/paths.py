"""Where the repository's own files are: its root, the committed results and the paper's numbers."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "results")
PAPER_CSV = os.path.join(RESULTS, "paper.csv")  # the paper's Tables 2 and 3
