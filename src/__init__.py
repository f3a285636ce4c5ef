"""churnclv: churn, customer lifetime value and growth-potential tiers, point in time.

Nothing happens at import time: no logging set-up, no global pandas or warnings state.
"""

from __future__ import annotations

__all__ = ["__version__"]
__version__ = "0.1.0"
