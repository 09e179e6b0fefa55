#!/usr/bin/env bash
# Apache Traffic Server as a reverse-proxy cache for the cache test suite, from Debian's
# trafficserver package, with a layout of its own under DIR (configs, cache, logs, runtime):
#   trafficserver.sh DIR LISTEN_PORT ORIGIN_PORT
# It runs in the foreground until killed.
set -euo pipefail
dir=$1 port=$2 origin=$3
rm -rf "$dir" && mkdir -p "$dir/etc" "$dir/cache" "$dir/log" "$dir/run"
cp -r /etc/trafficserver/. "$dir/etc/"
cat >"$dir/runroot.yaml" <<YAML
prefix: /usr
exec_prefix: /usr
bindir: /usr/bin
sbindir: /usr/sbin
sysconfdir: $dir/etc
datadir: $dir/cache
includedir: /usr/include
libdir: /usr/lib/trafficserver
libexecdir: /usr/lib/trafficserver/modules
localstatedir: $dir
runtimedir: $dir/run
logdir: $dir/log
cachedir: $dir/cache
YAML
cat >>"$dir/etc/records.config" <<CONF
CONFIG proxy.config.http.server_ports STRING $port
CONFIG proxy.config.reverse_proxy.enabled INT 1
CONFIG proxy.config.url_remap.remap_required INT 1
CONFIG proxy.config.admin.user_id STRING #-1
CONFIG proxy.config.http.cache.http INT 1
CONFIG proxy.config.http.wait_for_cache INT 1
CONF
echo "$dir/cache 64M" >"$dir/etc/storage.config"
echo "map http://127.0.0.1:$port/ http://127.0.0.1:$origin/" >"$dir/etc/remap.config"
chmod -R a+rwX "$dir"
exec traffic_server --run-root="$dir/runroot.yaml"
