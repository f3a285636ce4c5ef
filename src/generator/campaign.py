"""A retention campaign on a generated world, with a heterogeneous true effect known per customer.

Every customer known at the campaign's as-of gets a latent *response type*, drawn once from their
satisfaction ``z`` (independent of the arm): a **responder** (buys more often and dies more slowly
after a contact), **neutral** (no effect) or **annoyed** (buys less and leaves sooner). Responders are
likelier among unhappy customers (``P = 2 r sigmoid(-s z)``), the annoyed among happy ones
(``P = 2 a sigmoid(s z)``), so the effect is heterogeneous and partly predictable from the features.

The window after the as-of (``horizon_days`` whole days from the next midnight, as churnclv's labels
read it) is simulated for *every* known customer by one simulator, the world's own
(:func:`churnclv.generator.transactions.block_transactions`, from the latent state at the window's
start): a contacted customer's purchase rate and death hazard are multiplied by their type's factors,
everyone else's are not. Death is memoryless, so the remaining life is redrawn at the window's start
(for a control that is the same law as the world's). The truth per customer is the world's ground
truth (:func:`churnclv.generator.truth.truth_rows`) of the window, once with the latent state as it is
and once with the contact's factors applied: their difference is each customer's true expected effect,
whichever arm they are in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa

from churnclv.generator.arrays import SECONDS_PER_DAY, digits, fixed_strings, to_seconds
from churnclv.generator.transactions import block_transactions
from churnclv.generator.truth import truth_rows
from churnclv.generator.world import ID_WIDTH, World

__all__ = ["RESPONSE_TYPES", "CampaignEffect", "SimulatedCampaign", "simulate_campaign"]

#: The response types, in the order of their codes.
RESPONSE_TYPES: tuple[str, ...] = ("neutral", "responder", "annoyed")
_DAY = pd.Timedelta(days=1)
_LOG_COLUMNS = ("customer_id", "campaign", "date", "action")


@dataclass(frozen=True)
class CampaignEffect:
    """The true effect of one contact.

    ``responder_share`` and ``annoyed_share`` are the type probabilities at ``z = 0`` (their sum at
    most 0.5, so the probabilities stay below 1 for every ``z``); ``satisfaction_slope`` is ``s``;
    ``*_rate`` and ``*_hazard`` multiply a contacted customer's purchase rate and death hazard over
    the window.
    """

    responder_share: float = 0.3
    annoyed_share: float = 0.1
    satisfaction_slope: float = 1.0
    responder_rate: float = 1.6
    responder_hazard: float = 0.5
    annoyed_rate: float = 0.6
    annoyed_hazard: float = 2.0

    def __post_init__(self) -> None:
        shares = (self.responder_share, self.annoyed_share)
        if min(shares) < 0 or sum(shares) > 0.5:
            raise ValueError(f"CampaignEffect shares {shares}: each must be >= 0 and their sum <= 0.5.")
        factors = (self.responder_rate, self.responder_hazard, self.annoyed_rate, self.annoyed_hazard)
        if not all(f > 0 for f in factors):
            raise ValueError(f"CampaignEffect rate and hazard factors {factors}: every one must be > 0.")

    @classmethod
    def none(cls) -> CampaignEffect:
        """No effect at all (every customer neutral): the null campaign."""
        return cls(responder_share=0.0, annoyed_share=0.0)

    def factors(self, kind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Purchase-rate and hazard multipliers of a contact, per response-type code."""
        rate = np.array([1.0, self.responder_rate, self.annoyed_rate])
        hazard = np.array([1.0, self.responder_hazard, self.annoyed_hazard])
        return rate[kind], hazard[kind]

    def draw_types(self, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Response-type codes (indexes of :data:`RESPONSE_TYPES`) for satisfactions ``z``."""
        sig = 1.0 / (1.0 + np.exp(-self.satisfaction_slope * z))
        p_resp, p_annoyed = 2 * self.responder_share * (1 - sig), 2 * self.annoyed_share * sig
        u = rng.random(z.size)
        return np.where(u < p_resp, 1, np.where(u < p_resp + p_annoyed, 2, 0))


@dataclass
class SimulatedCampaign:
    """A simulated campaign: ``contact_log`` (customer_id, campaign, date, action; with the
    requested noise), ``transactions`` (the window's lines for every known customer, canonical
    contract), ``truth`` (one row per known customer) and the window ``[start, end)``."""

    contact_log: pd.DataFrame
    transactions: pd.DataFrame
    truth: pd.DataFrame
    start: pd.Timestamp
    end: pd.Timestamp


def _window(world: World, as_of: pd.Timestamp | str, horizon_days: int) -> tuple[pd.Timestamp, int]:
    as_of = pd.Timestamp(as_of)
    if as_of.tzinfo is not None or as_of != as_of.normalize():
        raise ValueError(f"as_of {as_of}: must be a naive date at midnight, e.g. '2025-06-30'.")
    start = as_of + _DAY
    first = int((start - world.config.start) / _DAY)
    if first < 1 or first + horizon_days > world.config.n_days:
        raise ValueError(
            f"the campaign window ({start.date()} + {horizon_days} days) must lie within the world "
            f"({world.config.start.date()} to {world.config.end.date()}); choose an earlier as_of or a shorter horizon."
        )
    return start, first


def _arms(plan: pd.DataFrame, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customer indexes of the plan, their holdout flags and actions."""
    missing = [c for c in ("customer_id", "holdout") if c not in plan.columns]
    if missing:
        raise ValueError(f"plan is missing columns {missing}; pass a holdout plan (customer_id, holdout, action).")
    ids = plan["customer_id"].astype(str)
    if not ids.str.fullmatch(rf"\d{{{ID_WIDTH}}}").all():
        raise ValueError("plan.customer_id: every id must be a customer of the world (8 digits).")
    index = ids.astype(np.int64).to_numpy()
    if index.size and index.max() >= n:
        raise ValueError("plan.customer_id names customers the world does not have.")
    action = plan["action"].astype(str) if "action" in plan.columns else pd.Series("contact", index=plan.index)
    return index, plan["holdout"].astype(bool).to_numpy(), action.to_numpy()


def simulate_campaign(
    world: World,
    as_of: pd.Timestamp | str,
    plan: pd.DataFrame,
    *,
    campaign: str = "campaign",
    horizon_days: int = 90,
    effect: CampaignEffect | None = None,
    seed: int = 0,
    log_missing: float = 0.0,
    log_extra: float = 0.0,
) -> SimulatedCampaign:
    """Run a campaign on ``world``: the plan's treated customers are contacted the day after ``as_of``.

    Parameters
    ----------
    world : World
        A world from :func:`churnclv.generate.generate_world`; its transactions up to ``as_of`` are
        the history, :attr:`SimulatedCampaign.transactions` the window after it.
    as_of : timestamp
        The campaign's as-of (midnight): the scores and the holdout are of this date.
    plan : pandas.DataFrame
        ``customer_id``, ``holdout`` (bool) and optionally ``action`` (default ``contact``): who is
        in the campaign; customers not in it are neither contacted nor held out.
    campaign : str
        The campaign id written in the contact log.
    horizon_days : int
        Length of the window in days.
    effect : CampaignEffect, optional
        The true effect (default :class:`CampaignEffect`; :meth:`CampaignEffect.none` for none).
    seed : int
        Seed of the response types, the window and the log noise (with the world's seed).
    log_missing, log_extra : float
        Share of contacts whose log row is lost, and of rows added (repeats and unknown customers).
    """
    effect = CampaignEffect() if effect is None else effect
    config, latent = world.config, world.latent
    start, a = _window(world, as_of, horizon_days)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, seed], spawn_key=(7,)))
    index, held, action = _arms(plan, config.n_customers)
    known = np.flatnonzero(latent.signup_day <= a)
    treated = np.zeros(config.n_customers, dtype=bool)
    treated[index[~held]] = True
    treated &= latent.signup_day <= a  # a plan row for a customer unknown at as_of is not contacted
    kind = np.zeros(config.n_customers, dtype=np.int64)
    kind[known] = effect.draw_types(latent.satisfaction[known], rng)
    rate_f, hazard_f = effect.factors(kind)
    transactions = _window_transactions(world, known, a, horizon_days, treated, rate_f, hazard_f, rng)
    truth = _truth(world, known, start, horizon_days, kind, rate_f, hazard_f, treated)
    in_plan = np.zeros(config.n_customers, dtype=bool)
    in_plan[index] = True
    truth["in_plan"] = in_plan[known]
    contacted = ~held & treated[index]
    log = pd.DataFrame(
        {
            "customer_id": plan["customer_id"].astype(str).to_numpy()[contacted],
            "campaign": campaign,
            "date": start,
            "action": action[contacted],
        }
    )
    return SimulatedCampaign(
        _noisy_log(log, rng, log_missing, log_extra), transactions, truth, start, start + horizon_days * _DAY
    )


