#!/usr/bin/env bash
# Web benchmark: wrk (32 connections) against a release `archivist serve` over a large
# archive: searches (324 distinct), a 100-message thread page, message pages (hundreds of
# distinct ids), API search and server RSS, first with the response cache on, then off
# (cache_mb = 0); then search (cache off) while an import runs into the same archive.
# Usage: bash benches/web.sh DATA_DIR [SECONDS]
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
start_server() { # cache_mb
    printf '[server]\ncache_mb = %s\n' "$1" > "$work/server.toml"
    "$bin" --config "$work/server.toml" --data-dir "$data" serve --bind 127.0.0.1:$port 2> "$work/serve.log" &
    server=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" > /dev/null && break; sleep 0.1; done
}
stop_server() { kill $server; wait $server 2>/dev/null || true; }
start_server 64

# Hundreds of distinct message pages: the roots of the newest threads of every list.
python3 - "http://127.0.0.1:$port" > "$work/messages.lua" <<'PY'
import json, sys, urllib.parse, urllib.request
base = sys.argv[1]
ids = []
for l in json.load(urllib.request.urlopen(base + "/api/v1/lists"))["lists"]:
    for page in range(1, 5):
        threads = json.load(urllib.request.urlopen(f"{base}/api/v1/lists/{urllib.parse.quote(l['name'])}/threads?page={page}"))["threads"]
        ids += ["/m/" + urllib.parse.quote(t["root_message_id"], safe="@") for t in threads]
print("paths = {" + ",".join(json.dumps(i) for i in ids) + "}")
print("local i = 0\nrequest = function() i = i + 1; return wrk.format(\"GET\", paths[(i % #paths) + 1]) end")
print(f"-- {len(ids)} distinct paths", file=sys.stderr)
PY

# Hundreds of distinct searches: 36 subjects x 9 forms.
cat > "$work/search.lua" <<'LUA'
local terms = {"placement", "live+migration", "%22allocation+candidates%22", "nova", "neutron", "kolla",
  "scheduler", "ovn", "%22port+bindings%22", "microversion", "traits", "%22security+group%22", "upgrade",
  "election", "governance", "reshapes", "aggregate", "numa", "vgpu", "%22pci+passthrough%22", "metadata",
  "%22provider+networks%22", "floating", "ovsdb", "consumer", "release", "cadence", "%22host+aggregates%22",
  "tempest", "cinder", "keystone", "rabbitmq", "database", "quota", "%22resource+providers%22", "nova+OR+neutron+-kolla"}
local forms = {"", "&sort=date", "&page=2", "&collapse=1", "+list%3Aoperators", "+has%3Apatch",
  "+date%3A2023-06-01..2023-08-31", "+tag%3Anova", "+-list%3Asigs"}
local i = 0
request = function()
  i = i + 1
  local t = terms[(i % #terms) + 1]
  local f = forms[(math.floor(i / #terms) % #forms) + 1]
  return wrk.format("GET", "/search?q=" .. t .. f)
end
LUA

run() { # label path [script]
    echo "== $1 (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    if [ -n "${3:-}" ]; then
        wrk -t2 -c32 -d"${secs}s" --latency -s "$3" "http://127.0.0.1:$port$2" | grep -E "Requests/sec|50%|90%|99%|Non-2xx"
    else
        wrk -t2 -c32 -d"${secs}s" --latency "http://127.0.0.1:$port$2" | grep -E "Requests/sec|50%|90%|99%|Non-2xx"
    fi
}
all_routes() {
    run "search (324 distinct queries)" "/search" "$work/search.lua"
    run "search again (same queries: warm if the cache is on)" "/search" "$work/search.lua"
    run "thread page, 100 messages" "/t/long-thread-0@bench.example"
    run "message pages (distinct ids, see above)" "/m/x" "$work/messages.lua"
    run "message pages again (same ids: warm if the cache is on)" "/m/x" "$work/messages.lua"
    run "API search" "/api/v1/search?q=placement"
    echo "server RSS: $(ps -o rss= -p $server | awk '{printf "%.0f MB", $1/1024}') ($(grep -E 'RssAnon|RssFile' /proc/$server/status | awk '{printf "%s %.0f MB ", $1, $2/1024}'))"
}
echo "### response cache on (64 MB): after the first request of each URL, hits are warm"
all_routes
stop_server
echo "### response cache off (cache_mb = 0): every request is built from SQLite and the index"
start_server 0
all_routes

# Search while an import writes into the same archive: a new seed each run, so that a rerun on
# the same archive imports new messages instead of recognising every one as a duplicate.
"$bin" sample --out "$work/more" --weeks 10 --per-week 2000 --seed "$(date +%s)" > /dev/null
"$bin" --data-dir "$data" import "$work/more" > "$work/import.log" &
importer=$!
run "search during an import (cache off)" "/search" "$work/search.lua"
wait $importer
echo "import during that run: $(tail -1 "$work/import.log")"
