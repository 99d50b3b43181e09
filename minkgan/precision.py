"""bfloat16 where the hardware has it (issue 36): the choices of --precision and --fid-precision, the
CPU's name and bfloat16 hardware (for config.json and the benchmarks' rows), the check that refuses a
device without bfloat16 before anything is written, and the autocast around the nets' forward passes.

Only the forward passes run in bfloat16; what they return is cast back to float32, so the losses, the
clipping, the gradient penalty and Adam's state stay float32, and float32 (the default) is exactly the
code path there was before the flag."""
import contextlib
import platform
import sys

import pandas as pd
import torch

from minkgan.utils import UserError

PRECISIONS = ("float32", "bfloat16")
DEFAULT = "float32"
# /proc/cpuinfo flag -> the name a CSV row gives it, best first
BF16_FLAGS = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"))
# the columns that name the machine of a benchmark row: one model name ("AMD EPYC" under KVM) covers
# CPUs with and without bfloat16 units, whose rows must not replace each other
MACHINE_KEY = ["device", "bf16_hardware"]
ADDED_KEY = ["bf16_hardware"]  # the key column a benchmark CSV written before it may lack: its rows stay


def cpu_name(cpuinfo="/proc/cpuinfo"):
    """The CPU model: GAN training amplifies last-bit differences, so one seed gives different
    runs on different CPUs, and the config should say which one ran."""
    try:
        with open(cpuinfo) as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's feature flags (the first core's), empty where /proc/cpuinfo cannot be read."""
    try:
        with open(cpuinfo) as f:
            return set(next(ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")))
    except (OSError, StopIteration):
        return set()


def bf16_hardware(cpuinfo="/proc/cpuinfo"):
    """"AMX", "AVX512-BF16" or "none": what runs this CPU's bfloat16 matmuls and convolutions. With
    none, oneDNN emulates bfloat16 in float32 arithmetic plus conversions, slower than float32."""
    flags = cpu_flags(cpuinfo)
    return next((name for flag, name in BF16_FLAGS if flag in flags), "none")


def cpu_row(cpuinfo="/proc/cpuinfo"):
    """The columns every benchmark row of a bfloat16 comparison carries: which CPU, and its bfloat16 unit."""
    return {"cpu": cpu_name(cpuinfo), "bf16_hardware": bf16_hardware(cpuinfo)}


def device_row(device):
    """cpu_row for a CPU; on a GPU the host's CPU and "CUDA" or "none" (native bfloat16 or not)."""
    device = torch.device(device)
    if device.type != "cuda":
        return cpu_row()
    return {"cpu": cpu_name(), "bf16_hardware": "CUDA" if cuda_has_bf16(device) else "none"}


def emulated_note(cpuinfo="/proc/cpuinfo"):
    """One line for a benchmark's output on a CPU without bfloat16 hardware, else None."""
    if bf16_hardware(cpuinfo) != "none":
        return None
    return f"note: {cpu_name(cpuinfo)} has neither AMX nor AVX512-BF16: bfloat16 is emulated there (slow)"


def cuda_has_bf16(device):
    """Native bfloat16 on this GPU (Ampere or newer), emulation not counted: emulated it is slower than float32."""
    with torch.cuda.device(device):
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # a torch without the argument
            return torch.cuda.is_bf16_supported()


def check_precision(precision, device, flag="--precision", cpuinfo="/proc/cpuinfo"):
    """Refuse (UserError) bfloat16 on a device that cannot run it natively (a GPU before Ampere, an
    accelerator other than CUDA); on a CPU without bfloat16 hardware it runs, with one warning line."""
    if precision not in PRECISIONS:
        raise UserError(f"{flag} must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == DEFAULT:
        return
    device = torch.device(device)
    if device.type == "cuda":
        if not cuda_has_bf16(device):
            raise UserError(f"{flag} bfloat16: {torch.cuda.get_device_name(device)} has no native bfloat16; "
                            f"use {flag} float32")
    elif device.type != "cpu":
        raise UserError(f"{flag} bfloat16 runs on cpu and cuda devices only, not {device.type}; use {flag} float32")
    elif bf16_hardware(cpuinfo) == "none":
        print(f"warning: {flag} bfloat16 on {cpu_name(cpuinfo)}, which has neither AMX nor AVX512-BF16: "
              f"bfloat16 is emulated there and slower than float32", file=sys.stderr)


def autocast(precision, device):
    """The context of a forward pass: torch.autocast to bfloat16, or nothing at all for float32."""
    if precision == "bfloat16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def float32_rows(rows, columns=("train_precision", "fid_precision"), where="fid.csv", log=print):
    """The rows a table may average: trained and evaluated in float32 (an empty or missing cell is
    float32). The others are for curves, and one line says how many were left out."""
    keep = pd.Series(True, index=rows.index)
    for column in (c for c in columns if c in rows):
        keep &= rows[column].astype(object).fillna(DEFAULT).replace("", DEFAULT) == \
            DEFAULT
    if not keep.all():
        log(f"{int((~keep).sum())} row(s) of {where} trained or evaluated in bfloat16 left out of the tables "
            f"(tables are float32 only)")
    return rows[keep]


def tf32_switches():
    """(object, attribute, TF32 value, full float32 value) of cuDNN's convolutions and of CUDA's matmuls:
    the fp32_precision API where it exists (torch >= 2.9 raises on a mix of it and the legacy
    allow_tf32 flags once anything set the new one)."""
    if hasattr(torch.backends.cudnn, "conv") and hasattr(torch.backends.cudnn.conv, "fp32_precision"):
        return [(torch.backends.cudnn.conv, "fp32_precision", "tf32", "ieee"),
                (torch.backends.cuda.matmul, "fp32_precision", "tf32", "ieee")]
    return [(torch.backends.cudnn, "allow_tf32", True, False), (torch.backends.cuda.matmul, "allow_tf32", True, False)]
