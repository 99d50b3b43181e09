"""The library the scripts share: training, run folders, data, metrics and FID, the fused ops' loader,
the statistics of the campaign and the paths of the committed results. Nothing here is a command
of its own: train.py, evaluate.py, ablate_p.py, report.py and the folders analysis/, bench/ and gpu/ are.
"""
