#!/bin/sh
set -eu

PACKAGE=hello_gleam
BASE=$(dirname "$0")
COMMAND="${1-default}"

run() {
  exec erl \
    -pa "$BASE"/*/ebin \
    -eval "$PACKAGE@@main:run($PACKAGE)" \
    -noshell \
    -extra "$@"
}

shell() {
  erl -pa "$BASE"/*/ebin
}

case "$COMMAND" in
run)
  shift
  run "$@"
  ;;
shell)
  shell
  ;;
*)
  echo "usage: entrypoint.sh run|shell" >&2
  exit 1
  ;;
esac
