#!/bin/sh
# The container flow of the example monitor: copy one workspace out of the read-only workspaces
# mount into a scratch directory, check that the sync filter kept dependencies, git data and
# secrets out of it, install dependencies in the copy (they never reach the mount or the bucket),
# then run the app from the copy.
#
# The check asks the filter itself (`sync-agent files --why`) about every node_modules, .git and
# .env in the copy: one the workspace's own rules include (a `!.env` or `!/node_modules/` in its
# .gitignore) is fine; one the rules exclude means the source is not what the filter synced. The
# copy has no git index, so a file git tracks under an ignored name (synced whatever the ignore
# rules say) looks excluded here: FILTER_CHECK=0 skips the check for such workspaces. `.git` is
# never synced, whatever the rules. Without a sync-agent command the check only warns.
#
# Usage: run-workspace.sh WORKSPACE [COMMAND [ARG...]]
#   COMMAND runs in the copy (e.g. `npm start`); without it the script stops after the install.
# Environment:
#   SOURCE_DIR    the read-only workspaces root (default /workspaces)
#   SCRATCH_DIR   the copy is made at SCRATCH_DIR/WORKSPACE, replacing an older one (default: a new temp dir)
#   WAIT_SECONDS  how long to wait for WORKSPACE to appear under SOURCE_DIR (default 120)
#   NPM_INSTALL   1: run `npm install` when the copy has a package.json; 0: skip it (default 1)
#   FILTER_CHECK  1: refuse a copy holding what the sync filter excludes; 0: skip the check (default 1)
#   SYNC_AGENT    the sync-agent command that answers for the filter (default: sync-agent on PATH)
#   WATCH         1: with COMMAND, keep the copy up to date and restart COMMAND on every push
#                 (watch-workspace.mjs, next to this script; it reads EVENTS_URL, POLL_SECONDS); 0: run once (default 0)
# Exit status: 0 done (or COMMAND's own status), 2 bad usage, 3 the workspace did not appear,
#   4 the copy holds git data, or node_modules or .env that the filter excludes.
set -eu

say() { echo "run-workspace: $*"; }
die() { status=$1; shift; echo "run-workspace: $*" >&2; exit "$status"; }

[ "$#" -ge 1 ] || die 2 "usage: run-workspace.sh WORKSPACE [COMMAND [ARG...]]"
workspace=$1
shift
case $workspace in
  '' | .* | */*) die 2 "invalid workspace name '$workspace': a directory name under the workspaces root" ;;
esac

source_dir=${SOURCE_DIR:-/workspaces}
wait_seconds=${WAIT_SECONDS:-120}
npm_install=${NPM_INSTALL:-1}
filter_check=${FILTER_CHECK:-1}
sync_agent=${SYNC_AGENT:-sync-agent}
case $wait_seconds in
  '' | *[!0-9]*) die 2 "WAIT_SECONDS must be a whole number of seconds, not '$wait_seconds'" ;;
esac
case $npm_install in
  0 | 1) ;;
  *) die 2 "NPM_INSTALL must be 0 or 1, not '$npm_install'" ;;
esac
case $filter_check in
  0 | 1) ;;
  *) die 2 "FILTER_CHECK must be 0 or 1, not '$filter_check'" ;;
esac

# The mount shows a workspace only once its first push is published, so its appearance means a
# complete snapshot.
src=$source_dir/$workspace
waited=0
while [ ! -d "$src" ]; do
  if [ "$waited" -ge "$wait_seconds" ]; then
    die 3 "workspace '$workspace' did not appear under $source_dir within ${wait_seconds}s: is the sync agent pushing it and the mount up?"
  fi
  if [ "$waited" -eq 0 ]; then say "waiting for $src"; fi
  sleep 1
  waited=$((waited + 1))
done

if [ -n "${SCRATCH_DIR:-}" ]; then
  mkdir -p -- "$SCRATCH_DIR"
  dest=$SCRATCH_DIR/$workspace
  rm -rf -- "$dest"
else
  dest=$(mktemp -d)/$workspace
fi
mkdir -- "$dest"
cp -R -- "$src/." "$dest/"
# The copy is the app's own working tree: writable whatever modes the read-only mount reports.
chmod -R u+w -- "$dest"
say "copied $(find "$dest" -type f | wc -l | tr -d ' ') files from $src to $dest"

# Paths as `files` prints them: <workspace>/<path inside it>.
found=$(cd "$dest" && find . \( -name node_modules -o -name .git -o -name .env \) -prune -print \
  | while IFS= read -r p; do printf '%s/%s\n' "$workspace" "${p#./}"; done)
listed=$(printf '%s\n' "$found" | tr '\n' ' ')
listed=${listed% }
if [ -z "$found" ]; then
  say "no node_modules, .git or .env in the synced copy"
elif [ "$filter_check" = 0 ]; then
  say "FILTER_CHECK=0: not checking the synced copy's $listed"
else
  gitdata=$(printf '%s\n' "$found" | grep -E '(^|/)\.git$' || true)
  if [ -n "$gitdata" ]; then
    die 4 "the copy at $dest holds git data, which is never synced: is $source_dir the workspaces mount?
$gitdata"
  fi
  if ! command -v "$sync_agent" >/dev/null 2>&1; then
    say "warning: no $sync_agent command to ask the sync filter (set SYNC_AGENT); not checked: $listed"
  else
    # The filter's answer for the copy: its own .gitignore files and the defaults (no git index here).
    why=$(printf '%s\n' "$found" | while IFS= read -r p; do
      "$sync_agent" files --why --git-index false --root "$(dirname "$dest")" -- "$p" || exit 1
    done) || die 4 "could not ask the sync filter about the copy at $dest (see the error above)"
    excluded=$(printf '%s\n' "$why" | grep ': excluded' || true)
    if [ -n "$excluded" ]; then
      die 4 "the copy at $dest holds what the sync filter excludes (is $source_dir the workspaces mount?):
$excluded
(a file git tracks is synced whatever the ignore rules say, and the copy has no git index to tell: if git tracks these in the workspace, run with FILTER_CHECK=0)"
    fi
    say "kept by the workspace's own rules:
$why"
  fi
fi

if [ "$npm_install" = 1 ] && [ -f "$dest/package.json" ]; then
  say "npm install in $dest"
  (cd "$dest" && npm install --no-audit --no-fund)
fi

if [ "$#" -gt 0 ]; then
  if [ "${WATCH:-0}" = 1 ]; then
    exec node "$(dirname "$0")/watch-workspace.mjs" "$workspace" "$dest" "$@"
  fi
  say "running $* in $dest"
  cd "$dest"
  exec "$@"
fi
say "ready in $dest"
