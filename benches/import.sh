#!/usr/bin/env bash
# Import benchmark: whole-pipeline rate, peak RSS and archive size versus raw mbox size, on
# the shared kernel corpus and on a generated archive. Writes nothing to the repo; copy the
# printed figures into BENCHMARKS.md. Usage: bash benches/import.sh [WEEKS PER_WEEK]
set -euo pipefail
cd "$(dirname "$0")/.."
weeks=${1:-200}
per_week=${2:-1000}
cargo build --release --quiet
bin=target/release/archivist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

raw_size() { # decompressed size of every archive file under $1
    local total=0 f
    while IFS= read -r -d '' f; do
        case "$f" in
            *.gz) n=$(gzip -dc "$f" | wc -c) ;;
            *.mbox|*.txt) n=$(wc -c < "$f") ;;
            *) n=0 ;;
        esac
        total=$((total + n))
    done < <(find "$1" -type f -print0)
    echo "$total"
}

measure() { # name input
    local name=$1 input=$2 data="$work/data-$1"
    rm -rf "$data"
    /usr/bin/time -v "$bin" --data-dir "$data" import --json "$input" > "$work/$name.json" 2> "$work/$name.time"
    local raw db rss
    raw=$(raw_size "$input")
    db=$(du -cb "$data"/archive.sqlite3* | tail -1 | cut -f1)
    rss=$(grep 'Maximum resident' "$work/$name.time" | awk '{print $NF}')
    python3 - "$work/$name.json" "$raw" "$db" "$rss" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); raw, db, rss, name = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
print(f"{name}: {r['messages_read']} messages read, {r['messages_new']} new, {r['cross_posts']} cross-posts "
      f"in {r['seconds']:.2f} s = {r['messages_read']/r['seconds']:,.0f} messages/s; "
      f"peak RSS {rss/1024:.0f} MB; archive {db/1e6:.1f} MB for {raw/1e6:.1f} MB raw = {db/raw:.2f}x")
PY
}

if [ -d ../shared/corpus/vger-public-inbox ]; then
    measure vger ../shared/corpus/vger-public-inbox
fi
"$bin" sample --out "$work/sample" --weeks "$weeks" --per-week "$per_week" > /dev/null
measure generated "$work/sample"
# Re-import of the same files: the incremental check must make it (nearly) free.
hyperfine --warmup 1 --runs 5 "$bin --data-dir $work/data-generated import $work/sample"
