"""The batch job's Spark engine: the same Ibis feature definitions on PySpark, scoring through
``mlflow.pyfunc.spark_udf``.

Needs the ``spark`` extra (``pyspark``, ``ibis-framework[pyspark]``) and Java 17. Run under
``spark-submit`` (or with an active ``SparkSession``) and the job uses that session and its cluster;
otherwise it starts a local session bound to 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from pathlib import Path
from typing import Any

from churnclv.models.intervals import INTERVAL_COLUMNS
from churnclv.models.next_purchase import DATE_COLUMNS
from churnclv.serving.snapshots import NULLABLE_NUMBERS, OUTPUT_COLUMNS

log = logging.getLogger(__name__)

# the pyfunc's output columns the batch keeps, with their Spark types; reasons arrive "; "-joined
SCORE_STRUCT = (
    "p_churn double, p_alive double, expected_purchases double, expected_spend double, clv double, "
    + "".join(f"{c} double, " for c in INTERVAL_COLUMNS)
    + "expected_next_purchase_days double, next_purchase_days_p80 double, historic_clv double, total_clv double, "
    "avg_order_value double, "
    "avg_days_between_orders double, risk_band string, clv_at_risk double, acquisition_cost double, net_clv double, "
    "growth_score double, tier string, tier_level long, stage string, action string, reasons string"
)
REASONS_SEPARATOR = "; "
LOCAL_CONF = {
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def available() -> bool:
    """Whether pyspark and Ibis' PySpark backend are importable (the ``spark`` extra)."""
    try:
        import ibis.backends.pyspark  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return True


