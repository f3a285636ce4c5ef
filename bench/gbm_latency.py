"""Single-row latency of churnclv.models.gbm (median of 1,000 calls)."""

import time

import numpy as np
import pandas as pd

import churnclv.models.gbm as gbm

rng = np.random.default_rng(0)
n, p = 20_000, 25
X = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"f{i}" for i in range(p)])
X["region"] = rng.choice(["north", "south", "east", "west"], n)
X["acquisition_channel"] = rng.choice(["web", "store", "partner"], n)
X.insert(0, "customer_id", [f"{i:07d}" for i in range(n)])
y = rng.random(n) < 1 / (1 + np.exp(-(X.f0 - X.f1 + (X.region == "north"))))
m = gbm.GBMChurnClassifier(num_boost_round=300, early_stopping_rounds=None).fit(X, y)
s = gbm.GBMSpendRegressor(num_boost_round=300, early_stopping_rounds=None, validation_fraction=0.0).fit(
    X, np.where(y, 0, np.exp(X.f2 + 3))
)
print("trees:", m.booster_.current_iteration(), "features:", len(m.feature_names_))
row = X.iloc[[123]]
M = m._matrix(row)


def med(f, k=1000):
    f()
    ts = []
    for _ in range(k):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return np.median(ts) * 1e3


def show(label):
    print(
        f"{label:58s} {med(lambda: m.predict_proba(row)):7.3f} ms  "
        f"booster-only {med(lambda: m.booster_.predict(M, raw_score=True, num_threads=1)):6.3f} ms"
    )


for rep in range(3):
    show(f"[{rep}] predict_proba(1 row DataFrame), num_threads=1")
    print(f"[{rep}] {'spend predict(1 row)':54s} {med(lambda: s.predict(row)):7.3f} ms")
    print(f"[{rep}] {'explain(1 row, top_k=3)':54s} {med(lambda: m.explain(row)):7.3f} ms")
    print(f"[{rep}] {'_matrix(1 row) (DataFrame -> float matrix)':54s} {med(lambda: m._matrix(row)):7.3f} ms")
    print(
        f"[{rep}] {'booster.predict(1 row), all threads (num_threads=0)':54s} "
        f"{med(lambda: m.booster_.predict(M, raw_score=True, num_threads=0)):7.3f} ms"
    )
t = time.perf_counter()
m.predict_proba(X)
dt = time.perf_counter() - t
print(f"batch predict_proba {n} rows: {dt * 1e3:.1f} ms = {n / dt:,.0f} rows/s")
