#!/usr/bin/env bash
# Web benchmark: wrk (32 connections) against a release `archivist serve` over a large
# archive: search, a 100-message thread page, a message page; server RSS; and search while an
# import runs into the same archive. Usage: bash benches/web.sh DATA_DIR [SECONDS]
# DATA_DIR must hold an imported archive (see BENCHMARKS.md for how it was made).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: bash benches/web.sh DATA_DIR [SECONDS]}
secs=${2:-15}
bin=target/release/archivist
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

# A 100-message thread, imported once (idempotent), for the thread-page figure.
python3 - "$work/long" <<'PY'
import os, sys
d = os.path.join(sys.argv[1], "bench-long"); os.makedirs(d, exist_ok=True)
with open(os.path.join(d, "long.mbox"), "w") as f:
    refs = []
    for i in range(100):
        mid = f"<long-thread-{i}@bench.example>"
        f.write("From bench@example.org Mon May  1 09:12:44 2023\n")
        f.write(f"From: Person {i % 7} <p{i % 7}@bench.example>\nSubject: {'Re: ' if i else ''}[bench] a long thread\n")
        f.write(f"Date: Mon, 1 May 2023 {10 + i // 60:02d}:{i % 60:02d}:00 +0000\nMessage-ID: {mid}\n")
        if refs:
            f.write(f"In-Reply-To: {refs[-1]}\nReferences: {' '.join(refs[-20:])}\n")
        f.write("\n" + (f"> quoted line from message {i - 1}\n" if i else "") + f"Reply number {i} with some text about placement and nova.\n" * 5 + "\n")
        refs.append(mid)
PY
"$bin" --data-dir "$data" import "$work/long/bench-long" > /dev/null

port=18080
"$bin" --data-dir "$data" serve --bind 127.0.0.1:$port 2> "$work/serve.log" &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" > /dev/null && break; sleep 0.1; done
msg=$(curl -s "http://127.0.0.1:$port/api/v1/search?q=placement&sort=date" | python3 -c 'import json,sys,urllib.parse; print(urllib.parse.quote(json.load(sys.stdin)["hits"][0]["message_id"], safe="@"))')

cat > "$work/search.lua" <<'LUA'
local queries = {"placement", "live+migration", "%22allocation+candidates%22", "from%3Aingrid%40example.com",
  "list%3Aoperators+kolla", "tag%3Anova", "date%3A2023-06-01..2023-08-31", "nova+OR+neutron+-kolla", "has%3Apatch+placement"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/search?q=" .. queries[(i % #queries) + 1])
end
LUA

run() { # label path [script]
    echo "== $1"
    if [ -n "${3:-}" ]; then
        wrk -t2 -c32 -d"${secs}s" --latency -s "$3" "http://127.0.0.1:$port$2" | grep -E "Requests/sec|50%|90%|99%|Non-2xx"
    else
        wrk -t2 -c32 -d"${secs}s" --latency "http://127.0.0.1:$port$2" | grep -E "Requests/sec|50%|90%|99%|Non-2xx"
    fi
}
run "search (9-query mix)" "/search" "$work/search.lua"
run "thread page, 100 messages" "/t/long-thread-0@bench.example"
run "message page" "/m/$msg"
run "API search" "/api/v1/search?q=placement"
echo "server RSS: $(ps -o rss= -p $server | awk '{printf "%.0f MB", $1/1024}')"

# Search while an import writes into the same archive.
"$bin" sample --out "$work/more" --weeks 10 --per-week 2000 --seed 7 > /dev/null
"$bin" --data-dir "$data" import "$work/more" > "$work/import.log" &
importer=$!
run "search during an import" "/search" "$work/search.lua"
wait $importer
echo "import during that run: $(tail -1 "$work/import.log")"
