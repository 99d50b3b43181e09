"""report.py's library: the generated blocks of README.md and docs/*.md, one module per page or topic.

text (how numbers are written) <- facts (the numbers several blocks share) <- cifar, toys, regime, appendix
(the tables) <- verdict (the conclusion words, each from a rule) <- blocks (the markers and BLOCKS)."""
