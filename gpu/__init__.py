"""The check of a GPU machine: `bash gpu/gpu_check.sh` runs the CUDA tests, the edge cases, the benchmarks
and a resume check there, with gpu/gpu_check.py's helpers (python -m gpu.gpu_check --help).
"""
