"""The bilinear game f(x, y) = x*y from (1, 1): G minimises over x, D maximises over y. The exact flow
is a rotation; simultaneous steps spiral out, alternating ones stay bounded, extragradient and
optimistic steps converge (their radii in closed form where one exists)."""
import math

import numpy as np
import pandas as pd

from minkgan.utils import UserError


def bilinear_field(z):
    """v(x, y) = (-df/dx, +df/dy) = (-y, x): G descends in x, D ascends in y."""
    x, y = z
    return np.array([-y, x])


def bilinear_flow(z0, t):
    """The exact solution of z' = v(z): a rotation by angle t."""
    c, s = math.cos(t), math.sin(t)
    return np.array([c * z0[0] - s * z0[1], s * z0[0] + c * z0[1]])


def bilinear_run(method, eta, steps, z0=(1.0, 1.0), substeps=10):
    """Trajectory (steps + 1) x 2 of one update rule on f(x, y) = x*y."""
    z = np.array(z0, dtype=float)
    out = [z.copy()]
    prev = z.copy()
    for _ in range(steps):
        if method == "flow":  # RK4 on the exact field, `substeps` per eta
            h = eta / substeps
            for _ in range(substeps):
                k1 = bilinear_field(z)
                k2 = bilinear_field(z + h / 2 * k1)
                k3 = bilinear_field(z + h / 2 * k2)
                k4 = bilinear_field(z + h * k3)
                z = z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        elif method == "simultaneous":
            z = z + eta * bilinear_field(z)
        elif method == "alternating":  # G first, then D sees the new x
            x = z[0] - eta * z[1]
            z = np.array([x, z[1] + eta * x])
        elif method == "extragradient":
            half = z + eta * bilinear_field(z)
            z = z + eta * bilinear_field(half)
        elif method == "optimistic":  # z+ = z + 2 eta v(z) - eta v(z_prev)
            z, prev = z + 2 * eta * bilinear_field(z) - eta * bilinear_field(prev), z
        else:
            raise UserError(f"unknown bilinear method {method!r}")
        out.append(z.copy())
    return np.array(out)


BILINEAR_METHODS = ("flow", "simultaneous", "alternating", "extragradient", "optimistic")


def bilinear_radius_law(method, eta, n, r0=math.sqrt(2)):
    """Closed-form radius after n steps where one exists (NaN otherwise)."""
    if method == "flow":
        return r0
    if method == "simultaneous":
        return r0 * (1 + eta ** 2) ** (n / 2)
    if method == "extragradient":
        return r0 * (1 - eta ** 2 + eta ** 4) ** (n / 2)
    return float("nan")


def bilinear_table(eta, steps):
    """(a row per method and step: position, radius, its closed form and alternating updates' invariant;
    {method: trajectory})."""
    rows, trajs = [], {}
    for m in BILINEAR_METHODS:
        tr = bilinear_run(m, eta, steps)
        trajs[m] = tr
        r = np.hypot(tr[:, 0], tr[:, 1])
        for n in range(len(tr)):
            rows.append(dict(method=m, step=n, x=tr[n, 0], y=tr[n, 1], radius=r[n],
                             radius_closed_form=bilinear_radius_law(m, eta, n),
                             alt_invariant=tr[n, 0] ** 2 + tr[n, 1] ** 2 - eta * tr[n, 0] * tr[n, 1]))
    return pd.DataFrame(rows), trajs
