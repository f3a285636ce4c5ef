"""Shared builders for the feature tests: tiny frames in the clean contract."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pandas as pd
import pytest

from churnclv.schema import KNOWN_EVENT_TYPES


def _ts(values: Iterable[str]) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), format="ISO8601"), dtype="datetime64[us]")


@pytest.fixture
def tx() -> Callable[..., pd.DataFrame]:
    """``tx([(customer_id, ts, amount), ...], **extra_columns)`` -> a clean transactions frame."""

    def build(rows: list[tuple[str, str, float]], **extra: list) -> pd.DataFrame:
        frame = pd.DataFrame(
            {
                "customer_id": pd.Series([r[0] for r in rows], dtype="str"),
                "ts": _ts(r[1] for r in rows),
                "amount": pd.Series([float(r[2]) for r in rows], dtype="float64"),
            }
        )
        for name, values in extra.items():
            frame[name] = pd.Series(values, dtype="str")
        return frame

    return build


@pytest.fixture
def ev() -> Callable[..., pd.DataFrame]:
    """``ev([(customer_id, ts, event_type), ...])`` -> a clean events frame."""

    def build(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "customer_id": pd.Series([r[0] for r in rows], dtype="str"),
                "ts": _ts(r[1] for r in rows),
                "event_type": pd.Series([r[2] for r in rows], dtype="str"),
            }
        )

    return build


@pytest.fixture
def cu() -> Callable[..., pd.DataFrame]:
    """``cu([(customer_id, signup_ts or None, region), ...])`` -> a clean customers frame."""

    def build(rows: list[tuple[str, str | None, str]]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "customer_id": pd.Series([r[0] for r in rows], dtype="str"),
                "signup_ts": pd.Series(
                    [pd.NaT if r[1] is None else pd.Timestamp(r[1]) for r in rows], dtype="datetime64[us]"
                ),
                "region": pd.Series([r[2] for r in rows], dtype="str"),
            }
        )

    return build


@pytest.fixture
def event_types() -> tuple[str, ...]:
    return KNOWN_EVENT_TYPES


@pytest.fixture(scope="session")
def small_world():
    """A small synthetic world (a few hundred customers) from churnclv.generate."""
    from churnclv.generate import generate_world
    from churnclv.generator.world import WorldConfig

    return generate_world(WorldConfig(n_customers=400, seed=3, purchase_rate_scale=2.0, event_rate_scale=1.0))
