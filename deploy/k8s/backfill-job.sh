#!/usr/bin/env bash
# Prints a backfill Job for one table and date range, ready for `kubectl create -f -`:
#
#   deploy/k8s/backfill-job.sh --table orders --from 2026-10-01 --to 2026-10-31 | kubectl create -f -
#   deploy/k8s/backfill-job.sh --table orders --from 2026-01-01 --to 2026-10-31 --shards 4 | kubectl create -f -
#
# One pod (backfill/), or with --shards N an Indexed Job of N pods (backfill-indexed/) with
# completions = parallelism = --shards = N. --force reloads partitions already loaded.
# --name NAME sets the Job's name (default coldsync-backfill-<table>-<unix time>).
# Works offline: `kubectl kustomize` and `kubectl patch --local` only; KUBECTL overrides kubectl.
set -euo pipefail

usage() {
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

die() {
    echo "backfill-job.sh: $*" >&2
    exit 2
}

table="" from="" to="" shards="" force=0 name=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        --table) table="${2-}"; shift 2 || usage ;;
        --from) from="${2-}"; shift 2 || usage ;;
        --to) to="${2-}"; shift 2 || usage ;;
        --shards) shards="${2-}"; shift 2 || usage ;;
        --name) name="${2-}"; shift 2 || usage ;;
        --force) force=1; shift ;;
        -h | --help) usage ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

# The values go into a JSON patch unquoted-safe only because they are checked here.
[[ "$table" =~ ^[A-Za-z0-9_.-]+$ ]] || die "--table must be a configured table name ([A-Za-z0-9_.-])"
date_re='^[0-9]{4}-[0-9]{2}-[0-9]{2}$'
[[ "$from" =~ $date_re ]] || die "--from must be a date YYYY-MM-DD"
[[ "$to" =~ $date_re ]] || die "--to must be a date YYYY-MM-DD"
[[ -z "$shards" || "$shards" =~ ^[1-9][0-9]{0,2}$ ]] || die "--shards must be a number from 1 to 999"
if [ -z "$name" ]; then
    # A DNS label of at most 63 characters, also with an Indexed Job's "-<index>" added.
    slug=$(printf '%s' "$table" | tr 'A-Z_.' 'a-z--' | cut -c1-24 | sed 's/^-*//; s/-*$//')
    name="coldsync-backfill-${slug:-table}-$(date +%s)"
fi
[[ "$name" =~ ^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$ ]] || die "--name must be a DNS label of at most 52 characters"

args="\"backfill\",\"--table\",\"$table\",\"--from\",\"$from\",\"--to\",\"$to\""
spec=""
overlay=backfill
if [ -n "$shards" ]; then
    args="$args,\"--shards\",\"$shards\""
    spec="\"completions\":$shards,\"parallelism\":$shards,"
    overlay=backfill-indexed
fi
if [ "$force" -eq 1 ]; then
    args="$args,\"--force\""
fi
annotations="\"coldsync/table\":\"$table\",\"coldsync/from\":\"$from\",\"coldsync/to\":\"$to\""
# Strategic merge: the container (merged by name) gets its args, the rest stays as rendered.
patch="{\"metadata\":{\"name\":\"$name\",\"annotations\":{$annotations}},\"spec\":{$spec\"template\":{\"spec\":{\"containers\":[{\"name\":\"coldsync\",\"args\":[$args]}]}}}}"

kubectl=${KUBECTL:-kubectl}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rendered=$("$kubectl" kustomize "$here/$overlay")
printf '%s\n' "$rendered" | "$kubectl" patch --local -f - --type strategic -p "$patch" -o yaml
