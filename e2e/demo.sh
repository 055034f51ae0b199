#!/usr/bin/env bash
# `make demo`: Consul and Nomad agents on 127.0.0.1 with the beam plugin, and
# the example Elixir app deployed through it. `make demo-stop` ends it all.
# Logs and the plugin live in build/demo/, Nomad's state in
# /var/tmp/nomad-driver-beam-demo.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
demo="$root/build/demo"
# Nomad's data_dir, where tasks run: they run as nobody, who must be able to
# reach their directories, which a checkout under /root, say, does not allow.
state=/var/tmp/nomad-driver-beam-demo
bin="$root/bin"
export NOMAD_ADDR=http://127.0.0.1:4646
export CONSUL_HTTP_ADDR=127.0.0.1:8500

alive() { [ -f "$demo/$1.pid" ] && kill -0 "$(cat "$demo/$1.pid")" 2>/dev/null; }

stop() {
  if alive nomad; then
    "$bin/nomad" job stop -purge hello-ex >/dev/null 2>&1 || true
    kill -INT "$(cat "$demo/nomad.pid")" 2>/dev/null || true
  fi
  alive consul && kill -INT "$(cat "$demo/consul.pid")" 2>/dev/null || true
  sleep 2
  # Executors and nodes run in their own sessions; end whatever is left.
  for p in /proc/[0-9]*; do
    for link in cwd exe; do
      case "$(readlink "$p/$link" 2>/dev/null)" in "$demo"/*|"$state"/*) kill -9 "${p#/proc/}" 2>/dev/null || true ;; esac
    done
  done
  rm -f "$demo"/*.pid
  echo "demo stopped"
}

wait_until() { # wait_until SECONDS DESCRIPTION COMMAND...
  local n=$(( $1 * 5 )) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    n=$((n - 1))
    if [ "$n" -le 0 ]; then echo "timed out waiting for $what; logs are in $demo" >&2; exit 1; fi
    sleep 0.2
  done
}

start() {
  if alive nomad || alive consul; then
    echo "the demo is already running; 'make demo-stop' ends it" >&2
    exit 1
  fi
  mkdir -p "$demo/plugins" "$state/nomad"
  chmod 0711 "$state" "$state/nomad"
  cp "$bin/nomad-driver-beam" "$demo/plugins/.nomad-driver-beam.new"
  mv -f "$demo/plugins/.nomad-driver-beam.new" "$demo/plugins/nomad-driver-beam"

  "$bin/consul" agent -dev -bind 127.0.0.1 -client 127.0.0.1 -hcl 'disable_update_check = true' \
    >"$demo/consul.log" 2>&1 &
  echo $! >"$demo/consul.pid"

  cat >"$demo/nomad.hcl" <<HCL
data_dir             = "$state/nomad"
plugin_dir           = "$demo/plugins"
bind_addr            = "127.0.0.1"
disable_update_check = true

advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}

server {
  enabled          = true
  bootstrap_expect = 1
}

client {
  enabled           = true
  network_interface = "lo"
  options {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }
}

# CPU and memory graphs in the UI need allocation metrics.
telemetry {
  publish_allocation_metrics = true
  collection_interval        = "1s"
}

consul {
  address = "127.0.0.1:8500"
}

plugin "nomad-driver-beam" {
  config {
    data_dir   = "$demo/beam"
    epmd_addr  = "127.0.0.1"
    # file:// sources may read only here: the plugin runs as root.
    file_roots = ["$root/build/releases"]
  }
}
HCL
  AWS_CA_BUNDLE= "$bin/nomad" agent -config "$demo/nomad.hcl" >"$demo/nomad.log" 2>&1 &
  echo $! >"$demo/nomad.pid"

  echo "waiting for Consul and Nomad on 127.0.0.1..."
  wait_until 60 "consul" "$bin/consul" members
  wait_until 90 "the beam driver" sh -c "'$bin/nomad' node status -self -verbose 2>/dev/null | grep -Eq 'beam +true +true'"

  # The cookie goes into the job's Nomad Variable through the API's stdin,
  # never through a command line.
  if ! "$bin/nomad" var get nomad/jobs/hello-ex >/dev/null 2>&1; then
    local cookie
    cookie=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    printf '{"Items":{"cookie":"%s"}}' "$cookie" |
      curl -sf -X PUT --data-binary @- "$NOMAD_ADDR/v1/var/nomad/jobs/hello-ex" >/dev/null
  fi

  local tarball="$root/build/releases/hello_ex-0.1.0.tar.gz"
  local sum
  sum=$(sha256sum "$tarball" | cut -d' ' -f1)
  "$bin/nomad" job run \
    -var "release_source=file://$tarball" \
    -var "release_sha256=$sum" \
    "$root/jobspecs/hello_ex.nomad.hcl"

  local next="$root/build/releases/hello_ex-0.2.0.tar.gz" nextsum
  nextsum=$(sha256sum "$next" | cut -d' ' -f1)

  local alloc port
  alloc=$("$bin/nomad" job allocs -t '{{range .}}{{if eq .ClientStatus "running"}}{{.ID}}{{end}}{{end}}' hello-ex)
  port=$("$bin/nomad" alloc status -t '{{range .AllocatedResources.Shared.Ports}}{{if eq .Label "http"}}{{.Value}}{{end}}{{end}}' "$alloc")
  wait_until 30 "the app" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"

  cat <<MSG

hello_ex is deployed by the beam driver and registered in Consul.

  App:         http://127.0.0.1:$port/
  Allocation:  http://127.0.0.1:4646/ui/allocations/$alloc
  Consul:      http://127.0.0.1:8500/ui/dc1/services/hello-ex

  Logs:        bin/nomad alloc logs $alloc
  Shell:       bin/nomad alloc exec -i -t -task hello_ex $alloc bin/hello_ex remote
  Status:      bin/beamctl status -job hello-ex
  Hot upgrade: bin/beamctl upgrade -job hello-ex -version 0.2.0 -source file://$next -sha256 $nextsum
  Stop:        make demo-stop
MSG
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*) echo "usage: demo.sh start|stop" >&2; exit 2 ;;
esac
