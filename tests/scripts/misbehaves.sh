#!/bin/sh
# Misbehaves according to $1: exit code, no result, bad JSON, or hang with a child
# (stubborn: ignoring SIGTERM, so only SIGKILL stops it).
case "$1" in
  exit3) echo "simulation diverged at step 42" >&2; exit 3 ;;
  noresult) echo "forgot to write the result" >&2; exit 0 ;;
  badjson) echo "{not json" > "$JOB_OUTPUT_FILE"; exit 0 ;;
  hang) sleep 600 & echo $! > "$JOB_WORKDIR/child.pid"; echo $$ > "$JOB_WORKDIR/script.pid"; wait ;;
  stubborn) trap '' TERM; sleep 600 & echo $! > "$JOB_WORKDIR/child.pid"; echo $$ > "$JOB_WORKDIR/script.pid"; wait ;;
esac
