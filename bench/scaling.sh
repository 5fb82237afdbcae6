#!/usr/bin/env bash
# The scaling model (histotrain scaling-model) fed and checked on this machine's namespace
# cluster (bench/cluster.sh): links measured at each rate by link-bench between 2 hosts, one
# rank's compute from a serial run, gradient traffic from 2-host runs (none, fp16, PowerSGD
# rank 4 compressed from the first step), then:
#   - each measured 2-host run beside the model's prediction for it;
#   - a 4-host run at the first rate beside the prediction made from the 2-host measurements
#     (4 ranks on this machine's cores: oversubscribed when it has fewer than 4; the model is then
#     given that run's own compute time and predicts its communication);
#   - the predicted table for 2 to 1,024 ranks at every rate, and its plot.
#
#   bench/scaling.sh DATA [OUT]        (OUT default: docs/results/cluster)
#   environment: RATES ("1gbit 10gbit"), SIZE (128), BATCH per rank (16), STEPS (40), STEPS4 (20),
#                CACHE (a tile cache folder to reuse; default: a new one, built first)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: bench/scaling.sh DATA [OUT]}
OUT=${2:-docs/results/cluster}
read -r -a RATE_LIST <<<"${RATES:-1gbit 10gbit}"
SIZE=${SIZE:-128}
BATCH=${BATCH:-16}
STEPS=${STEPS:-40}
STEPS4=${STEPS4:-20}
HT=$PWD/build/histotrain
WORK=$(mktemp -d /tmp/histotrain-scaling.XXXXXX)
CACHE=${CACHE:-$WORK/cache}
mkdir -p "$OUT"
header="$(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; ResNet-18 $SIZE px, batch $BATCH per rank, $STEPS steps (4 hosts: $STEPS4); $(date -u +%F)"
echo "# $header"

train_flags() {  # $1: steps
  echo "--data $DATA --image-size $SIZE --batch-size $BATCH --epochs 1 --max-steps $1 --val-fraction 0 --threads 1 \
--conv-grad native --quiet --cache-dir $CACHE"
}
"$HT" train $(train_flags 1) --out "$WORK/warm" >/dev/null 2>&1  # the tile cache, outside every figure
"$HT" train $(train_flags "$STEPS") --out "$WORK/serial" >/dev/null 2>&1

for rate in "${RATE_LIST[@]}"; do
  bench/cluster.sh --hosts 2 --rate "$rate" --log "$WORK/link-$rate.logs" -- \
    "$HT" link-bench --label "$rate" --out "$WORK/link-$rate.json" >/dev/null 2>&1
  for c in none fp16 powersgd:4; do
    bench/cluster.sh --hosts 2 --rate "$rate" --log "$WORK/$rate-$c.logs" -- "$HT" train $(train_flags "$STEPS") \
      --grad-compression "$c" --powersgd-start-step 0 --out "$WORK/2hosts-$rate-$c" >/dev/null 2>&1
  done
done
first=${RATE_LIST[0]}
bench/cluster.sh --hosts 4 --rate "$first" --log "$WORK/4hosts.logs" -- "$HT" train $(train_flags "$STEPS4") \
  --grad-compression none --out "$WORK/4hosts-$first-none" >/dev/null 2>&1

links=()
for rate in "${RATE_LIST[@]}"; do
  links+=(--link "$WORK/link-$rate.json")
  profiles=(--profile "$WORK/2hosts-$rate-none" --profile "$WORK/2hosts-$rate-fp16" --profile "$WORK/2hosts-$rate-powersgd:4")
  measured=(--measured "$WORK/2hosts-$rate-none" --measured "$WORK/2hosts-$rate-fp16" --measured "$WORK/2hosts-$rate-powersgd:4")
  [ "$rate" != "$first" ] || measured+=(--measured "$WORK/4hosts-$first-none")
  echo
  echo "## $rate (link-bench: $(sed -n 's/.*"bandwidth_gbit_s": \([0-9.]*\).*/\1/p' "$WORK/link-$rate.json" | cut -c1-5) Gbit/s, alpha $(sed -n 's/.*"alpha_s": \([0-9.e-]*\).*/\1/p' "$WORK/link-$rate.json") s)"
  "$HT" scaling-model --link "$WORK/link-$rate.json" --compute "$WORK/serial" "${profiles[@]}" "${measured[@]}" \
    --ranks 2,4,16,64,256,1024 | tee "$OUT/scaling-$rate.md"
  cp "$WORK/link-$rate.json" "$OUT/link-$rate.json"
done
all_profiles=()
for c in none fp16 powersgd:4; do all_profiles+=(--profile "$WORK/2hosts-$first-$c"); done
"$HT" scaling-model "${links[@]}" --compute "$WORK/serial" "${all_profiles[@]}" --plot "$OUT/efficiency.png" --json \
  >"$OUT/predictions.json"
echo
echo "plot: $OUT/efficiency.png; runs kept in $WORK"
