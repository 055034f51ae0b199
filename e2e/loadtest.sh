#!/usr/bin/env bash
# `make loadtest`: scenario 1 of the deployment tests, alone, against the
# demo cluster of `make demo` (started here if it is not running): a rolling
# deploy of hello-ex to the other example version, count 2 with a canary,
# under a constant 100 requests/s through each of two balancers that follow
# Consul (one with blocking queries, one refreshing every 3s). It prints the
# requests sent and failed and the p50 and p99 latency, per balancer, and
# exits 1 if any request failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
export NOMAD_ADDR=${NOMAD_ADDR:-http://127.0.0.1:4646}
export CONSUL_HTTP_ADDR=${CONSUL_HTTP_ADDR:-127.0.0.1:8500}

if ! "$bin/nomad" job status hello-ex >/dev/null 2>&1; then
  echo "no hello-ex job at $NOMAD_ADDR; starting the demo"
  bash "$root/e2e/demo.sh" start
fi

# Deploy whichever example version does not run now, so that each run is
# a real rolling deploy.
next=0.2.0
if "$bin/nomad" job inspect hello-ex | grep -q 'hello_ex-0.2.0.tar.gz'; then next=0.1.0; fi
tarball="$root/build/releases/hello_ex-$next.tar.gz"
sum=$(sha256sum "$tarball" | cut -d' ' -f1)
echo "==> Rolling deploy of hello-ex $next under load"
exec "$bin/beamctl" loadtest -service hello-ex -rate 100 -- \
  "$bin/beamctl" deploy -source "file://$tarball" -sha256 "$sum" -var count=2 "$root/jobspecs/hello_ex.nomad.hcl"
