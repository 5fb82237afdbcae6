# What bench/cluster_compare.sh and bench/powersgd_efficiency.sh read from their runs; sourced.
# PY is the Python that runs the peer (/usr/bin/python3).

# images/s of a histotrain run folder's training steps (summary.json).
histotrain_rate() {
  $PY -c "import json,sys; s=json.load(open(sys.argv[1])); print(round(s['steps']*s['global_batch']/s['train_s'],2))" \
    "$1/summary.json"
}
# images/s from the Python peer's log (its last line, RESULT {json}).
peer_rate() { sed -n 's/^RESULT //p' "$1" | $PY -c "import json,sys; print(json.load(sys.stdin)['imgs_per_s'])"; }
# A failed cluster run, in one line for a table: the first error its ranks logged (folder $1, from
# cluster.sh --log), innermost message first where Python wrapped it ("... callback: RuntimeError: X").
failure() {
  { grep -h -m1 -E "what\(\)|Error|error" "$1"/rank-*.log 2>/dev/null || echo "no error logged"; } | head -n 1 |
    sed -E 's/^.*(RuntimeError|what\(\)): *//' | cut -c1-160 | tr '|' '/'
}
