#!/usr/bin/env bash
# Reliability under hostile clients, through the release edge (nginx as its origin), with a real
# viewer fetching a segment every 50 ms beside each scenario: slowloris (2,000 connections
# trickling a header), 2,000 connections that send nothing, 10,000 concurrent keep-alive
# connections, and 2,000 connections of random bytes or cut-off requests (in 10 waves). Writes
# benches/results/reliability.md and appends to benches/results/reliability.jsonl.
#   benches/reliability/run.sh [label]
# Needs nginx, curl, python3, and a file-descriptor limit of 12,000 or more per process. Every
# process started here is stopped by its PID. Bounded: about a minute.
# Then the failures nobody chose (benches/reliability/faults.py): 20 kill -9 of an edge under
# mixed hit and miss load, every body served checked byte for byte against its digest; an
# origin that is down every other second (503 or a reset) while stale-if-error content is
# served; random bytes and cut-off frames at the geo-router's DNS over UDP and TCP with a
# resolver beside them; and garbage at every other HTTP listener (edge admin and HTTPS, router
# HTTP and admin, origin HTTP and admin). Bounded: about four minutes in all.
set -euo pipefail
cd "$(dirname "$0")/../.."
label=${1:-$(git rev-parse --short HEAD)}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 12000 ] || { echo "raise the file-descriptor limit (ulimit -n) to 12000 (each process holds 10,000 connections)" >&2; exit 1; }
cargo build --release --locked -p edge -p geo-router -p origin >&2
. benches/lib/local-servers.sh
mkdir -p "$work/www/vod"
head -c 200000 /dev/urandom >"$work/www/vod/seg.m4s"
start_nginx 'add_header Cache-Control "public, max-age=600";'
header_timeout=5 first_timeout=5
cat >"$work/edge.toml" <<TOML
[connections]
header_timeout = "${header_timeout}s"
first_request_timeout = "${first_timeout}s"
TOML
start_edge --capacity 256MiB --config "$work/edge.toml"
curl -sf -o /dev/null "$edge_url/vod/seg.m4s"
kb() { awk -v f="$1" '$1 == f { print $2 }' "/proc/$edge_pid/status"; }
rss_before=$(kb VmRSS:)
result=$(python3 benches/reliability/drive.py "$edge_url" /vod/seg.m4s "$header_timeout" "$first_timeout")
alive=0
kill -0 "$edge_pid" 2>/dev/null && curl -sf -o /dev/null "$edge_url/vod/seg.m4s" && alive=1
metrics=$(curl -s "$admin_url/metrics" | grep '^meridian_edge_connections_\(timed_out\|refused\)' || true)
rss_peak=$(kb VmHWM:)
main_admin=$admin_url
faults=benches/reliability/faults.py
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Waits for a `listening KIND URL` line in FILE from PID; prints the URL.
listening() {
  for _ in $(seq 300); do
    url="$(awk -v k="$2" '$1 == "listening" && $2 == k { print $3; exit }' "$1" 2>/dev/null)"
    [ -n "$url" ] && { echo "$url"; return 0; }
    kill -0 "$3" 2>/dev/null || break
    sleep 0.05
  done
  echo "no 'listening $2' line in $1" >&2
  return 1
}

# 20 kill -9 under mixed load: the edge restarts on its store and its port each time. The
# store (48 MiB) holds the hot objects but not all of the cold ones, so misses, fills and
# evictions go on all along.
mkdir -p "$work/www/mix"
python3 "$faults" objects "$work/www/mix" 200 >"$work/digests.json"
edge_tag=kill edge_listen="127.0.0.1:$(free_port)"
start_edge --capacity 48MiB
kill_url=$edge_url
: >"$work/windows"
python3 "$faults" load "$kill_url" "$work/digests.json" "$work/stop" "$work/windows" >"$work/load.json" &
load_pid=$!
pids+=("$load_pid")
for _ in $(seq 20); do
  sleep 1.5 # load between kills: the scenario's pace, not a wait for readiness
  killed=$(date +%s.%N)
  kill -9 "$edge_pid"
  wait "$edge_pid" 2>/dev/null || true
  start_edge --capacity 48MiB
  echo "$killed $(date +%s.%N)" >>"$work/windows"
done
sleep 2
touch "$work/stop"
wait "$load_pid"
kill_alive=0
curl -sf -o /dev/null "$kill_url/mix/obj_0.bin" && kill_alive=1

