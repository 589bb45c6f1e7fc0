#!/bin/bash
# MAML-TRPO, MAML-PPO, ProMP and Reptile on the fast HalfCheetahVel config, seeds 1-3, one run at a time
# (two at once on two cores slow each other several-fold), then their curves and time/steps to -40.
#
#   bash scripts/compare_learners.sh OUT_DIR [EXTRA --set ARGS for every run]
#
# Re-running resumes unfinished runs and skips finished ones.
set -euo pipefail
out=${1:?usage: compare_learners.sh OUT_DIR [--set key=value ...]}
shift
mkdir -p "$out"
for algo in trpo maml-ppo promp reptile; do
  for seed in 1 2 3; do
    run="$out/$algo-s$seed"
    if [ -f "$run/checkpoint.pt" ]; then
      metarl train --resume "$run" --no-progress
    else
      metarl train configs/halfcheetah-vel-fast.yaml --seed "$seed" --set "algo=$algo" "$@" --out "$run" --no-progress
    fi
  done
done
groups=()
for algo in trpo maml-ppo promp reptile; do
  groups+=(--group "$algo" "$out/$algo-s1" "$out/$algo-s2" "$out/$algo-s3")
done
python scripts/learning_curves.py "${groups[@]}" --target -40 --x env_steps --plot "$out/curves.png" \
  --json "$out/summary.json" | tee "$out/table.md"
