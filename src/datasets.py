"""Real data sets converted into the canonical contract.

CDNOW (Fader, Hardie and Lee 2005, "Counting your customers the easy way"): 23,570 customers who
first bought at CDNOW in 1997Q1, with all their purchases to 1998-06-30. The ``lifetimes`` package
ships the full file and a 1/10 sample.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from churnclv.errors import ChurnclvError
from churnclv.schema import TABLES

if TYPE_CHECKING:
    from churnclv.generator.world import World


class DatasetError(ChurnclvError, ValueError):
    """An unknown data set or variant; the message lists the known ones."""


CDNOW_FILES = {"master": "CDNOW_master.txt", "sample": "CDNOW_sample.txt"}


def cdnow_path(variant: str = "master") -> Path:
    """Path of the CDNOW text file that ``lifetimes`` ships (``master`` or ``sample``)."""
    if variant not in CDNOW_FILES:
        raise DatasetError(f"unknown CDNOW variant {variant!r}: use one of {sorted(CDNOW_FILES)}")
    return Path(str(resources.files("lifetimes.datasets") / CDNOW_FILES[variant]))


def load_cdnow(variant: str = "master") -> pd.DataFrame:
    """CDNOW transactions in the canonical contract: ``customer_id, ts, amount, quantity``.

    Every line of the file is kept (several lines on one day included); ``customer_id`` keeps the
    file's zero-padded ids. The sample file has an extra column (the id in the master file's
    numbering); ``customer_id`` is the sample's own id.
    """
    path = cdnow_path(variant)
    if variant == "master":
        names = ["customer_id", "date", "quantity", "amount"]
        raw = pd.read_csv(path, sep=r"\s+", skiprows=1, names=names, dtype={"customer_id": str, "date": str})
    else:
        names = ["customer_id", "master_id", "date", "quantity", "amount"]
        raw = pd.read_csv(path, sep=r"\s+", names=names, dtype={"customer_id": str, "master_id": str, "date": str})
    return pd.DataFrame(
        {
            "customer_id": raw["customer_id"].astype(str),
            "ts": pd.to_datetime(raw["date"], format="%Y%m%d"),
            "amount": raw["amount"].astype("float64"),
            "quantity": raw["quantity"].astype("int64"),
        }
    )


def write_cdnow(out_dir: Path | str, variant: str = "master") -> Path:
    """Write CDNOW as ``out_dir/transactions.parquet``; returns the path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "transactions.parquet"
    load_cdnow(variant).to_parquet(path, index=False)
    return path


def cdnow(variant: str = "master") -> dict[str, pd.DataFrame]:
    """CDNOW as the clean tables the feature functions read: ``{"transactions": frame}``.

    The data set has transactions only (no events, no sign-up dates). ``variant`` is ``master``
    (23,570 customers) or ``sample`` (2,357); see :func:`load_cdnow` for the columns.

    Examples
    --------
    >>> import churnclv as cc
    >>> features = cc.compute_features(cc.datasets.cdnow("sample"), "1997-09-30")  # doctest: +SKIP
    """
    return {"transactions": load_cdnow(variant)}


def tables(world: World) -> dict[str, pd.DataFrame]:
    """A generated world's clean tables (``transactions``, ``events``, ``customers``) as the feature
    functions read them; the latent truth stays on ``world``.

    Examples
    --------
    >>> import churnclv as cc
    >>> shop = cc.datasets.tables(cc.generate_world(cc.WorldConfig(n_customers=500, seed=1)))  # doctest: +SKIP
    """
    return {name: getattr(world, name) for name in TABLES}
