#!/usr/bin/env bash
# The geo-router beside gdnsd (GeoIP plugin, the same City database and regions) and NSD (a
# static zone, rate limiting off), serving the same names, each pinned to core 0 with one UDP
# thread, dnsperf on core 1 with an ECS option on every query. Used by benches/dns/run.sh (the
# DNS report) and benches/cdn/run.sh. Appends JSON lines to $RAW (measure.py says what each
# holds). Needs BIN (release binaries), WORK, RAW; DURATION (s, default 10).
#
# Per server and run (RUNS, default 1; servers interleaved):
#   open   dnsperf asks 500,000 q/s: what it gets answered (on this machine dnsperf's own core is
#          the limit near 150,000 q/s, so this says little of a server; its CPU is recorded)
#   fixed  FIXED_QPS (default 100,000) for DURATION, with one client subnet (set "one") and with
#          131,072 queries of distinct subnets (set "many"): CPU per query on each side
# With BEFORE (a geo-router binary built from an earlier commit, BEFORE_LABEL naming it), that
# router runs beside the others as "geo-router-before", with the test config as it is.
# Then, with LADDER=1, once per server: LADDER_RATES for LADDER_SECONDS (default 30) each, up to
# the first rate not held twice in a row: a query lost, or fewer answers than 98% of the rate
# asked (set "one").
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${BIN:?}" "${WORK:?}" "${RAW:?}"
DURATION=${DURATION:-10}
export PATH=$PATH:/usr/sbin
dir=$WORK/dns
rm -rf "$dir"
mkdir -p "$dir/gdnsd/zones"
geoip=$PWD/testdata/geoip/meridian-city.mmdb
pids=$dir/pids
: >"$pids"
# shellcheck source=../lib.sh
. benches/lib.sh
trap 'stop_pids "$pids"' EXIT

# The same names everywhere: the service name (per-client answers where the server can), the
# apex SOA, and a name that does not exist.
python3 benches/dns/queries.py text "$dir/queries"
python3 benches/dns/queries.py many "$dir/many.bin" 131072
RUNS=${RUNS:-1}
FIXED_QPS=${FIXED_QPS:-100000}
LADDER_RATES=${LADDER_RATES:-"100000 120000 130000 140000 150000 160000 180000"}
LADDER_SECONDS=${LADDER_SECONDS:-30}
# The router with one UDP thread (like gdnsd's udp_threads and NSD's server-count).
{
  echo "dns_udp_threads = 1"
  sed "s|^topology = .*|topology = \"$PWD/testdata/topology.toml\"|; s|^geoip = .*|geoip = \"$geoip\"|" \
    testdata/geo-router.toml
} >"$dir/geo-router.toml"

# NSD: a static zone, one server process, no rate limiting.
cat >"$dir/meridian.test.zone" <<'EOF'
$ORIGIN meridian.test.
$TTL 20
@      IN SOA ns1 hostmaster 1 3600 600 86400 20
@      IN NS  ns1
ns1    IN A   127.0.0.1
video  IN A   127.0.2.1
video  IN A   127.0.2.2
EOF
cat >"$dir/nsd.conf" <<EOF
server:
  ip-address: 127.0.0.1@15354
  do-ip6: no
  server-count: 1
  username: ""
  zonesdir: "$dir"
  pidfile: "$dir/nsd.pid"
  database: ""
  zonelistfile: "$dir/zone.list"
  xfrdfile: "$dir/xfrd.state"
  xfrdir: "$dir"
  verbosity: 0
  rrl-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: meridian.test
  zonefile: meridian.test.zone
EOF

# gdnsd: the geoip plugin over the same database, regions as datacenters by coordinates.
cat >"$dir/gdnsd/config" <<EOF
options => {
  listen => [ 127.0.0.1:15355 ]
  udp_threads => 1
  tcp_threads => 1
}
service_types => { }
plugins => {
  geoip => {
    maps => {
      fleet => {
        geoip2_db => $geoip
        datacenters => [ us-east, eu-west, ap-southeast ]
        auto_dc_coords => {
          us-east => [ 40.71, -74.01 ]
          eu-west => [ 51.51, -0.13 ]
          ap-southeast => [ 1.35, 103.82 ]
        }
      }
    }
    resources => {
      video => {
        map => fleet
        service_types => up
        dcmap => {
          us-east => { e1 => 127.0.1.1, e2 => 127.0.1.2 }
          eu-west => { e1 => 127.0.2.1, e2 => 127.0.2.2 }
          ap-southeast => { e1 => 127.0.3.1, e2 => 127.0.3.2 }
        }
      }
    }
  }
}
EOF
cat >"$dir/gdnsd/zones/meridian.test" <<'EOF'
$TTL 20
@      SOA ns1 hostmaster 1 3600 600 86400 20
@      NS  ns1
ns1    A   127.0.0.1
video  DYNA geoip!video
EOF

