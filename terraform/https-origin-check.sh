#!/usr/bin/env bash
# The edge config modules/edge renders for envs/aws (HTTPS origin URLs), run for real against an
# HTTPS origin of the kind the edge's HTTPS origin test uses: a certificate for `localhost`
# from a private CA (made here with openssl), served by Meridian's origin behind an edge that
# terminates TLS. With the CA file the edge fetches through it; without it the edge answers 502
# naming the certificate problem. Every process started here is stopped by its PID.
#   terraform/https-origin-check.sh <bin dir> <work dir>
# Called by terraform/test.sh, with TF_DATA_DIR and the CLI config it set up.
set -euo pipefail
cd "$(dirname "$0")"
bin=$1 work=$2
repo="$(cd .. && pwd)"
rm -rf "$work" && mkdir -p "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# start NAME KIND PROGRAM ARGS...: starts PROGRAM with stdout in $work/NAME.out (its PID kept
# for cleanup), waits up to 30 s for its `listening KIND <url>` line and sets $started to the
# URL. Not called in a subshell, so that the PID stays in this shell's list.
start() {
  local name=$1 kind=$2; shift 2
  "$@" >"$work/$name.out" 2>"$work/$name.log" &
  local pid=$!
  pids+=("$pid")
  started=
  for _ in $(seq 300); do
    started="$(awk -v k="$kind" '$1 == "listening" && $2 == k { print $3; exit }' "$work/$name.out")"
    [ -n "$started" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not print 'listening $kind'; its log:" >&2
  cat "$work/$name.log" >&2
  return 1
}

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Meridian check CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$work/origin.key" -out "$work/origin.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' >"$work/san.ext"
openssl x509 -req -in "$work/origin.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -extfile "$work/san.ext" -out "$work/origin.pem" 2>/dev/null

start origin http "$bin/origin" --media "$repo/testdata/media" \
  --listen 127.0.0.1:0 --admin 127.0.0.1:0
origin=$started
start https-front https "$bin/edge" --name https-front --region check \
  --listen 127.0.0.1:0 --admin 127.0.0.1:0 --tls-listen 127.0.0.1:0 \
  --tls-cert "$work/origin.pem" --tls-key "$work/origin.key" \
  --origin "$origin" --store "$work/front.store" --capacity 16MiB
https_origin="${started/127.0.0.1/localhost}"

# render CA_FILE: the config modules/edge renders with envs/aws's kind of inputs (a cloud node's
# name and address, HTTPS origin URLs, a router URL), on loopback with free ports.
render() {
  local ca=$1
  local vars=(-var name=aws-check-1 -var region=check -var "capacity={ egress_mbps = 100, connections = 1000 }" -var address=127.0.0.1
    -var http_port=0 -var admin_port=0 -var "store_path=$work/aws-edge.store" -var store_capacity=16MiB
    -var "origin_urls=[\"$https_origin\"]" -var 'router_urls=["http://127.0.0.1:9"]')
  [ -z "$ca" ] || vars+=(-var "origin_ca_file=$ca")
  echo 'nonsensitive(local.config)' | TF_DATA_DIR="$TF_DATA_DIR_EDGE" terraform -chdir=modules/edge console "${vars[@]}" |
    sed -e '1{/^<<EOT$/d}' -e '${/^EOT$/d}'
}

render "$work/ca.pem" >"$work/aws-edge.toml"
grep -q "^origins = \[\"https://localhost:" "$work/aws-edge.toml" || {
  echo "the rendered config has no HTTPS origin:" >&2
  cat "$work/aws-edge.toml" >&2
  exit 1
}
start aws-edge http "$bin/edge" --config "$work/aws-edge.toml"
edge=$started
status="$(curl -s -o /dev/null -w '%{http_code}' "$edge/vod/big-clock/720p/seg_00001.m4s")"
[ "$status" = 200 ] || {
  echo "through the rendered edge and its HTTPS origin: $status, not 200" >&2
  cat "$work/aws-edge.log" >&2
  exit 1
}
echo "the rendered edge fetched over HTTPS from $https_origin with the private CA: 200"
last=${pids[${#pids[@]}-1]}
kill "$last" && wait "$last" 2>/dev/null || true

render "" >"$work/aws-edge-no-ca.toml"
rm -f "$work/aws-edge.store"
start aws-edge-no-ca http "$bin/edge" --config "$work/aws-edge-no-ca.toml"
doubting=$started
body="$(curl -s -w '\n%{http_code}' "$doubting/vod/big-clock/720p/seg_00001.m4s")"
case "$body" in
  *certificate*502) echo "without the CA file: 502 naming the certificate problem" ;;
  *)
    echo "without the CA file the edge should answer 502 naming the certificate; it answered: $body" >&2
    exit 1
    ;;
esac
