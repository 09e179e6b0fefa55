#!/usr/bin/env bash
# Terraform checks, as CI runs them: formatting, validation of the modules and envs/local, the
# modules/edge and envs/local tests, and after envs/local's test (which ends with a destroy)
# proof that no process it started is alive and none of its addresses is still bound.
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

for dir in modules/edge modules/fleet envs/local; do
  echo "== terraform validate $dir"
  tf "$dir" init -backend=false -input=false >/dev/null
  tf "$dir" validate
done

for dir in modules/edge modules/fleet; do
  echo "== terraform test $dir"
  tf "$dir" test
done

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
