#!/usr/bin/env bash
# The DNS part of benches/cdn/run.sh: the geo-router beside gdnsd (GeoIP plugin, the same City
# database and regions) and NSD (a static zone, rate limiting off), serving the same names, each
# pinned to core 0, dnsperf on core 1 with an ECS option on every query. Appends one JSON line
# per server to $RAW. Needs BIN (release binaries), WORK, RAW, DURATION.
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
printf 'video.meridian.test A\nvideo.meridian.test A\nmeridian.test SOA\nnope.meridian.test A\n' >"$dir/queries"
# ECS (option 8): IPv4, source /24, scope 0, 198.51.100.0 (near eu-west in the test database).
ecs=8:00011800c63364

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

measure() { # name port
  local out
  out=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$2" -d "$dir/queries" -l "$DURATION" -c 4 -Q 500000 -E "$ecs" 2>&1)
  echo "$out" >"$dir/$1.dnsperf"
  python3 - "$1" "$out" >>"$RAW" <<'PY'
import json, re, sys
name, text = sys.argv[1], sys.argv[2]
qps = float(re.search(r"Queries per second:\s+([\d.]+)", text).group(1))
lost = int(re.search(r"Queries lost:\s+(\d+)", text).group(1))
latency = float(re.search(r"Average Latency \(s\):\s+([\d.]+)", text).group(1)) * 1000
print(json.dumps({"server": name, "test": "dns", "kind": "dns", "qps": qps, "lost": lost, "latency_ms": latency}))
PY
  echo "  $1: $(tail -1 "$RAW")" >&2
}

stop_all() {
  stop_pids "$pids"
  : >"$pids"
}

start geo-router 15353 "$BIN/geo-router" --config testdata/geo-router.toml --dns 127.0.0.1:15353 \
  --http 127.0.0.1:0 --admin 127.0.0.1:0
measure geo-router 15353
stop_all
if start gdnsd 15355 gdnsd -c "$dir/gdnsd" -D start; then
  measure gdnsd 15355
else
  echo "compare.sh: gdnsd left out of this run" >&2
fi
stop_all
if start nsd 15354 nsd -d -c "$dir/nsd.conf"; then
  measure nsd 15354
else
  echo "compare.sh: NSD left out of this run" >&2
fi
stop_all
