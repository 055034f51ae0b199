#!/usr/bin/env bash
# Builds the example releases as tarballs into the directory given as $1:
#   hello_erl-0.1.0.tar.gz    relx, from `rebar3 as prod tar`
#   hello_ex-0.1.0.tar.gz     mix release, with the :tar step
#   hello_gleam-0.1.0.tar.gz  the `gleam export erlang-shipment` layout
# A tarball is rebuilt only when its sources are newer.
set -euo pipefail
out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"

stale() { # stale TARGET DIR: is TARGET missing or older than a file in DIR?
  [ ! -f "$1" ] || [ -n "$(find "$2" -path "$2/_build" -prune -o -newer "$1" -type f -print -quit)" ]
}

if stale "$out/hello_erl-0.1.0.tar.gz" "$here/hello_erl"; then
  echo "building hello_erl (rebar3)"
  (cd "$here/hello_erl" && rebar3 as prod tar >/dev/null)
  cp "$here/hello_erl/_build/prod/rel/hello_erl/hello_erl-0.1.0.tar.gz" "$out/"
fi

if stale "$out/hello_ex-0.1.0.tar.gz" "$here/hello_ex"; then
  echo "building hello_ex (mix release)"
  (cd "$here/hello_ex" && MIX_ENV=prod mix release --overwrite --quiet >/dev/null)
  cp "$here/hello_ex/_build/prod/hello_ex-0.1.0.tar.gz" "$out/"
fi

if stale "$out/hello_gleam-0.1.0.tar.gz" "$here/hello_gleam"; then
  echo "building hello_gleam (erlang-shipment layout)"
  tmp=$(mktemp -d)
  ship="$tmp/erlang-shipment"
  mkdir -p "$ship/hello_gleam/ebin"
  erlc -o "$ship/hello_gleam/ebin" "$here"/hello_gleam/src/*.erl
  cat >"$ship/hello_gleam/ebin/hello_gleam.app" <<'APP'
{application, hello_gleam, [{vsn, "0.1.0"}, {modules, [hello_gleam, 'hello_gleam@@main']}, {applications, [kernel, stdlib]}]}.
APP
  cp "$here/hello_gleam/entrypoint.sh" "$ship/"
  tar -C "$tmp" -czf "$out/hello_gleam-0.1.0.tar.gz" erlang-shipment
  rm -rf "$tmp"
fi
