#!/usr/bin/env bash
# The verdict tournaments: the policy chosen by play (LitaAgentHRL-neural, issue 12) and its
# online fine-tuned version (LitaAgentHRL-online, issue 13) against PenguinAgent and the 2026 std
# finalists, every contender in every world, balanced over the levels, full-length worlds
# (50-200 days), SEEDS (default 1 2) of N_WORLDS (default 20) worlds each. Then the pooled table:
#   .venv/bin/python scripts/summarise_eval.py data/agent_evaluation/runs/<run> ...
# CONTENDERS overrides the list (issue 12's verdict ran without LitaAgentHRL-online).
set -euo pipefail
cd "$(dirname "$0")/.."
C=${CONTENDERS:-LitaAgentHRL-neural,LitaAgentHRL-online,PenguinAgent,HorizonAwareAgent,HeyStd,Rohn,SBD,TakaLinkAgent,COW}
for seed in ${SEEDS:-1 2}; do
  .venv/bin/hrlxf evaluate --n-worlds "${N_WORLDS:-20}" --steps-min 50 --steps-max 200 --seed "$seed" \
    --workers 2 --contenders "$C"
done
