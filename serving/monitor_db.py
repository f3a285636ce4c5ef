"""The monitor's database table (``--db``): one row per figure, the rows of a monitor as-of replaced whole.

Columns: ``monitored_as_of`` (the monitor's as-of), ``section`` (``quality``, ``calibration``,
``tier``, ``action``, ``drift``, ``drift_feature``, ``drift_score``, ``breach``), ``scored_as_of`` (the
partition the figure is about), ``grp`` (the tier, action, decile, column or check; empty for the
whole base), ``metric``, ``value``, ``threshold`` (breaches only), ``model_name``, ``model_version``.
The key is ``(monitored_as_of, section, scored_as_of, grp, metric)``; a rerun of an as-of deletes its rows
and inserts the new ones in one transaction. URLs, table names and errors go through the batch sink's
rules (:mod:`churnclv.serving.sinks`): PostgreSQL or SQLite, plain table names, errors without data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from churnclv.redaction import redact_url
from churnclv.serving.sinks import SinkError, check_table_name, db_reason, normalize_url

__all__ = ["DEFAULT_MONITOR_TABLE", "monitor_rows", "write_monitor_table"]

DEFAULT_MONITOR_TABLE = "churnclv_monitoring"
_KEY = ("monitored_as_of", "section", "scored_as_of", "grp", "metric")


def _table(name: str) -> sa.Table:
    f = sa.Float(precision=53)
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("monitored_as_of", sa.Date, primary_key=True),
        sa.Column("section", sa.Text, primary_key=True),
        sa.Column("scored_as_of", sa.Date, primary_key=True),
        sa.Column("grp", sa.Text, primary_key=True),
        sa.Column("metric", sa.Text, primary_key=True),
        sa.Column("value", f),
        sa.Column("threshold", f),
        sa.Column("model_name", sa.Text),
        sa.Column("model_version", sa.Text),
    )


def _day(iso: str) -> dt.date:
    return dt.date.fromisoformat(iso)


def monitor_rows(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The rows of ``monitor.json``'s document (see the module doc)."""
    base = {"monitored_as_of": _day(doc["as_of"]), "threshold": None}

    def row(section: str, p: dict[str, Any], grp: Any, metric: str, value: Any) -> dict[str, Any]:
        v = None if value is None else float(value)
        return {
            **base,
            "section": section,
            "scored_as_of": _day(p["as_of"]),
            "grp": "" if grp is None else str(grp),
            "metric": metric,
            "value": v,
            "model_name": p["model"]["name"],
            "model_version": p["model"]["version"],
        }

    for p in doc["partitions"]:
        yield from (row("quality", p, "", k, v) for k, v in p["metrics"].items())
        for c in p["calibration"]:
            yield from (
                row("calibration", p, c["decile"], k, c[k]) for k in ("customers", "mean_p_churn", "realized_churn")
            )
        for by, section in (("tier", "tier"), ("action", "action")):
            for g in p[f"{by}s"]:
                yield from (row(section, p, g[by], k, v) for k, v in g.items() if k != by)
    d = doc["drift"]
    if d is not None:
        for k in ("max_feature_psi", "unseen_share"):
            yield row("drift", d, "", k, d[k])
        yield row("drift", d, "", "tier_mix_psi", d["tier_mix"]["psi"])
        for section, rows in (("drift_feature", d["features"]), ("drift_score", d["scores"])):
            for r in rows:
                yield from (row(section, d, r["column"], k, r[k]) for k in ("psi", "ks") if r[k] is not None)
    for b in doc["breaches"]:
        r = row("breach", {"as_of": b["scored_as_of"], "model": b["model"]}, b["check"], "value", b["value"])
        yield {**r, "threshold": float(b["threshold"])}


def write_monitor_table(url: str, table: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Replace the rows of ``doc``'s as-of in ``table`` at ``url`` (created when missing); returns what
    was done (the URL redacted). Raises :class:`~churnclv.serving.sinks.SinkError`."""
    check_table_name(table)
    where = redact_url(url)
    t = _table(table)
    rows = list(monitor_rows(doc))
    day = _day(doc["as_of"])
    try:
        engine = sa.create_engine(normalize_url(url), future=True)
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        raise SinkError(f"database {where}: cannot use it ({db_reason(exc)}): check the URL") from None
    try:
        with engine.begin() as conn:
            t.create(conn, checkfirst=True)
            have = {c["name"] for c in sa.inspect(conn).get_columns(table)}
            if have != {c.name for c in t.columns}:
                raise SinkError(
                    f"database table {table!r} exists with other columns ({sorted(have)}): drop it, or pass "
                    "another --db-table"
                )
            removed = conn.execute(sa.delete(t).where(t.c.monitored_as_of == day)).rowcount
            if rows:
                conn.execute(sa.insert(t), rows)
    except sa.exc.SQLAlchemyError as exc:
        raise SinkError(
            f"database {where}: writing the monitor rows of {day} into {table!r} failed ({db_reason(exc)}); "
            "the table keeps its rows: fix the database and run again"
        ) from None
    finally:
        engine.dispose()
    return {"url": where, "table": table, "rows_written": len(rows), "rows_removed": max(removed or 0, 0)}
