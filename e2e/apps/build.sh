#!/usr/bin/env bash
# Builds the example releases as tarballs into the directory given as $1.
# Each version is a plain release, as CI builds it: no appup, no relup step.
# The hot-upgrade packages are made from those tarballs by `beamctl relup`
# ($BEAMCTL, bin/beamctl by default):
#   full/APP-VSN.tar.gz       every version, as mix release or rebar3 tar
#                             wrote it
#   hello_erl-0.1.0.tar.gz    relx, from `rebar3 as prod tar`
#   hello_erl-0.2.0.tar.gz    hot package, relup from 0.1.0: the counter's
#                             state changes shape, a module is added and
#                             one dropped
#   hello_erl-0.3.0.tar.gz    hot package with a relup from 0.2.0 only
#   hello_ex-0.1.0.tar.gz     mix release
#   hello_ex-0.2.0.tar.gz     hot package, relup from 0.1.0 (the same kinds
#                             of change as hello_erl 0.2.0)
#   hello_ex-0.3.0.tar.gz     hot package, relups from 0.1.0 and 0.2.0; it
#                             adds a dependency application, hello_dep
#   hello_gleam-0.1.0.tar.gz  the `gleam export erlang-shipment` layout
# A tarball is rebuilt only when its sources (or beamctl) are newer.
set -euo pipefail
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out/full" && out=$(cd "$out" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
beamctl=${BEAMCTL:-$here/../../bin/beamctl}

stale() { # stale TARGET DIR...: is TARGET missing or older than a file in a DIR?
  local target=$1 dir
  shift
  [ -f "$target" ] || return 0
  for dir in "$@"; do
    [ -z "$(find "$dir" -path "$dir/_build" -prune -o -newer "$target" -type f -print -quit)" ] || return 0
  done
  return 1
}

# hot OUT FROM... TO: make the hot-upgrade package OUT with beamctl relup,
# if OUT is missing or older than its inputs or beamctl.
hot() {
  local outfile=$1 to=${*: -1} args=() f
  for f in "${@:2:$#-2}"; do args+=(-from "$f"); done
  if [ -f "$outfile" ] && [ -z "$(find "${@:2}" "$beamctl" -newer "$outfile" -print -quit)" ]; then
    return
  fi
  echo "beamctl relup → $(basename "$outfile")"
  "$beamctl" relup "${args[@]}" -to "$to" -o "$outfile" >"$outfile.relup.txt" 2>&1 ||
    { cat "$outfile.relup.txt"; exit 1; }
}

# Each app is built in a copy under $work.
work="$out/../apps-work"

if stale "$out/full/hello_erl-0.3.0.tar.gz" "$here/hello_erl"; then
  echo "building hello_erl 0.1.0, 0.2.0 and 0.3.0 (rebar3 tar)"
  rm -rf "$work/hello_erl" && mkdir -p "$work" && cp -r "$here/hello_erl" "$work/"
  (
    cd "$work/hello_erl"
    rel=_build/prod/rel/hello_erl
    cp v1/*.erl src/
    rebar3 as prod tar >/dev/null
    cp "$rel/hello_erl-0.1.0.tar.gz" "$out/full/"
    # 0.2.0 and later are compiled with -DV2 and have v2/ instead of v1/.
    export ERL_COMPILER_OPTIONS="[{d,'V2'}]"
    for f in v1/*.erl; do rm "src/$(basename "$f")"; done
    cp v2/*.erl src/
    for pair in 0.2.0:0.1.0 0.3.0:0.2.0; do
      v=${pair%%:*} from=${pair##*:}
      sed -i "s/\"$from\"/\"$v\"/" src/hello_erl.app.src rebar.config
      rm -rf _build/prod/lib/hello_erl _build/prod/rel
      rebar3 as prod tar >/dev/null
      cp "$rel/hello_erl-$v.tar.gz" "$out/full/"
    done
  )
fi
cp -p "$out/full/hello_erl-0.1.0.tar.gz" "$out/"
hot "$out/hello_erl-0.2.0.tar.gz" "$out/full/hello_erl-0.1.0.tar.gz" "$out/full/hello_erl-0.2.0.tar.gz"
hot "$out/hello_erl-0.3.0.tar.gz" "$out/full/hello_erl-0.2.0.tar.gz" "$out/full/hello_erl-0.3.0.tar.gz"

if stale "$out/full/hello_ex-0.3.0.tar.gz" "$here/hello_ex" "$here/hello_dep"; then
  echo "building hello_ex 0.1.0, 0.2.0 and 0.3.0 (mix release)"
  rm -rf "$work/hello_ex" "$work/hello_dep" && mkdir -p "$work" && cp -r "$here/hello_ex" "$here/hello_dep" "$work/"
  (
    cd "$work/hello_ex"
    export MIX_ENV=prod
    for v in 0.1.0 0.2.0 0.3.0; do
      rm -rf _build/prod/lib/hello_ex _build/prod/rel
      HELLO_EX_VSN=$v mix release --overwrite --quiet >/dev/null
      cp "_build/prod/hello_ex-$v.tar.gz" "$out/full/"
    done
  )
fi
cp -p "$out/full/hello_ex-0.1.0.tar.gz" "$out/"
hot "$out/hello_ex-0.2.0.tar.gz" "$out/full/hello_ex-0.1.0.tar.gz" "$out/full/hello_ex-0.2.0.tar.gz"
hot "$out/hello_ex-0.3.0.tar.gz" "$out/full/hello_ex-0.1.0.tar.gz" "$out/full/hello_ex-0.2.0.tar.gz" \
  "$out/full/hello_ex-0.3.0.tar.gz"

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
