#!/usr/bin/env bash
# Stain shift: accuracy on validation tiles re-stained at growing strength, for models trained
# with no stain treatment, --stain-augment hed, --stain-normalize macenko, --stain-normalize
# reinhard and hed + macenko; SEEDS seeds each, in one run.
#
# One grouped split (seed 0's, written once) is the validation set of every model, so every model
# sees the same re-stained tiles. `histotrain restain` writes those tiles from the originals:
#   hed S: each tile's H, E and residual concentrations scaled by U(1-S, 1+S) and shifted by
#          U(-S, S) optical density (the perturbation --stain-augment hed trains with; S = 0 is the
#          unshifted baseline);
#   lab T: each tile's own Macenko stains moved the share T of the way to another lab's (Macenko
#          et al.'s published reference stains).
# Prints one CSV row per (treatment, seed, shift) and tables of means (accuracy, macro F1); writes stain_shift.csv,
# table.md and stain_shift.png into OUT.
#
#   bench/stain_shift.sh DATA OUT [SEEDS] [EPOCHS]   (e.g. ../shared/data/lc25000-dev docs/results/stain-shift 3 3)
#   TREATMENTS="none hed:0.2" bench/stain_shift.sh ...   (other treatments; hed:S trains with that sigma)
#   BALANCE=sampler bench/stain_shift.sh ...              (every model trained with --balance sampler)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: bench/stain_shift.sh DATA OUT [SEEDS] [EPOCHS]}
OUT=${2:?usage: bench/stain_shift.sh DATA OUT [SEEDS] [EPOCHS]}
SEEDS=${3:-3}
EPOCHS=${4:-3}
BIN=${HISTOTRAIN_BIN:-build/histotrain}  # a copy keeps a long run apart from rebuilds
[ -x "$BIN" ] || { echo "build first: ./run.sh build" >&2; exit 1; }
GROUPS_CSV="$DATA/groups.csv"
[ -f "$GROUPS_CSV" ] || { echo "no $GROUPS_CSV" >&2; exit 1; }
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HISTOTRAIN_CACHE="$work/cache"

"$BIN" info | tee "$OUT/info.txt"
# BALANCE=sampler: every class drawn equally often (LC25000's colon classes are 1% of its tiles).
TRAIN=(--data "$DATA" --groups "$GROUPS_CSV" --arch resnet10 --image-size 64 --batch-size 32 --bootstrap 0 --quiet
       --balance "${BALANCE:-none}")

# The split every model validates on: seed 0's grouped split.
"$BIN" train "${TRAIN[@]}" --epochs 1 --max-steps 1 --val-fraction 0.2 --out "$work/split" >/dev/null
VAL="$work/split/val_images.txt"
echo "validation: $(wc -l < "$VAL") tiles of whole source groups"

SHIFTS="hed:0 hed:0.05 hed:0.1 hed:0.2 lab:0.5 lab:1"
for shift in $SHIFTS; do
  "$BIN" restain --data "$DATA" --images "$VAL" --groups "$GROUPS_CSV" --shift "${shift%%:*}" \
    --strength "${shift##*:}" --seed 1 --out "$work/shift-$shift" --quiet
done

treatment_flags() {
  case $1 in
    none) ;;
    hed | hed:*) echo --stain-augment "$1" ;;
    macenko) echo --stain-normalize macenko ;;
    reinhard) echo --stain-normalize reinhard ;;
    hed+macenko) echo --stain-augment hed --stain-normalize macenko ;;
  esac
}

echo "treatment,seed,shift,strength,accuracy,macro_f1" | tee "$OUT/stain_shift.csv"
for treatment in ${TREATMENTS:-none hed macenko reinhard hed+macenko}; do
  for seed in $(seq 0 $((SEEDS - 1))); do
    run="$work/run-$treatment-$seed"
    # shellcheck disable=SC2046
    "$BIN" train "${TRAIN[@]}" --val-images "$VAL" --epochs "$EPOCHS" --seed "$seed" $(treatment_flags "$treatment") --out "$run" >/dev/null
    for shift in $SHIFTS; do
      "$BIN" eval --checkpoint "$run" --data "$work/shift-$shift" --groups "$work/shift-$shift/groups.csv" \
        --bootstrap 0 --json --quiet > "$work/eval.json"
      /usr/bin/python3 - "$work/eval.json" "$treatment" "$seed" "$shift" <<'PY' | tee -a "$OUT/stain_shift.csv"
