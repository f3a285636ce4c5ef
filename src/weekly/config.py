"""The ``[weekly]`` section of the run configuration: when to retrain and which service to reload.

```toml
[weekly]
retrain_every_days = 28        # retrain when the newest registered version was trained this long ago
retrain_on_breach = true       # retrain when the monitor reports a breach (exit status 3)
max_data_lag_days = 3          # stop when the transactions end more than this before the as-of
keep_days = 365                # remove as-ofs older than this once a run completes (unset: keep all)
service_url = "http://scoring:3000"   # POST /reload after the run (unset: no service to tell)
api_key_env = "CHURNCLV_API_KEY"      # the environment variable holding the service's API key
reload_timeout_s = 30
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field

from churnclv.campaigns.config import parse_campaigns
from churnclv.config import ConfigError
from churnclv.config_schema import Fix, check_table, read_run_config, rule_error, section, settings
from churnclv.monitoring.thresholds import parse_monitor
from churnclv.names import MAX_DAYS_AFTER_DATA
from churnclv.redaction import redact_text

__all__ = ["WeeklyConfig", "load_weekly_config"]


def _http_url(url: str | None) -> str | None:
    if url is not None and not url.startswith(("http://", "https://")):
        raise rule_error(
            "must be an http:// or https:// URL", 'e.g. service_url = "http://localhost:3000"', got=redact_text(url)
        )
    return url


Days = Annotated[int, Field(ge=1), Fix("a whole number of days >= 1, e.g. retrain_every_days = 28")]
# a week's export missing leaves the data a week short of the as-of: scored, a week of silence reads as
# lapsing customers, the drift breach that follows retrains on it (score-batch's own limit is 31 days)
LagDays = Annotated[
    int, Field(ge=0, le=MAX_DAYS_AFTER_DATA), Fix(f"whole days, 0 to {MAX_DAYS_AFTER_DATA}, e.g. max_data_lag_days = 3")
]


@settings("weekly")
class WeeklyConfig:
    """The weekly job's settings (TOML section ``[weekly]``)."""

    retrain_every_days: Days = 28
    retrain_on_breach: bool = True
    max_data_lag_days: LagDays = 3
    keep_days: Annotated[
        int | None, Field(ge=7), Fix("whole days >= 7, e.g. keep_days = 365 (leave it out to keep everything)")
    ] = None
    service_url: Annotated[str | None, AfterValidator(_http_url)] = None
    api_key_env: Annotated[
        str,
        Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"),
        Fix('the name of an environment variable, e.g. api_key_env = "CHURNCLV_API_KEY"'),
    ] = "CHURNCLV_API_KEY"
    reload_timeout_s: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)] = 30.0


def load_weekly_config(path: Path | None) -> WeeklyConfig:
    """The ``[weekly]`` section of the file at ``path`` (None or no section: the defaults); a bad key or
    value is a :class:`~churnclv.config.ConfigError` naming the key, the rule and the fix.

    ``[monitor]`` and ``[campaigns]`` are checked here too: the steps read them only when they run (the
    monitor after scoring, and not at all in a week with nothing published), so a typo there would
    otherwise pass a bootstrap week and stop a later one half done. ``[train]``, ``[scorer]``,
    ``[features]`` and ``[tiers]`` are checked by the caller's ``RunConfig.load``."""
    raw = read_run_config(path)
    try:
        parse_monitor(raw.get("monitor", {}))
        parse_campaigns(raw.get("campaigns", {}))
        return WeeklyConfig(**check_table(raw.get("weekly", {}), section("weekly")))
    except ConfigError as exc:
        raise ConfigError(f"config: {exc}") from None
