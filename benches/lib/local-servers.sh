# Shared by the shell benchmarks: a work folder, nginx as a plain origin and the release edge in
# front of it, each started in the background and stopped by its PID when the script exits.
# Source it from the repository root:  . benches/lib/local-servers.sh
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/www" "$work/temp"

# start_nginx SERVER_DIRECTIVES: one nginx process serving $work/www on a free loopback port
# (set in $origin_url), with SERVER_DIRECTIVES inside its server block.
start_nginx() {
  local port
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  cat >"$work/nginx.conf" <<CONF
daemon off;
master_process off;
pid $work/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    client_body_temp_path $work/temp;
    proxy_temp_path $work/temp;
    fastcgi_temp_path $work/temp;
    uwsgi_temp_path $work/temp;
    scgi_temp_path $work/temp;
    server {
        listen 127.0.0.1:$port;
        root $work/www;
        $1
    }
}
CONF
  "$(command -v nginx || echo /usr/sbin/nginx)" -e stderr -p "$work" -c "$work/nginx.conf" &
  pids+=($!)
  origin_url="http://127.0.0.1:$port"
  for _ in $(seq 100); do
    curl -s -o /dev/null "$origin_url/" && return 0
    sleep 0.1
  done
  echo "nginx did not answer on $origin_url" >&2
  return 1
}

# start_one_file_origin: nginx serving one 16 KiB file of random bytes ($work/www/obj.bin) under
# every path, `Cache-Control: public, max-age=86400`: a catalogue of any size for the store.
start_one_file_origin() {
  head -c 16384 /dev/urandom >"$work/www/obj.bin"
  start_nginx 'location / {
            default_type video/iso.segment;
            add_header Cache-Control "public, max-age=86400";
            try_files /obj.bin =404;
        }'
}

# start_edge ARGS...: the release edge in front of $origin_url, its store in $work; sets
# $edge_pid, $edge_url and $admin_url once it has printed its listening lines. Its files are
# $work/$edge_tag.{store,out,log} ($edge_tag: edge unless set); $edge_listen (127.0.0.1:0
# unless set) is where it listens for viewers.
start_edge() {
  local tag=${edge_tag:-edge}
  target/release/edge --listen "${edge_listen:-127.0.0.1:0}" --admin 127.0.0.1:0 --origin "$origin_url" \
    --store "$work/$tag.store" --name "bench-$tag" --region bench "$@" \
    >"$work/$tag.out" 2>"$work/$tag.log" &
  edge_pid=$!
  pids+=("$edge_pid")
  edge_url= admin_url=
  for _ in $(seq 300); do
    edge_url="$(awk '$1 == "listening" && $2 == "http" { print $3; exit }' "$work/$tag.out")"
    admin_url="$(awk '$1 == "listening" && $2 == "admin" { print $3; exit }' "$work/$tag.out")"
    [ -n "$edge_url" ] && [ -n "$admin_url" ] && return 0
    kill -0 "$edge_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "the edge did not start:" >&2
  cat "$work/$tag.log" >&2
  return 1
}