start() { # name readiness-port cmd...
  local name=$1 port=$2
  shift 2
  setsid taskset -c 0 "$@" </dev/null >"$dir/$name.log" 2>&1 &
  echo $! >>"$pids"
  echo $! >"$dir/$name.pid.started"
  for _ in $(seq 100); do
    if kdig @127.0.0.1 -p "$port" meridian.test SOA +short +timeout=1 +retry=0 2>/dev/null | grep -q hostmaster; then
      return 0
    fi
    kill -0 "$(cat "$dir/$name.pid.started")" 2>/dev/null || break
    sleep 0.1
  done
  echo "compare.sh: $name did not answer on port $port; its log:" >&2
  cat "$dir/$name.log" >&2
  return 1
}

measure() { # name port qps seconds queries set phase
  local line
  line=$(RUN=${run:-1} python3 benches/dns/measure.py "$1" "$(cat "$dir/$1.pid.started")" "$2" "$3" "$4" "$5" "$6" "$7")
  echo "$line" >>"$RAW"
  echo "  $1 $7 $6 @$3: $line" >&2
  # For the ladder: "held" when every query was answered at the rate asked (within 2%).
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("held" if r["lost"] == 0 and r["qps"] >= 0.98 * r["asked_qps"] else "not")' "$line"
}

stop_all() {
  stop_pids "$pids"
  : >"$pids"
}

start_server() { # name
  case $1 in
    geo-router) start geo-router 15353 "$BIN/geo-router" --config "$dir/geo-router.toml" \
      --dns 127.0.0.1:15353 --http 127.0.0.1:0 --admin 127.0.0.1:0 ;;
    geo-router-before) start geo-router-before 15356 "$BEFORE" --config testdata/geo-router.toml \
      --dns 127.0.0.1:15356 --http 127.0.0.1:0 --admin 127.0.0.1:0 ;;
    gdnsd) start gdnsd 15355 gdnsd -c "$dir/gdnsd" -D start ;;
    nsd) start nsd 15354 nsd -d -c "$dir/nsd.conf" ;;
  esac
}
declare -A port=([geo-router]=15353 [geo-router-before]=15356 [gdnsd]=15355 [nsd]=15354)
servers="geo-router${BEFORE:+ geo-router-before} gdnsd nsd"

for run in $(seq "$RUNS"); do
  for server in $servers; do
    if ! start_server "$server"; then
      echo "compare.sh: $server left out of run $run" >&2
      stop_all
      continue
    fi
    measure "$server" "${port[$server]}" 500000 "$DURATION" "$dir/queries" one open >/dev/null
    measure "$server" "${port[$server]}" "$FIXED_QPS" "$DURATION" "$dir/queries" one fixed >/dev/null
    measure "$server" "${port[$server]}" "$FIXED_QPS" "$DURATION" "$dir/many.bin" many fixed >/dev/null
    stop_all
  done
done
if [ "${LADDER:-0}" = 1 ]; then
  for server in $servers; do
    start_server "$server" || { stop_all; continue; }
    for rate in $LADDER_RATES; do
      held=$(measure "$server" "${port[$server]}" "$rate" "$LADDER_SECONDS" "$dir/queries" one ladder)
      # A step not held is asked once more, for every server alike: on this shared machine a
      # 30 s step now and then answers at two thirds of the rate with neither the server's
      # core nor dnsperf's busy, which is the machine, not the server.
      [ "$held" = held ] ||
        held=$(measure "$server" "${port[$server]}" "$rate" "$LADDER_SECONDS" "$dir/queries" one ladder)
      [ "$held" = held ] || break
    done
    stop_all
  done
fi