# An origin that flaps every second, content cached with stale-if-error.
mkdir -p "$work/www/flap"
python3 "$faults" objects "$work/www/flap" 20 >"$work/flap-digests.json"
python3 "$faults" flap-origin 0 "$work/www/flap" >"$work/flap.out" 2>"$work/flap.err" &
flap_pid=$!
pids+=("$flap_pid")
origin_url=$(listening "$work/flap.out" http "$flap_pid")
edge_tag=flap edge_listen=127.0.0.1:0
start_edge --capacity 256MiB
python3 "$faults" flap-viewers "$edge_url" "$work/flap-digests.json" 20 >"$work/flap.json"
kill "$flap_pid"
wait "$flap_pid" 2>/dev/null || true
flap_origin=$(tail -n 1 "$work/flap.err")
flap_edge_admin=$admin_url

# The geo-router's DNS: random bytes and cut-off frames over UDP and TCP.
target/release/geo-router --topology testdata/topology.toml --geoip testdata/geoip/meridian-city.mmdb \
  --dns "127.0.0.1:$(free_port)" --http 127.0.0.1:0 --admin 127.0.0.1:0 >"$work/router.out" 2>"$work/router.log" &
router_pid=$!
pids+=("$router_pid")
dns=$(listening "$work/router.out" dns-udp "$router_pid")
router_http=$(listening "$work/router.out" http "$router_pid")
router_admin=$(listening "$work/router.out" admin "$router_pid")
python3 "$faults" dns "${dns%:*}" "${dns##*:}" video.meridian.test 20 >"$work/dns.json"
# The origin's listeners, and an edge's TLS listener (a certificate made here, for a day).
target/release/origin --media testdata/media --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
  >"$work/origin.out" 2>"$work/origin.log" &
origin_pid=$!
pids+=("$origin_pid")
origin_http=$(listening "$work/origin.out" http "$origin_pid")
origin_admin=$(listening "$work/origin.out" admin "$origin_pid")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
edge_tag=tls edge_listen=127.0.0.1:0
start_edge --capacity 64MiB --tls-listen 127.0.0.1:0 --tls-cert "$work/cert.pem" --tls-key "$work/key.pem"
edge_https=$(listening "$work/tls.out" https "$edge_pid")
listeners=$(python3 benches/reliability/drive.py garbage "edge admin=$main_admin" \
  "edge admin, after the flapping origin=$flap_edge_admin" "edge HTTPS=$edge_https" \
  "router HTTP API=$router_http" "router admin=$router_admin" \
  "origin HTTP=$origin_http" "origin admin=$origin_admin")
alive_after_garbage=1
for pid in "$edge_pid" "$origin_pid"; do kill -0 "$pid" 2>/dev/null || alive_after_garbage=0; done
router_alive=0
kill -0 "$router_pid" 2>/dev/null && curl -sf -o /dev/null "$router_admin/metrics" && router_alive=1

line=$(python3 - "$label" "$result" "$alive" "$rss_before" "$rss_peak" "$work" "$kill_alive" "$flap_origin" "$listeners" "$router_alive" "$alive_after_garbage" <<'PY'
import datetime, json, sys
label, result, alive, before, peak, work, kill_alive, flap_origin, listeners, router_alive, garbage_alive = sys.argv[1:]
r = json.loads(result)
read = lambda name: json.load(open(f"{work}/{name}"))
r.update(date=datetime.date.today().isoformat(), label=label, edge_alive_after=alive == "1",
         rss_before_kib=int(before), rss_peak_kib=int(peak),
         kills=dict(read("load.json"), edge_serving_after=kill_alive == "1"),
         flapping=dict(read("flap.json"), origin=json.loads(flap_origin)),
         dns=dict(read("dns.json"), router_alive_after=router_alive == "1"),
         listeners=json.loads(listeners), servers_alive_after_garbage=garbage_alive == "1")
print(json.dumps(r))
PY
)
echo "$line" | tee -a benches/results/reliability.jsonl
python3 - "$line" "$metrics" >benches/results/reliability.md <<'PY'
import json, sys
r, metrics = json.loads(sys.argv[1]), sys.argv[2]
s, q, k, g = r["slowloris"], r["silent"], r["keepalive"], r["garbage"]
kl, fl, d = r["kills"], r["flapping"], r["dns"]
listeners = "\n".join(f"| {url} | {json.dumps(x['answers'])} |" for url, x in r["listeners"].items())
def viewers(x):
    return (f"{x['viewer_requests']} requests, {x['viewer_errors']} errors, "
            f"p50 {x.get('viewer_p50_ms')} ms, p99 {x.get('viewer_p99_ms')} ms")
