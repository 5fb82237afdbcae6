#!/usr/bin/env bash
# Near-copy groups found from the pixels against a dataset's published source-image groups, at a
# few thresholds around the default (0.75), with the run time; then the split audit of a random
# 80/20 image split and of an 80/20 split by the published groups.
#
#   bench/groups.sh [DATA]        (default ../shared/data/lc25000-dev; DATA/groups.csv is the reference)
#
# Pair precision: pairs of tiles put in one group that the reference also puts together. Pair
# recall: pairs the reference puts together that were found together. ARI: adjusted Rand index.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/lc25000-dev}
PYTHON=${PYTHON:-/usr/bin/python3}
THRESHOLDS=${THRESHOLDS:-"0.65 0.7 0.75 0.8"}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "# $(date -u +%F), $(build/histotrain --version)"
echo "## groups of $DATA against $DATA/groups.csv"
for t in $THRESHOLDS; do
  echo "threshold $t:"
  /usr/bin/time -f "  wall %es, peak RSS %M KiB" build/histotrain groups --quiet --data "$DATA" --out "$WORK/g.csv" \
    --threshold "$t" --reference "$DATA/groups.csv" 2>&1 | sed 's/^/  /'
done

# Both splits hold out 20% per the same seed; the grouped one moves whole published groups.
"$PYTHON" - "$DATA" "$WORK" <<'PY'
import csv, os, random, sys
root, work = sys.argv[1], sys.argv[2]
group = {r["filename"]: r["group_id"] for r in csv.DictReader(open(os.path.join(root, "groups.csv")))}
paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.lower().endswith((".jpg", ".jpeg")))
rng = random.Random(1)
shuffled = paths[:]; rng.shuffle(shuffled); n = len(paths) // 5
names = sorted(set(group.values())); rng.shuffle(names); held = set(names[: len(names) // 5])
def write(name, items): open(os.path.join(work, name), "w").write("\n".join(items) + "\n")
write("random_test.txt", shuffled[:n]); write("random_train.txt", shuffled[n:])
write("grouped_test.txt", [p for p in paths if group[os.path.basename(p)] in held])
write("grouped_train.txt", [p for p in paths if group[os.path.basename(p)] not in held])
PY
for split in random grouped; do
  echo "## split-audit of a $split 80/20 split"
  build/histotrain split-audit --quiet --examples 3 --train "$WORK/${split}_train.txt" --test "$WORK/${split}_test.txt"
done
