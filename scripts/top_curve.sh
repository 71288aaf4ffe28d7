#!/usr/bin/env bash
# Issue 12's learning curve of the chosen teacher weighting (`top`) once every partition is
# collected (ceo-verify-1 + teachers-a + teachers-b): goal_hat and the L4 distillation set of
# any partition that lacks them (the current L2), the teacher table on every partition, then
# `top` L3s on nested subsets of the training worlds (40, 100) and on all of them, and one
# selection tournament where they play beside the `top` L3 of the 150-world study (the policy
# published before) in the same worlds as that study (seed 100, 12 worlds, 40-80 days). Each
# step resumes when rerun. Paths of the variants go to data/teacher_study/top_w*.path.
source "$(dirname "$0")/study_common.sh"

.venv/bin/python - <<'PY'
import os
from pathlib import Path

from hrlxf_assets.cli import _materialize, prepare_instance_env

prepare_instance_env()
import dagster as dg

from hrlxf_assets.partitions import COLLECTION_RUNS

data = Path(os.environ["HRLXF_DATA_DIR"])
for p in dg.DagsterInstance.get().get_dynamic_partitions(COLLECTION_RUNS):
    if not (data / "micro_samples" / p / "micro.parquet").exists():
        continue
    for asset, f in (("micro_samples_goal_hat", "micro_goal_hat.parquet"), ("l4_distill_set", "l4_distill.parquet")):
        if not (data / asset / p / f).exists() and not _materialize([asset], p, {}):
            raise SystemExit(f"{asset} [{p}] failed")
if not _materialize(["teacher_table"], None, {}):
    raise SystemExit("teacher_table failed")
PY
for n in 40 100; do
  if [ ! -f "$OUT/top_w$n.path" ]; then
    $H train --only-l3 "${EPOCHS[@]}" --teacher-weighting top --max-train-worlds "$n"
    l3_path > "$OUT/top_w$n.path"
  fi
done
if [ ! -f "$OUT/top_all.path" ]; then  # trained last: it is the selection's own "awr" / "bc"
  $H train --only-l3 "${EPOCHS[@]}" --teacher-weighting top
  l3_path > "$OUT/top_all.path"
fi
if [ "${TRAIN_ONLY:-0}" = 1 ]; then exit 0; fi
if [ ! -f "$OUT/top_curve_selected" ]; then
  $H select --n-worlds "${SELECT_WORLDS:-12}" --steps-min 40 --steps-max 80 --seed 100 \
    --candidates "top_prev=$(cat "$OUT/top.path"),top_w40=$(cat "$OUT/top_w40.path"),top_w100=$(cat "$OUT/top_w100.path")"
  touch "$OUT/top_curve_selected"
fi
