#!/usr/bin/env bash
# Runs one generated world end to end (generate, validate, train, score-batch, HTTP /score) into OUT,
# keeping what a refactoring must not change: the batch scores, the saved scorer, the HTTP answers.
# Compare two runs with bench/same_outputs_diff.py OUT_BEFORE OUT_AFTER.
# Usage: bench/same_outputs.sh OUT [PORT]
set -euo pipefail
OUT=$1; PORT=${2:-3917}
CLI=${CLI:-.venv/bin/churnclv}
AS_OF=2025-10-02
rm -rf "$OUT"; mkdir -p "$OUT"
URI="sqlite:///$OUT/mlruns/mlflow.db"
$CLI generate --customers 3000 --seed 11 --out "$OUT/data" >/dev/null
$CLI validate --data "$OUT/data" --out "$OUT/v" >/dev/null
$CLI train --data "$OUT/v/clean" --trusted --as-of $AS_OF --tracking-uri "$URI" > "$OUT/train.txt" 2>&1
$CLI score-batch --data "$OUT/v/clean" --trusted --as-of $AS_OF --out "$OUT/scores" --tracking-uri "$URI" >/dev/null 2>&1
export CHURNCLV_API_KEY=same-outputs-key-0123456789 BENTOML_HOME="$OUT/bentoml"
$CLI serve --port "$PORT" --tracking-uri "$URI" --snapshot "$OUT/scores" > "$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do  # wait for readiness (bounded); the server answers /readyz once the model is loaded
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  kill -0 $SERVER 2>/dev/null || { cat "$OUT/serve.log"; exit 1; }
  sleep 0.5
done
IDS=$(.venv/bin/python -c "import pandas as pd,glob; f=sorted(glob.glob('$OUT/scores/scores/dt=*/part*.parquet')); print(','.join('\"'+c+'\"' for c in pd.read_parquet(f[0])['customer_id'].head(25)))")
curl -s -X POST -H "X-API-Key: $CHURNCLV_API_KEY" -H 'Content-Type: application/json' \
  -d "{\"customer_ids\": [$IDS]}" "http://127.0.0.1:$PORT/score_by_id" > "$OUT/http_score_by_id.json"
curl -s -X POST -H "X-API-Key: $CHURNCLV_API_KEY" "http://127.0.0.1:$PORT/model_info" > "$OUT/http_model_info.json"
echo "outputs in $OUT"
