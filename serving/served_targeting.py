"""The targeting in the HTTP service (``CHURNCLV_TARGETING``): its checks against what a worker serves, and
its decision on each endpoint's answers.

The targeting is read once, at start-up (:func:`load_served_targeting`; ``churnclv serve`` reads and checks
it before the server starts, :mod:`churnclv.serving.server`), and kept for the worker's life: ``/reload``
and the periodic check keep it, and load a new model only if the targeting can serve it
(:func:`check_served`: the batch's checks of the model, and the features ``/score`` computes); a new
snapshot that lacks a feature its uplift model reads makes ``score_by_id`` answer 503, as a snapshot that
lacks a model's column does. A new targeting folder takes a restart.

Each score then carries the decision ``score-batch --targeting`` writes for the same customer, model,
as-of and campaign arm (:mod:`churnclv.serving.targeting_decisions`): ``score_by_id`` decides on the
snapshot's feature rows (precomputed with the answers, :mod:`churnclv.serving.score_table`), ``/score``
on the features the scoring call computed from the request's histories (handed out by it, not computed
again).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from churnclv.redaction import redact_text
from churnclv.serving.feature_snapshot import FeatureSnapshot
from churnclv.serving.model import LoadedModel, ModelLoadError
from churnclv.serving.schemas import CustomerError, CustomerHistory, CustomerScore
from churnclv.serving.scoring import probe_features, score_histories_together
from churnclv.serving.settings import VARIABLES
from churnclv.serving.targeting_decisions import Targeting, TargetingError, decide_answers

__all__ = [
    "OPTION",
    "check_served",
    "checked_loader",
    "decide_id_answers",
    "load_served_targeting",
    "score_and_decide_histories",
    "snapshot_problem",
]

#: How the messages name the setting (``churnclv serve --targeting`` sets the variable).
OPTION = f"{VARIABLES['targeting']} (serve --targeting)"
_Answers = list[CustomerScore | CustomerError]


def load_served_targeting(folder: Path | None) -> Targeting | None:
    """The targeting in ``folder`` (None: none).

    Raises
    ------
    TargetingError
        The folder holds no targeting, or a damaged one (the message names the file and the fix).
    """
    return None if folder is None else Targeting.load(folder, OPTION)


def check_served(targeting: Targeting, model: LoadedModel) -> None:
    """Refuse a model the targeting cannot serve: the batch's checks (horizon, action costs and contact flags),
    and the features ``/score`` computes for it (what its uplift model reads).

    Raises
    ------
    TargetingError
        The message names the setting, the rule and the fix.
    """
    targeting.check_model(model)
    if targeting.feature_names:
        targeting.check_features(
            [str(c) for c in probe_features(model).columns],
            "the features the service computes for /score",
            "the model is not served",
        )


def checked_loader(loader: Callable[..., LoadedModel], targeting: Targeting | None) -> Callable[..., LoadedModel]:
    """``loader`` (see :class:`~churnclv.serving.state.ServingState`), then :func:`check_served`: a model the
    targeting cannot serve is a :class:`ModelLoadError` (start-up fails; a reload keeps the current model)."""
    if targeting is None:
        return loader

    def load(*args: object, **kwargs: object) -> LoadedModel:
        model = loader(*args, **kwargs)
        try:
            check_served(targeting, model)
        except TargetingError as exc:
            raise ModelLoadError(redact_text(str(exc))) from None
        return model

    return load


def snapshot_problem(targeting: Targeting | None, snapshot: FeatureSnapshot) -> str | None:
    """Why ``score_by_id`` cannot decide on ``snapshot`` (its uplift model reads a feature it lacks); None: it can."""
    if targeting is None:
        return None
    try:
        targeting.check_features(
            list(snapshot.features.columns), f"the feature snapshot {snapshot.partition}", "score_by_id is unavailable"
        )
    except TargetingError as exc:
        return redact_text(str(exc))
    return None


def decide_id_answers(
    targeting: Targeting, jobs: Sequence[tuple[LoadedModel, FeatureSnapshot, Sequence[str]]], answers: list[_Answers]
) -> None:
    """The decision on each score of ``score_by_id`` requests (``answers``: one list per job), from the snapshot's
    rows of the scored customers."""
    for (_, snapshot, _), part in zip(jobs, answers, strict=True):
        features = None
        if targeting.feature_names:
            ids = [a.customer_id for a in part if isinstance(a, CustomerScore)]
            features = snapshot.features.iloc[snapshot.index.get_indexer(ids)]
        decide_answers(targeting, part, features)


def score_and_decide_histories(
    targeting: Targeting | None, jobs: Sequence[tuple[LoadedModel, Sequence[CustomerHistory], dt.date]]
) -> list[_Answers]:
    """``/score`` requests scored together (one list of answers per job, in the customers' order), with the
    targeting's decision on each score, made on the features the scoring call computed."""
    frames: list[pd.DataFrame] | None = [] if targeting is not None and targeting.feature_names else None
    answers = score_histories_together(jobs, features_out=frames)
    if targeting is None:
        return answers
    for i, part in enumerate(answers):
        features = None
        if frames is not None:
            scored = [a.customer_id for a in part if isinstance(a, CustomerScore)]
            if scored:
                by_id = frames[i].set_index(frames[i]["customer_id"].astype(str))
                features = by_id.loc[scored].reset_index(drop=True)
        decide_answers(targeting, part, features)
    return answers
