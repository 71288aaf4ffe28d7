#!/usr/bin/env bash
# Issue 12's teacher study, end to end, on every materialized partition (ceo-verify-1 + teachers-a):
# teacher table and the full stack with plain BC, two outcome-weighted L3 variants, model selection
# by play among them (plain-BC L3s on 25 and 75 training worlds play there too: the learning
# curve's points). Each step resumes when rerun (training runs
# resume from their checkpoints, evaluations by world id). Paths of the variants go to
# data/teacher_study/variants.txt.
source "$(dirname "$0")/study_common.sh"

if [ ! -f "$OUT/uniform.path" ]; then
  $H train "${EPOCHS[@]}" --teacher-weighting uniform
  l3_path > "$OUT/uniform.path"
fi
# learning-curve points: plain BC on nested subsets of the training worlds (L2 / L4 unchanged)
for n in 25 75; do
  if [ ! -f "$OUT/w$n.path" ]; then
    $H train --only-l3 "${EPOCHS[@]}" --teacher-weighting uniform --max-train-worlds "$n"
    l3_path > "$OUT/w$n.path"
  fi
done
for w in top score; do
  if [ ! -f "$OUT/$w.path" ]; then
    $H train --only-l3 "${EPOCHS[@]}" --teacher-weighting "$w"
    l3_path > "$OUT/$w.path"
  fi
done
U=$(cat "$OUT/uniform.path"); T=$(cat "$OUT/top.path"); W25=$(cat "$OUT/w25.path"); W75=$(cat "$OUT/w75.path")
bc() { echo "${1%.pt}_bc.pt"; }
# the current L3 is the last variant trained (score): it and its BC checkpoint are the asset's own
# candidates "awr" and "bc"; the others are named
if [ ! -f "$OUT/selected" ]; then
  $H select --n-worlds "${SELECT_WORLDS:-12}" --steps-min 40 --steps-max 80 --seed 100 \
    --candidates "uniform=$U,uniform_bc=$(bc "$U"),top=$T,top_bc=$(bc "$T"),w25=$W25,w75=$W75"
  touch "$OUT/selected"
fi
