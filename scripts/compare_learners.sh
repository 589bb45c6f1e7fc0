#!/bin/bash
# MAML-TRPO, MAML-PPO, ProMP and Reptile (one inner step, and three on fresh episodes) on the fast
# HalfCheetahVel config, seeds 1-3, one run at a time (two at once on two cores slow each other
# several-fold), every run on 6M env steps; then each final policy on 40 held-out tasks after 0..3
# steps, and the curves and time/steps to -40 of all.
#
#   bash scripts/compare_learners.sh OUT_DIR [EXTRA --set ARGS for every run]
#
# Re-running resumes unfinished runs and skips finished runs and evaluations.
set -euo pipefail
out=${1:?usage: compare_learners.sh OUT_DIR [--set key=value ...]}
shift
mkdir -p "$out"
declare -A extra=([trpo]="--set algo=trpo" [maml-ppo]="--set algo=maml-ppo" [promp]="--set algo=promp"
                  [reptile]="--set algo=reptile"
                  [reptile-k3]="--set algo=reptile --set inner_steps=3 --set iterations=75")
names=(trpo maml-ppo promp reptile reptile-k3)
for name in "${names[@]}"; do
  for seed in 1 2 3; do
    run="$out/$name-s$seed"
    if [ -f "$run/checkpoint.pt" ]; then
      metarl train --resume "$run" --no-progress
    else
      # shellcheck disable=SC2086
      metarl train configs/halfcheetah-vel-fast.yaml --seed "$seed" ${extra[$name]} "$@" --out "$run" --no-progress
    fi
    [ -f "$run/eval-steps3/adaptation.json" ] || metarl eval "$run" --baselines '' --steps 3 --out "$run/eval-steps3" --no-progress
  done
done
groups=()
for name in "${names[@]}"; do
  label=$name; [ "$name" = trpo ] && label=maml-trpo; [ "$name" = reptile-k3 ] && label="reptile, 3 inner steps"
  groups+=(--group "$label" "$out/$name-s1" "$out/$name-s2" "$out/$name-s3")
done
python scripts/learning_curves.py "${groups[@]}" --target -40 --x env_steps --plot "$out/curves.png" \
  --json "$out/summary.json" | tee "$out/table.md"
