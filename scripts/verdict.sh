#!/usr/bin/env bash
# The verdict tournaments of issue 12: the policy chosen by play (policy_selection) against
# PenguinAgent and the 2026 std finalists, every contender in every world, balanced over the
# levels, full-length worlds (50-200 days), two seeds of 20 worlds each. Then the pooled table.
set -euo pipefail
cd "$(dirname "$0")/.."
C=LitaAgentHRL-neural,PenguinAgent,HorizonAwareAgent,HeyStd,Rohn,SBD,TakaLinkAgent,COW
for seed in ${SEEDS:-1 2}; do
  .venv/bin/hrlxf evaluate --n-worlds "${N_WORLDS:-20}" --steps-min 50 --steps-max 200 --seed "$seed" \
    --workers 2 --contenders "$C"
done