def session(master: str | None = None) -> Any:
    """The active SparkSession, else a new one.

    Under ``spark-submit`` the submitted master and settings are used. Otherwise the master is
    ``master``, else ``$CHURNCLV_SPARK_MASTER``, else ``local[2]``; a local session binds the driver
    to 127.0.0.1, has no UI and few shuffle partitions. The session time zone is set to UTC either
    way: the contract's timestamps are naive UTC.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.conf.set("spark.sql.session.timeZone", "UTC")
        return active
    builder = SparkSession.builder.appName("churnclv-batch").config("spark.sql.session.timeZone", "UTC")
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ  # spark-submit started the JVM and set the master
    master = master or os.environ.get("CHURNCLV_SPARK_MASTER") or (None if submitted else "local[2]")
    if master is not None:
        builder = builder.master(master)
    if master is not None and master.startswith("local"):
        for key, value in LOCAL_CONF.items():
            builder = builder.config(key, value)
        # Python workers must run this interpreter (the one with churnclv installed), not python3 on
        # PATH; a local SparkContext reads this from the environment only
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        # the JVM picks its local address from this before the settings above apply: without it, a
        # host name resolving to loopback makes Spark warn and choose the first network interface
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _find(clean: Path, name: str) -> Path | None:
    for p in (clean / f"{name}.parquet", clean / name, clean / f"{name}.csv"):
        if p.exists():
            return p
    return None


def load_tables(spark: Any, clean: Path) -> tuple[Any, Any]:
    """The clean tables as Ibis tables on Spark: ``(ibis backend, FeatureTables)``.

    Raises
    ------
    ValueError
        For CSV tables: Spark reads the clean tables as Parquet (``churnclv validate`` writes Parquet).
    """
    import ibis

    from churnclv.features import FeatureTables

    con = ibis.pyspark.connect(spark)
    tables: dict[str, Any] = {}
    for name in ("transactions", "events", "customers"):
        path = _find(clean, name)
        if path is None:
            if name == "transactions":
                raise ValueError(f"{clean}: no transactions table: point --data at the folder of clean tables")
            tables[name] = None
            continue
        if path.suffix == ".csv":
            raise ValueError(
                f"{path}: the spark engine reads clean tables as Parquet: validate the data first "
                "(churnclv validate writes Parquet) or convert the file"
            )
        tables[name] = con.read_parquet(
            str(path), table_name=f"churnclv_{name}", recursiveFileLookup="true" if path.is_dir() else None
        )
    return con, FeatureTables(**tables)


def write_features(spark: Any, clean: Path, day: dt.date, out_dir: Path, config: Any = None) -> int:
    """Run :func:`churnclv.features.build_features` on Spark (with the model's ``FeatureConfig``,
    default the defaults); write it sorted by customer id to the Parquet folder ``out_dir``. Returns
    the number of customers."""
    from churnclv.features import FeatureConfig, build_features

    con, tables = load_tables(spark, clean)
    expr = build_features(tables, day, config=config or FeatureConfig())
    frame = spark.sql(con.compile(expr)).orderBy("customer_id")
    frame.write.mode("overwrite").parquet(str(out_dir))
    return int(spark.read.parquet(str(out_dir)).count())


def _local_env_notice(record: logging.LogRecord) -> bool:
    """Drop MLflow's advice to score with ``env_manager="conda"``: churnclv scores with the installed
    package on purpose (the executors need ``churnclv[spark]``, the README's Spark section), and the
    warning that this "may lead to errors or inaccurate predictions" only alarms the operator."""
    return 'env_manager="local"' not in record.getMessage()


def write_scores(
    spark: Any, features_dir: Path, model_path: str, out_dir: Path, *, as_of: dt.date, model_version: str
) -> None:
    """Score the feature folder with ``mlflow.pyfunc.spark_udf`` and write the batch columns to
    ``out_dir`` (Parquet, sorted by customer id)."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F  # noqa: N812 - PySpark's conventional alias
    from pyspark.sql import types as T  # noqa: N812 - PySpark's conventional alias

    feats = spark.read.parquet(str(features_dir))
    # the model's input schema: every number as double (what churnclv.models.inputs.model_input does)
    cols = [
        F.col(f.name).cast("double").alias(f.name)
        if isinstance(f.dataType, (T.IntegerType, T.LongType, T.ShortType, T.BooleanType))
        else F.col(f.name)
        for f in feats.schema.fields
    ]
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    pyfunc_log.addFilter(_local_env_notice)
    try:
        udf = mlflow.pyfunc.spark_udf(spark, model_path, result_type=SCORE_STRUCT, env_manager="local")
    finally:
        pyfunc_log.removeFilter(_local_env_notice)
    scored = feats.select(*cols).select("customer_id", udf(F.struct(*feats.columns)).alias("s"))

    def undefined(x: Any) -> Any:
        return x.isNull() | F.isnan(x) | (F.abs(x) == F.lit(float("inf")))

    reasons = F.when(F.col("s.reasons") == "", F.array().cast("array<string>")).otherwise(
        F.split(F.col("s.reasons"), REASONS_SEPARATOR)
    )
    computed = {
        "customer_id": F.col("customer_id"),
        "as_of": F.lit(as_of).cast("date"),
        **{
            c: F.when(undefined(F.col(f"s.{c}")), F.lit(None).cast("double")).otherwise(F.col(f"s.{c}"))
            for c in NULLABLE_NUMBERS  # null where not finite, as churnclv.serving.chunks writes them
        },
        # churnclv.models.next_purchase.next_purchase_dates: as-of + ceil(days), at least 1, null when undefined
        **{
            date: F.when(undefined(F.col(f"s.{days}")), F.lit(None).cast("date")).otherwise(
                F.date_add(F.lit(as_of).cast("date"), F.greatest(F.ceil(F.col(f"s.{days}")), F.lit(1)).cast("int"))
            )
            for days, date in DATE_COLUMNS.items()
        },
        "reasons": reasons,
        # filled in once the whole base is scored (churnclv.serving.batch_holdout)
        "campaign": F.lit(None).cast("string"),
        "holdout": F.lit(None).cast("boolean"),
        "model_version": F.lit(model_version),
    }
    # the batch output's columns, in its order; the others are the pyfunc's own
    out = scored.select(*[computed.get(c, F.col(f"s.{c}")).alias(c) for c in OUTPUT_COLUMNS]).orderBy("customer_id")
    out.write.mode("overwrite").parquet(str(out_dir))
