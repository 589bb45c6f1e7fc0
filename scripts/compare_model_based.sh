#!/bin/bash
# GrBAL against its baselines on a broken-robot family (issue 14's protocol): GrBAL and mb-mpc, seeds
# 1-3, and one MAML-TRPO policy at the settings of the shipped HalfCheetahDir/AntDir policies, one run
# at a time (two at once on two cores slow each other several-fold); then `metarl eval-model` of each
# seed's GrBAL run against its unadapted model, that seed's mb-mpc run and the MAML policy on 40
# episodes of the held-out joint or leg, with the task switching from a training joint or leg to the
# held-out one half-way through a second set of episodes; then the same models planning with CEM.
#
#   bash scripts/compare_model_based.sh OUT_DIR [halfcheetah|ant]
#
# Re-running resumes unfinished runs and skips finished runs and evaluations. The README's model-based
# table reads OUT_DIR/eval-s*/model_eval.json from benchmarks/results/model-based-<family>/.
set -euo pipefail
out=${1:?usage: compare_model_based.sh OUT_DIR [halfcheetah|ant]}
robot=${2:-halfcheetah}
case "$robot" in
  halfcheetah) grbal=configs/grbal-halfcheetah-disabled-joint.yaml
               maml=(configs/halfcheetah-disabled-joint.yaml --set meta_batch_size=20 --set episodes_per_task=10
                     --set iterations=300) ;;
  ant) grbal=configs/grbal-ant-crippled-leg.yaml
       # 100 iterations of 10 x 20 episodes, before and after the step: 8M env steps, 100x GrBAL's 80k
       maml=(configs/ant-crippled-leg.yaml --set meta_batch_size=10 --set episodes_per_task=20 --set iterations=100) ;;
  *) echo "compare_model_based.sh: error: robot must be halfcheetah or ant, got '$robot'" >&2; exit 2 ;;
esac
mkdir -p "$out"
train() {  # train RUN_DIR CONFIG ARGS...: resume or start
  local run=$1; shift
  if [ -f "$run/checkpoint.pt" ]; then metarl train --resume "$run" --no-progress
  else metarl train "$@" --out "$run" --no-progress; fi
}
train "$out/maml-s1" "${maml[@]}" --seed 1
for seed in 1 2 3; do
  train "$out/grbal-s$seed" "$grbal" --seed "$seed"
  train "$out/mbmpc-s$seed" "$grbal" --set algo=mb-mpc --seed "$seed"
  [ -f "$out/eval-s$seed/model_eval.json" ] || metarl eval-model "$out/grbal-s$seed" --mb-run "$out/mbmpc-s$seed" \
    --maml-run "$out/maml-s1" --switch-at 100 --out "$out/eval-s$seed"
  # the same models planning with CEM (3 iterations), the better planner of benchmarks/README.md
  [ -f "$out/eval-cem3-s$seed/model_eval.json" ] || metarl eval-model "$out/grbal-s$seed" --mb-run "$out/mbmpc-s$seed" \
    --methods grbal,grbal-unadapted,mb-mpc-adapted,mb-mpc --planner planner=cem --planner planner_iterations=3 \
    --out "$out/eval-cem3-s$seed"
done
