"""A block's engagement events: logins, sessions and e-mail activity that follow the latent
satisfaction and fade after the silent death, clicks that follow opens, tickets and complaints."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from churnclv.generator.arrays import code_names, sort_rows, ts_array
from churnclv.generator.clock import poisson_points
from churnclv.generator.world import WorldConfig
from churnclv.schema import KNOWN_EVENT_TYPES

__all__ = ["EVENT_TYPES", "block_events"]

# the generator writes exactly the event types the features know by name, in this order
EVENT_TYPES: tuple[str, ...] = KNOWN_EVENT_TYPES
_LOGIN, _SESSION, _EMAIL_OPEN, _EMAIL_CLICK, _TICKET, _COMPLAINT = range(6)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    p: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return p


def _decaying_after_death(
    rng: np.random.Generator,
    death: np.ndarray,
    n_days: int,
    rate: np.ndarray,
    decay_days: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Residual activity after the silent death, fading as ``exp(-(t - death) / decay_days)``."""
    end = np.minimum(death + 5 * decay_days, n_days)
    cust, t = poisson_points(rng, death, end, rate)
    keep = rng.random(t.size) < np.exp(-(t - death[cust]) / decay_days)
    return cust[keep], t[keep]


def block_events(
    config: WorldConfig,
    rng: np.random.Generator,
    ids: Callable[[np.ndarray], pa.Array],
    seconds: Callable[[np.ndarray, np.ndarray], np.ndarray],
    signup: np.ndarray,
    death: np.ndarray,
    alive_end: np.ndarray,
    z: np.ndarray,
    engagement: np.ndarray,
) -> pa.Table:
    """The engagement events of one block's customers, sorted by (customer_id, ts).

    ``ids`` and ``seconds`` turn customer indexes and times in days into the block's ids and
    timestamps; rates follow the satisfaction ``z`` and the taste for the app and e-mails ``engagement``.
    """
    n_days = config.n_days
    scale = config.event_rate_scale
    parts: list[tuple[int, np.ndarray, np.ndarray]] = []

    # (type, alive rate, share of it left right after death, decay of the rest in days)
    app = scale * engagement * np.exp(0.4 * z)
    mail = scale * engagement * _sigmoid(-1.0 + 0.8 * z)
    specs = [
        (_LOGIN, 0.022 * app, 0.15, 30.0),
        (_SESSION, 0.015 * app, 0.15, 30.0),
        (_EMAIL_OPEN, 0.05 * mail, 0.3, 90.0),
        (_TICKET, 0.002 * scale * np.exp(-0.7 * z), 0.0, 0.0),
        (_COMPLAINT, 0.0007 * scale * np.exp(-1.2 * z), 0.0, 0.0),
    ]
    for kind, rate, after, decay in specs:
        parts.append((kind, *poisson_points(rng, signup, alive_end, rate)))
        if after > 0:
            parts.append((kind, *_decaying_after_death(rng, death, n_days, after * rate, decay)))

    # clicks follow opens within minutes; satisfied, living customers click more
    opens = [(c, t) for k, c, t in parts if k == _EMAIL_OPEN]
    o_cust = np.concatenate([c for c, _ in opens])
    o_t = np.concatenate([t for _, t in opens])
    p_click = _sigmoid(-1.0 + 0.5 * z[o_cust]) * np.where(o_t < death[o_cust], 1.0, 0.3)
    clicked = rng.random(o_t.size) < p_click
    c_t = o_t[clicked] + rng.exponential(3.0, size=int(clicked.sum())) / (24 * 60)
    inside = c_t < n_days
    parts.append((_EMAIL_CLICK, o_cust[clicked][inside], c_t[inside]))

    kinds = np.concatenate([np.full(c.size, k, dtype=np.int8) for k, c, _ in parts])
    cust = np.concatenate([c for _, c, _ in parts])
    sec = seconds(cust, np.concatenate([t for _, _, t in parts]))
    value = np.full(cust.size, np.nan)
    is_session = kinds == _SESSION
    minutes = 6.0 * np.exp(0.3 * z[cust[is_session]] + 0.8 * rng.standard_normal(is_session.sum()))
    value[is_session] = np.maximum(np.round(minutes, 1), 0.1)

    idx = sort_rows(cust, sec, n_days)
    return pa.table(
        {
            "customer_id": ids(cust[idx]),
            "ts": ts_array(config.start, sec[idx]),
            "event_type": code_names(kinds[idx], EVENT_TYPES),
            "value": pa.array(value[idx], type=pa.float64(), from_pandas=True),
        }
    )
