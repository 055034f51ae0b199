#!/usr/bin/env bash
# Builds the example releases as tarballs into the directory given as $1:
#   hello_erl-0.1.0.tar.gz    relx, from `rebar3 as prod tar`
#   hello_erl-0.2.0.tar.gz    its hot upgrade, with a relup from 0.1.0
#   hello_erl-0.3.0.tar.gz    a relup from 0.2.0 only
#   hello_ex-0.1.0.tar.gz     mix release, with the :tar step
#   hello_ex-0.2.0.tar.gz     its hot upgrade, with a relup from 0.1.0
#   hello_gleam-0.1.0.tar.gz  the `gleam export erlang-shipment` layout
# A tarball is rebuilt only when its sources are newer.
set -euo pipefail
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out" && out=$(cd "$out" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"

stale() { # stale TARGET DIR: is TARGET missing or older than a file in DIR?
  [ ! -f "$1" ] || [ -n "$(find "$2" -path "$2/_build" -prune -o -newer "$1" -type f -print -quit)" ]
}

# Each app is built in a copy under $work, so that its versions share one
# release directory, as relup generation needs.
work="$out/../apps-work"

if stale "$out/hello_erl-0.3.0.tar.gz" "$here/hello_erl"; then
  echo "building hello_erl 0.1.0, 0.2.0 and 0.3.0 (rebar3, with relups)"
  rm -rf "$work/hello_erl" && mkdir -p "$work" && cp -r "$here/hello_erl" "$work/"
  (
    cd "$work/hello_erl"
    rel=_build/prod/rel/hello_erl
    rebar3 as prod tar >/dev/null
    cp "$rel/hello_erl-0.1.0.tar.gz" "$out/"
    # 0.2.0 and later are compiled with -DV2; rebar3 copies ebin/*.appup.
    export ERL_COMPILER_OPTIONS="[{d,'V2'}]"
    mkdir -p ebin
    for pair in 0.2.0:0.1.0 0.3.0:0.2.0; do
      v=${pair%%:*} from=${pair##*:}
      sed -i "s/\"$from\"/\"$v\"/" src/hello_erl.app.src rebar.config
      cp "upgrades/$v.appup" ebin/hello_erl.appup
      rm -rf _build/prod/lib/hello_erl
      rebar3 as prod release >/dev/null
      rebar3 as prod relup -n hello_erl -v "$v" -u "$from" >/dev/null
      rebar3 as prod tar -n hello_erl -v "$v" >/dev/null
      cp "$rel/hello_erl-$v.tar.gz" "$out/"
    done
  )
fi

if stale "$out/hello_ex-0.2.0.tar.gz" "$here/hello_ex"; then
  echo "building hello_ex 0.1.0 and 0.2.0 (mix release, with a relup)"
  rm -rf "$work/hello_ex" && mkdir -p "$work" && cp -r "$here/hello_ex" "$work/"
  (
    cd "$work/hello_ex"
    export MIX_ENV=prod
    mix release --overwrite --quiet >/dev/null
    cp _build/prod/hello_ex-0.1.0.tar.gz "$out/"
    rm -rf _build/prod/lib/hello_ex
    HELLO_EX_VSN=0.2.0 HELLO_EX_UPGRADE_FROM=0.1.0 mix release --overwrite --quiet >/dev/null
    cp _build/prod/hello_ex-0.2.0.tar.gz "$out/"
  )
fi

if stale "$out/hello_gleam-0.1.0.tar.gz" "$here/hello_gleam"; then
  echo "building hello_gleam (erlang-shipment layout)"
  tmp=$(mktemp -d)
  ship="$tmp/erlang-shipment"
  mkdir -p "$ship/hello_gleam/ebin"
  erlc -o "$ship/hello_gleam/ebin" "$here"/hello_gleam/src/*.erl
  cat >"$ship/hello_gleam/ebin/hello_gleam.app" <<'APP'
{application, hello_gleam, [{vsn, "0.1.0"}, {modules, [hello_gleam, hello_gleam_sigterm, 'hello_gleam@@main']}, {applications, [kernel, stdlib]}]}.
APP
  cp "$here/hello_gleam/entrypoint.sh" "$ship/"
  tar -C "$tmp" -czf "$out/hello_gleam-0.1.0.tar.gz" erlang-shipment
  rm -rf "$tmp"
fi