def _window_transactions(
    world: World,
    known: np.ndarray,
    a: int,
    horizon_days: int,
    treated: np.ndarray,
    rate_f: np.ndarray,
    hazard_f: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    config, lat = world.config, world.latent
    on = treated[known]
    alive = lat.death_day[known] > a
    hazard = lat.hazard[known] * np.where(on, hazard_f[known], 1.0)
    life = rng.standard_exponential(known.size) / hazard
    begin = np.full(known.size, float(a))
    alive_end = np.where(alive, np.minimum(a + life, a + horizon_days), begin)
    rate = lat.purchase_rate[known] * np.where(on, rate_f[known], 1.0)
    id_mat = digits(known, ID_WIDTH)
    first_sec = a * SECONDS_PER_DAY

    def ids(cust: np.ndarray) -> pa.Array:
        return fixed_strings(id_mat[cust])

    def seconds(cust: np.ndarray, t: np.ndarray) -> np.ndarray:
        clipped: np.ndarray = np.clip(to_seconds(t), first_sec, config.n_days * SECONDS_PER_DAY)
        return clipped

    table = block_transactions(
        config, rng, ids, seconds, id_mat, begin, alive_end, rate, lat.mean_line_value[known], lat.return_prob[known]
    )
    out = table.to_pandas()
    # "-w": the window's orders never share an order_id with the history's
    out["order_id"] = out["order_id"].str.replace("-", "-w", n=1, regex=False)
    return out


def _truth(
    world: World,
    known: np.ndarray,
    start: pd.Timestamp,
    horizon_days: int,
    kind: np.ndarray,
    rate_f: np.ndarray,
    hazard_f: np.ndarray,
    treated: np.ndarray,
) -> pd.DataFrame:
    lat = world.latent
    contacted = replace(lat, purchase_rate=lat.purchase_rate * rate_f, hazard=lat.hazard * hazard_f)
    base = truth_rows(world.config, lat, 0, [start], horizon_days).to_pandas()
    if_contacted = truth_rows(world.config, contacted, 0, [start], horizon_days).to_pandas()
    out = pd.DataFrame({"customer_id": base["customer_id"], "response": np.asarray(RESPONSE_TYPES)[kind[known]]})
    out["treated"] = treated[known]
    out["alive"] = base["alive"].to_numpy()
    for name, col, fn in (
        ("retention", "p_no_purchase", lambda v: 1.0 - v),
        ("purchases", "expected_purchases", lambda v: v),
        ("spend", "expected_spend", lambda v: v),
    ):
        out[f"{name}_control"] = fn(base[col].to_numpy())
        out[f"{name}_treated"] = fn(if_contacted[col].to_numpy())
        out[f"effect_{name}"] = out[f"{name}_treated"] - out[f"{name}_control"]
    return out


def _noisy_log(log: pd.DataFrame, rng: np.random.Generator, missing: float, extra: float) -> pd.DataFrame:
    """The log as a CRM keeps it: ``missing`` of its rows lost, ``extra`` rows added (half repeats of
    logged contacts, half contacts of customers the scores do not know)."""
    if not (0 <= missing < 1 and 0 <= extra < 1):
        raise ValueError(f"log_missing {missing} and log_extra {extra}: each must be in [0, 1).")
    kept = log[rng.random(len(log)) >= missing]
    n_extra = round(extra * len(log))
    repeats = kept.sample(n=min(n_extra // 2, len(kept)), random_state=rng) if len(kept) else kept
    strangers = pd.DataFrame(
        {
            "customer_id": [f"X{i:07d}" for i in range(n_extra - len(repeats))],
            "campaign": log["campaign"].iloc[0] if len(log) else "campaign",
            "date": log["date"].iloc[0] if len(log) else pd.NaT,
            "action": log["action"].iloc[0] if len(log) else "contact",
        }
    )
    out = pd.concat([kept, repeats, strangers], ignore_index=True)
    return out.sample(frac=1.0, random_state=rng).reset_index(drop=True)[list(_LOG_COLUMNS)]
