# Sourced by the study scripts (teacher_study.sh, top_curve.sh): the repository root, the CLI, the
# output folder and the training budget they share, so that every variant is trained alike.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
H=.venv/bin/hrlxf
OUT=data/teacher_study
mkdir -p "$OUT"
EPOCHS=(--max-epochs 10 --l3-epochs 3 --awr-epochs 1 --batch-size 1024)
l3_path() { .venv/bin/python -c "import json;print(json.load(open('data/l3_model/current.json'))['path'])"; }
