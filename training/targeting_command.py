"""``churnclv campaign fit-targeting``: whom to contact, learned from past campaigns with holdouts and saved.

Each past campaign is given as ``campaign evaluate`` reads it (its scores, its contact log, the data
after it): it is evaluated against its holdout (a campaign that ran with a targeting: both arms cut to
the customers the targeting would contact, :func:`~churnclv.training.campaign_inputs.targeted_population`),
joined with the features of its as-of (:mod:`churnclv.training.campaign_features`: ``--features`` or the
batch's snapshot beside a scores partition ``OUT/scores/dt=D``, checked to be of the scores' as-of, else
computed), and :class:`~churnclv.campaigns.targeting.CampaignTargeting` is fitted on them all with the
playbook's costs and the actions that are no contact, and saved (:mod:`churnclv.campaigns.targeting_files`,
with the outcome window and the model that scored the campaigns) for ``score-batch --targeting``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import pandas as pd

from churnclv.cli_options import (
    as_of_option,
    config_option,
    horizon_option,
    prepare_source,
    report_errors,
    source_options,
    tracking_uri_option,
)
from churnclv.names import DEFAULT_TRACKING_URI
from churnclv.training.campaign_inputs import (
    CAMPAIGN_EXPERIMENT,
    SCORES_HELP,
    campaign_arms,
    evaluate_from_files,
    partition_manifest,
    read_table,
    scores_as_of,
    scoring_model,
    targeted_population,
)

if TYPE_CHECKING:
    from churnclv.campaigns.config import CampaignConfig
    from churnclv.campaigns.targeting import PastCampaign
    from churnclv.campaigns.targeting_files import SavedTargeting

__all__ = ["MIN_CAMPAIGNS", "fit_targeting"]

#: Past campaigns the backtest needs by default: it leaves one campaign out and judges on it.
MIN_CAMPAIGNS = 2


def _past_campaign(
    clean: Any,
    scores: Path,
    campaign_id: str | None,
    features: Path | None,
    log: pd.DataFrame,
    config: CampaignConfig,
    paths: tuple[Path | None, str | None],
    **window: Any,
) -> PastCampaign:
    """One campaign evaluated against its holdout (cut to whom its targeting would contact, when it ran with
    one), with the features of its as-of and the model that scored it (``paths``: the config and the
    tracking URI)."""
    from churnclv.campaigns.errors import CampaignError
    from churnclv.campaigns.targeting import PastCampaign
    from churnclv.training.campaign_features import campaign_features

    frame = read_table(scores, "scores")
    if campaign_id is None:
        ids = frame["campaign"].dropna().unique() if "campaign" in frame.columns else []
        if len(ids) != 1:
            raise CampaignError(
                f"scores {scores}: hold {len(ids)} campaign ids; fix: pass --campaign ID for every --scores, in order"
            )
        campaign_id = str(ids[0])
    day = scores_as_of(frame, None)
    found = partition_manifest(scores)
    model = scoring_model(found[1] if found is not None else None, frame)
    arms = campaign_arms(frame, campaign_id, None, config)
    frame, arms, note = targeted_population(frame, arms, config.no_contact)
    if note:
        click.echo(f"  {campaign_id}: {note}")
    evaluation = evaluate_from_files(
        clean, frame, arms, log, campaign_id=campaign_id, campaign_day=day, config=config, **window
    )
    controls = int(evaluation.customers["holdout"].sum())
    if controls == 0 or controls == len(evaluation.customers):
        raise CampaignError(
            f"campaign {campaign_id!r}: {controls:,} of {len(evaluation.customers):,} customers held out; a campaign "
            "teaches the targeting only with both arms: fix: leave it out, or pass the scores that carry its holdout"
        )
    feats, source = campaign_features(features, scores, day, clean, *paths)
    click.echo(f"  {campaign_id} ({day.date()}): features {source}")
    return PastCampaign.from_evaluation(evaluation, feats, model)


def _paired(name: str, values: tuple[Any, ...], scores: tuple[Path, ...]) -> list[Any]:
    """``values`` of a repeated option, one per ``--scores`` in order (none given: None for each)."""
    if not values:
        return [None] * len(scores)
    if len(values) != len(scores):
        raise click.UsageError(
            f"{len(values)} {name} for {len(scores)} --scores: give one {name} per --scores, in the same order"
        )
    return list(values)


@click.command("fit-targeting")
@source_options
@click.option("--scores", multiple=True, required=True, type=click.Path(exists=True, path_type=Path), help=SCORES_HELP)
@click.option(
    "--campaign",
    "campaign_ids",
    multiple=True,
    help="The campaign id of each --scores, in order (default: the scores' campaign column, a batch partition's).",
)
@click.option(
    "--features",
    "features_paths",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="The features of each --scores' as-of, in order, e.g. the batch's OUT/features/dt=D (refused when of "
    "another as-of; default: the batch's snapshot beside a scores partition, else computed from the data with the "
    "scoring model's feature config, else the config's [features]).",
)
@click.option(
    "--contacts",
    multiple=True,
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Contact logs (customer_id, campaign, date, action), Parquet or CSV; repeat for several files.",
)
@click.option(
    "--candidate",
    "candidates",
    multiple=True,
    help="Candidates, simplest first: uplift_model and number columns the batch writes with every score (e.g. "
    "expected_spend, clv; default: expected_spend, clv_at_risk, uplift_model). The first is kept unless a later one "
    "earns clearly more on held-out campaigns.",
)
@click.option(
    "--min-campaigns",
    type=click.IntRange(min=1),
    default=MIN_CAMPAIGNS,
    show_default=True,
    help="Refuse fewer past campaigns (the backtest leaves one out; with 1, thirds of its customers are held out).",
)
@as_of_option("The date the data is known up to (default: the end of each outcome window).", required=False)
@horizon_option("Outcome window in days (default: [campaigns] horizon_days, 90).")
@config_option("TOML with [campaigns] (margin, seed), [tiers] (the playbook's action costs) and [features].")
@tracking_uri_option(f"MLflow tracking URI (default $MLFLOW_TRACKING_URI or {DEFAULT_TRACKING_URI}).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Targeting folder.")
@click.option("--mlflow/--no-mlflow", "log_mlflow", default=True, show_default=True, help="Log the fit to MLflow.")
def fit_targeting(
    data: str,
    mapping: Path | None,
    work: Path | None,
    trusted: bool,
    memory_limit: str | None,
    scores: tuple[Path, ...],
    campaign_ids: tuple[str, ...],
    features_paths: tuple[Path, ...],
    contacts: tuple[Path, ...],
    candidates: tuple[str, ...],
    min_campaigns: int,
    as_of: Any,
    horizon_days: int | None,
    config_path: Path | None,
    tracking_uri: str | None,
    out: Path,
    log_mlflow: bool,
) -> None:
    """Learn whom to contact from past campaigns with holdouts; save it for score-batch --targeting."""
    from churnclv.campaigns.candidates import CANDIDATES, check_candidates
    from churnclv.campaigns.config import load_campaign_config
    from churnclv.campaigns.errors import CampaignError
    from churnclv.campaigns.targeting import CampaignTargeting
    from churnclv.campaigns.targeting_files import save_targeting

    ids, feats = _paired("--campaign", campaign_ids, scores), _paired("--features", features_paths, scores)
    if len(scores) < min_campaigns:
        raise click.UsageError(
            f"{len(scores)} past campaign(s) given; the backtest leaves one campaign out and judges the choice on it, "
            f"so it needs at least {min_campaigns}: pass the --scores of another campaign with a holdout, or "
            "--min-campaigns 1 to hold out thirds of one campaign's customers instead"
        )
    with report_errors():
        check_candidates(candidates or CANDIDATES)  # before the data is read: an outcome or a text is refused
        config = load_campaign_config(config_path)
        log = pd.concat([read_table(p, "contact log") for p in contacts], ignore_index=True)
    clean = prepare_source(data, mapping, work, trusted, memory_limit)
    with report_errors():
        window = {"horizon": horizon_days or config.settings.horizon_days, "as_of": as_of}
        past = [
            _past_campaign(clean, s, i, f, log, config, (config_path, tracking_uri), **window)
            for s, i, f in zip(scores, ids, feats, strict=True)
        ]
        names = [c.name for c in past]
        if len(set(names)) < len(names):
            raise CampaignError(f"campaigns {names}: one is given twice; fix: pass each past campaign once")
        targeting = CampaignTargeting(
            candidates=candidates or CANDIDATES, margin=config.settings.margin, seed=config.settings.seed
        ).fit(past, config.costs, config.no_contact)
        saved = save_targeting(targeting, out)
    echo_targeting(saved, click.echo)
    if log_mlflow:
        with report_errors(redact=True):
            run_id = _log_to_mlflow(saved, tracking_uri)
        click.echo(f"MLflow run {run_id} (experiment {CAMPAIGN_EXPERIMENT})")


def echo_targeting(saved: SavedTargeting, echo: Any) -> None:
    """The fit's summary: the campaigns, each candidate's held-out profit with its error, the choice and why."""
    t = saved.targeting
    learned = ", ".join(f"{r.campaign} ({r.customers:,}, {r.controls:,} held out)" for r in t.campaigns_.itertuples())
    echo(f"targeting {saved.id}: learned from {len(t.campaigns_)} campaign(s): {learned}")
    echo(f"  {'candidate':<20} {'contacts':>10} {'held-out profit':>16} {'± SE':>10} {'per customer':>13} {'qini':>8}")
    for r in t.summary().itertuples():
        mark = "  <- chosen" if r.chosen else ""
        echo(
            f"  {r.candidate:<20} {r.contacts:>10,} {r.profit:>16,.0f} {r.profit_se:>10,.0f} "
            f"{r.profit_per_customer:>13.3f} {r.qini:>8.3f}{mark}"
        )
    for r in t.comparisons_.itertuples():
        rule = f"{t.min_gain_se:g} x SE {r.gain_se:,.0f}"
        if r.switched:
            echo(f"  {r.candidate} replaced {r.against}: it earned {r.gain:+,.0f} against it, more than {rule}")
        else:
            echo(f"  {r.against} kept over {r.candidate}: that earned {r.gain:+,.0f} against it, not more than {rule}")
    if t.comparisons_.empty:
        echo(f"  {t.chosen_}: the only candidate")
    echo(f"  decides: contact when {t.margin:g} x expected incremental revenue - cost of the action > 0")
    if t.no_contact_:
        echo(f"  never contacts the customers of {len(t.no_contact_)} action(s) that are no contact (contact = false)")
    window = f"{t.horizon_days_} days" if t.horizon_days_ is not None else "an unknown window"
    horizon = t.scores_model_.get("horizon_days")
    models = ", ".join(f"{m['campaign']}: {m['name'] or '?'} v{m['version'] or '?'}" for m in t.scores_model_["models"])
    scope = f"models of a {horizon}-day horizon" if horizon is not None else "models of unknown horizon (not checked)"
    echo(f"  uplift measured over {window}; campaigns scored by {scope} ({models})")
    echo(f"saved: {saved.folder} (score-batch --targeting {saved.folder})")


def _log_to_mlflow(saved: SavedTargeting, tracking_uri: str | None) -> str:
    import mlflow

    from churnclv.training.tracking import configure

    configure(tracking_uri, experiment=CAMPAIGN_EXPERIMENT)
    t = saved.targeting
    summary = t.summary()
    metrics = {
        f"{part}_{row.candidate}": float(getattr(row, part))
        for row in summary.itertuples()
        for part in ("profit", "profit_se", "profit_per_customer", "qini", "contacts")
    }
    with mlflow.start_run(run_name=f"targeting {saved.id}") as run:
        mlflow.log_params(
            {
                "targeting": saved.id,
                "chosen": t.chosen_,
                "candidates": ",".join(t.candidates),
                "campaigns": ",".join(t.campaigns_["campaign"]),
                "margin": t.margin,
                "min_gain_se": t.min_gain_se,
            }
        )
        mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
        mlflow.log_artifacts(str(saved.folder), "targeting")
        return str(run.info.run_id)