print(f"""# Reliability report

One run of `benches/reliability/run.sh` ({r['date']}, label {r['label']}): the release edge on
loopback with nginx as its origin, `header_timeout` and `first_request_timeout` at 5 s, a real
viewer fetching a 200 kB segment (a hit) every 50 ms beside each scenario. Figures from
`benches/results/reliability.jsonl`; the machine is shared, compare within one run only.

| Scenario | Result | Viewer beside it |
|---|---|---|
| Slowloris: {s['connections']} connections trickling a header | {s['closed']} closed by the edge (the last after {s['max_close_s']} s), {s['refused']} refused | {viewers(s)} |
| {q['connections']} connections that send nothing | {q['closed']} closed (the last after {q['max_close_s']} s), {q['refused']} refused | {viewers(q)} |
| {k['connections']} concurrent keep-alive connections | {k['served']} served, {k['failed']} failed ({k['first_error']}); a second request on 100 of them: {k['second_request_ok']} ok | (none) |
| {g['connections']} connections of random bytes or cut-off requests | answers: {json.dumps(g['answers'])} | {viewers(g)} |

The edge was {"alive and serving" if r['edge_alive_after'] else "NOT serving"} after the run; its
RSS went from {r['rss_before_kib']} KiB to a peak of {r['rss_peak_kib']} KiB.

Connection counters at the end:

```
{metrics}
```

## Failures nobody chose

**{kl['kills']} `kill -9` of an edge under mixed load.** Four viewers, 70% of requests for 20
hot objects and 30% across 180 others (16 KiB to 1 MiB, nginx origin), every complete body
checked against its SHA-256; a 48 MiB store (the cold objects do not all fit: misses, fills
and evictions all along), the edge restarted on its store and port after each kill.
{kl['requests']} requests, {kl['bodies_checked']} bodies checked, **{kl['corrupt']} corrupt**,
{kl['hits']} hits and {kl['misses']} misses. Failed requests: {kl['failed_in_outage']} in flight at a kill or sent before
the restarted edge listened (forced), **{kl['failed_outside_outage']} outside those outages**
(kinds: {', '.join(kl['failure_kinds']) or 'none'}). Outage from kill to listening again: p50
{kl['outage_p50_s']} s, max {kl['outage_max_s']} s. Serving after the last restart:
{kl['edge_serving_after']}.

**An origin down every other second** (503 or a connection reset, in turn), objects cached with
`max-age=1, stale-if-error=600`, two viewers fetching 20 objects in turn for 20 s, every body
checked: {fl['requests']} requests, {fl['good']} good bodies, answers
{json.dumps(fl['answers'])}. The origin meanwhile: {json.dumps(fl['origin'])}.

**The geo-router's DNS under garbage** for 20 s: {d['udp_garbage']} UDP datagrams (random bytes,
cut-off queries, queries with a byte changed) and {d['tcp_connections']} TCP connections (random
bytes, a length prefix promising more than follows, a cut-off frame): {d['tcp_closed_by_server']}
closed by the router, {d['tcp_open_at_30s']} still open after 30 s. A resolver beside them:
{d['resolver_queries']} queries, {d['resolver_answered']} answered, {d['resolver_missed']} without
an answer in 1 s, p50 {d['resolver_p50_ms']} ms, p99 {d['resolver_p99_ms']} ms. The router
answered after it: {d['router_alive_after']}.

**Garbage at every other HTTP listener** (1,000 connections each, random bytes or a cut-off
`GET /status`; at the TLS listener both are bytes that are no TLS handshake):

| Listener | Answers |
|---|---|
{listeners}

Every server was {"alive after it" if r['servers_alive_after_garbage'] else "NOT alive after it"}.
""")
PY
echo "wrote benches/results/reliability.md" >&2
if [ "$alive" != 1 ] || [ "$kill_alive" != 1 ] || [ "$router_alive" != 1 ] || [ "$alive_after_garbage" != 1 ]; then
  echo "reliability run failed: a server was not serving at the end (see the report)" >&2
  exit 1
fi
# And the figures: no corrupt body, bodies really checked, no failure nobody forced, every
# viewer answer good behind the flapping origin, every resolver query answered.
python3 - "$line" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
k, f, d = r["kills"], r["flapping"], r["dns"]
problems = [what for what, bad in [
    ("a corrupt body after a kill", k["corrupt"] > 0),
    ("no body checked in the kill scenario", k["bodies_checked"] == 0),
    ("failures outside the kills' outages", k["failed_outside_outage"] > 0),
    ("a bad answer behind the flapping origin", f["good"] != f["requests"] or f["requests"] == 0),
    ("a resolver query without an answer", d["resolver_missed"] > 0 or d["resolver_answered"] == 0),
] if bad]
if problems:
    sys.exit("reliability run failed: " + "; ".join(problems))
PY
