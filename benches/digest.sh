#!/usr/bin/env bash
# Digest benchmark: topic grouping time for a generated week of three busy lists (>= 2,000
# messages) and for the kernel corpus's weeks, then rendering + sending N digests to a local
# SMTP server (tests/smtp_sink.py, aiosmtpd) with peak RSS. Writes nothing to the repo; copy the
# printed figures into BENCHMARKS.md. Usage: bash benches/digest.sh [SUBSCRIBERS] [PER_WEEK]
set -euo pipefail
cd "$(dirname "$0")/.."
subscribers=${1:-10000}
per_week=${2:-2500}
cargo build --release --quiet
bin=$PWD/target/release/archivist
work=$(mktemp -d)
sink=
trap '[ -n "$sink" ] && kill "$sink" 2>/dev/null; rm -rf "$work"' EXIT

echo "== grouping: generated archive, 3 weeks x $per_week distinct messages (dev, operators, sigs)"
"$bin" sample --out "$work/sample" --weeks 3 --per-week "$per_week" > /dev/null
"$bin" --data-dir "$work/data" import "$work/sample" > /dev/null
for run in 1 2 3; do
    "$bin" --data-dir "$work/data" digest preview --week 2023-W20 --json --timings 2>&1 > /dev/null
done
/usr/bin/time -v "$bin" --data-dir "$work/data" digest preview --week 2023-W20 --json \
    > /dev/null 2> "$work/preview.time"
echo "preview peak RSS: $(grep 'Maximum resident' "$work/preview.time" | awk '{print $NF}') KB"

if [ -d ../shared/corpus/vger-public-inbox ]; then
    echo "== grouping: kernel corpus (four lists), each busy week"
    "$bin" --data-dir "$work/kernel" import ../shared/corpus/vger-public-inbox > /dev/null
    for week in 2021-W22 2021-W23 2021-W24 2021-W25 2021-W26 2024-W40 2024-W41 2024-W42 2024-W43 2024-W44; do
        "$bin" --data-dir "$work/kernel" digest preview --week "$week" --json --timings 2>&1 > /dev/null
    done
fi

echo "== sending: $subscribers digests of 2023-W20 to a local SMTP server"
python3 - "$work/data/archive.sqlite3" "$subscribers" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1]); n = int(sys.argv[2])
lists = ['["dev"]', '["dev","operators"]', '["operators","sigs"]', '["dev","operators","sigs"]']
db.executemany(
    "INSERT INTO digest_subscribers (handle, email, email_key, lists, created_at, confirmed_at)"
    " VALUES (?, ?, ?, ?, 0, 0)",
    [("%032x" % i, "user%d@example.org" % i, "user%d@example.org" % i, lists[i % 4]) for i in range(n)])
db.commit()
PY
python3 tests/smtp_sink.py "$work/mailbox" > "$work/sink.out" &
sink=$!
for _ in $(seq 100); do grep -q PORT "$work/sink.out" 2>/dev/null && break; sleep 0.1; done
port=$(awk '/PORT/ {print $2}' "$work/sink.out")
cat > "$work/config.toml" <<TOML
[digest]
from = "Archive digests <digest@archive.example.org>"
base_url = "https://archive.example.org"
[digest.smtp]
port = $port
rate = 0.0
TOML
ARCHIVIST_TOKEN_KEY=benchmark-key-0123456789abcdef0123456789 /usr/bin/time -v "$bin" \
    --config "$work/config.toml" --data-dir "$work/data" digest send --week 2023-W20 --json \
    > "$work/send.json" 2> "$work/send.time"
echo "report: $(cat "$work/send.json")"
echo "messages in the mailbox: $(find "$work/mailbox" -name '*.eml' | wc -l)"
echo "wall: $(grep 'Elapsed (wall' "$work/send.time" | awk '{print $NF}'), peak RSS: $(grep 'Maximum resident' "$work/send.time" | awk '{print $NF}') KB"