import json, sys
report = json.load(open(sys.argv[1]))
kind, strength = sys.argv[4].split(':')
print(f"{sys.argv[2]},{sys.argv[3]},{kind},{strength},{report['accuracy']:.4f},{report['macro_f1']:.4f}")
PY
    done
  done
done

# The table (mean over seeds, min-max) and the plot: accuracy against strength, per treatment.
/usr/bin/python3 - "$OUT" <<'PY'
import csv, statistics, subprocess, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(f"{out}/stain_shift.csv")))
treatments = list(dict.fromkeys(r['treatment'] for r in rows))
shifts = list(dict.fromkeys((r['shift'], r['strength']) for r in rows))
def cell(t, s, metric='accuracy'):
    values = [float(r[metric]) for r in rows if r['treatment'] == t and (r['shift'], r['strength']) == s]
    return statistics.mean(values), min(values), max(values)
# Accuracy counts tiles, so the classes with most validation tiles decide it; macro F1 counts
# every class the same: a treatment that loses a small class shows there.
def table(metric, title):
    lines = [title, "", "| treatment | " + " | ".join(f"{k} {v}" for k, v in shifts) +
             " | drop at the strongest hed | drop at lab 1 |", "| --- |" + " ---: |" * (len(shifts) + 2)]
    for t in treatments:
        base = cell(t, ('hed', '0'), metric)[0]
        cells = [f"{m:.3f} ({lo:.3f}–{hi:.3f})" for m, lo, hi in (cell(t, s, metric) for s in shifts)]
        strongest = max((s for s in shifts if s[0] == 'hed'), key=lambda s: float(s[1]))
        drop_hed = 100 * (base - cell(t, strongest, metric)[0])
        drop_lab = 100 * (base - cell(t, ('lab', '1'), metric)[0])
        lines.append(f"| {t} | " + " | ".join(cells) + f" | {drop_hed:.1f} points | {drop_lab:.1f} points |")
    return lines
lines = table('accuracy', "Accuracy, mean of seeds (min–max):") + [""] + table('macro_f1', "Macro F1, mean of seeds (min–max):")
open(f"{out}/table.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
# Two panels: hed strength, and the share of the way to the other lab.
data = {}
for t in treatments:
    for kind in ('hed', 'lab'):
        pts = [(0.0, cell(t, ('hed', '0'))[0])] if kind == 'lab' else []
        pts += [(float(s[1]), cell(t, s)[0]) for s in shifts if s[0] == kind]
        with open(f"{out}/{kind}-{t}.dat", "w") as f:
            f.writelines(f"{x} {y}\n" for x, y in pts)
script = [f'set terminal pngcairo size 1200,480 font ",11"', f'set output "{out}/stain_shift.png"',
          'set multiplot layout 1,2 title "Validation accuracy of re-stained tiles (mean of seeds)"',
          'set ylabel "accuracy"', 'set key bottom left', 'set grid']
for kind, label in (('hed', 'HED perturbation sigma'), ('lab', 'share of the way to another lab\'s stains')):
    script.append(f'set xlabel "{label}"')
    script.append('plot ' + ', '.join(f'"{out}/{kind}-{t}.dat" with linespoints lw 2 title "{t}"' for t in treatments))
script.append('unset multiplot')
subprocess.run(['gnuplot'], input="\n".join(script), text=True, check=True)
PY
rm -f "$OUT"/hed-*.dat "$OUT"/lab-*.dat
echo "wrote $OUT/stain_shift.csv, $OUT/table.md, $OUT/stain_shift.png"
