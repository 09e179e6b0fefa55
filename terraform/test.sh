#!/usr/bin/env bash
# Terraform checks, as CI runs them: formatting, validation of the modules and envs/local, the
# modules' and envs/local's tests, the cloud-init documents and systemd units the modules render
# checked by `cloud-init schema` and `systemd-analyze verify` (and the configs by the binaries'
# --check-config), and after envs/local's test (which ends with a destroy) proof that no process
# it started is alive and none of its addresses is still bound.
#
# No provider registry is reachable: the CLI config points at an empty filesystem mirror, and
# everything here uses only Terraform's built-in terraform_data. envs/aws needs the AWS
# provider, so it is only format-checked; the edge config its modules/edge renders (HTTPS origin
# URLs) is run against an HTTPS origin (https-origin-check.sh). Binaries: TF_VAR_bin_dir
# (default target/release).
# Terraform's working data (.terraform/) goes under target/terraform/, not beside the modules.
set -euo pipefail
cd "$(dirname "$0")"
export CHECKPOINT_DISABLE=1
data="${CARGO_TARGET_DIR:-$(cd .. && pwd)/target}/terraform"
# The data folder of module folder $1.
tf() { local dir=$1; shift; TF_DATA_DIR="$data/$dir" terraform -chdir="$dir" "$@"; }
mirror="$(mktemp -d)"
rc="$mirror.tfrc"
printf 'provider_installation {\n  filesystem_mirror {\n    path = "%s"\n  }\n}\n' "$mirror" >"$rc"
export TF_CLI_CONFIG_FILE="$rc"
export TF_IN_AUTOMATION=1
trap 'rm -rf "$mirror" "$rc"' EXIT

echo "== terraform fmt -check -recursive"
terraform fmt -check -recursive

for dir in modules/artifact modules/ssm-secret modules/edge modules/fleet modules/router checks/render envs/local; do
  echo "== terraform validate $dir"
  tf "$dir" init -backend=false -input=false >/dev/null
  tf "$dir" validate
done

for dir in modules/artifact modules/ssm-secret modules/edge modules/fleet modules/router; do
  echo "== terraform test $dir"
  tf "$dir" test
done

bin_dir="${TF_VAR_bin_dir:-$(cd .. && pwd)/target/release}"
echo "== what the modules render for cloud nodes, checked by the tools that will read it"
# checks/render has no resources: apply only computes its outputs, the rendered files.
rendered="$mirror/rendered"
mkdir -p "$rendered"
tf checks/render apply -auto-approve -input=false -state="$rendered/state" >/dev/null
out() { tf checks/render output -state="$rendered/state" -raw "$1" >"$rendered/$1"; }
for o in edge_ssm_cloud_init edge_plain_cloud_init router_cloud_init edge_unit router_unit \
  edge_ssm_config edge_plain_config router_config topology; do
  out "$o"
done
for o in edge_ssm_cloud_init edge_plain_cloud_init router_cloud_init; do
  cloud-init schema --config-file "$rendered/$o"
done
# systemd-analyze verify also checks that ExecStart's program exists: the built one stands in
# for the one cloud-init installs.
mkdir -p "$rendered/units"
sed "s|^ExecStart=/usr/local/bin/edge |ExecStart=$bin_dir/edge |" "$rendered/edge_unit" \
  >"$rendered/units/meridian-edge.service"
sed "s|^ExecStart=/usr/local/bin/geo-router |ExecStart=$bin_dir/geo-router |" "$rendered/router_unit" \
  >"$rendered/units/meridian-geo-router.service"
# It only warns (exit 0) about an unknown key or a bad value: any word from it is a failure.
for unit in meridian-edge.service meridian-geo-router.service; do
  said="$(systemd-analyze verify "$rendered/units/$unit" 2>&1)" || { echo "$said" >&2; exit 1; }
  if [ -n "$said" ]; then
    echo "systemd-analyze verify $unit: $said" >&2
    exit 1
  fi
  echo "$unit: systemd-analyze verify ok"
done
# The configs, read by the binaries themselves (the router's topology and GeoIP paths are the
# node's; here the rendered topology and the test database stand in).
"$bin_dir/edge" --config "$rendered/edge_ssm_config" --check-config >/dev/null
"$bin_dir/edge" --config "$rendered/edge_plain_config" --check-config >/dev/null
"$bin_dir/geo-router" --config "$rendered/router_config" --topology "$rendered/topology" \
  --geoip "$(cd .. && pwd)/testdata/geoip/meridian-city.mmdb" --check-config >/dev/null
echo "rendered edge and router configs: --check-config ok"

echo "== modules/edge's config with envs/aws's HTTPS origin URLs, against an HTTPS origin"
TF_DATA_DIR_EDGE="$data/modules/edge" ./https-origin-check.sh \
  "${TF_VAR_bin_dir:-$(cd .. && pwd)/target/release}" "$data/https-check"

echo "== terraform test envs/local"
run_dir="$(cd .. && pwd)/target/terraform/local-run"
rm -rf "$run_dir"
status=0
tf envs/local test || status=$?

echo "== nothing left running"
left=0
for f in "$run_dir"/*.pid; do
  [ -e "$f" ] || continue
  echo "still has a PID file: $f" >&2
  left=1
done
for f in "$run_dir"/*.pid.stopped; do
  [ -e "$f" ] || continue
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    echo "still running: $(basename "$f" .pid.stopped) (PID $pid)" >&2
    left=1
  fi
done
if ss -Htlnu | grep -E '127\.0\.1[0-3]\.[0-9]+:' >&2; then
  echo "addresses of the local fleet are still bound" >&2
  left=1
fi
[ "$left" -eq 0 ] && echo "no process and no listener left"
rm -rf "$run_dir"
exit $((status || left))
