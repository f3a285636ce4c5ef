"""churnclv: churn, customer lifetime value and growth-potential tiers, point in time.

Nothing happens at import time: no logging set-up, no global pandas or warnings state. One
exception: ``OMP_WAIT_POLICY`` is set to ``PASSIVE`` when the environment does not set it, before
LightGBM loads OpenMP. Spinning OpenMP threads made a LightGBM fit of 250k rows on a shared 2-core
machine 3-12x slower on two threads than on one (15-64 s against 5 s); passive, two threads took
2.9 s (``bench/omp_wait.py``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["__version__"]
__version__ = "0.1.0"
