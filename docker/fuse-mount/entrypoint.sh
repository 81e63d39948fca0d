#!/bin/sh
# Entrypoint of the fuse-mount image: `fuse-mount-entrypoint MOUNTPOINT [OPTIONS...]`.
# Clears a dead mount left at MOUNTPOINT by a predecessor that was killed without unmounting, then
# hands over to the CLI with exec, so SIGTERM reaches it and it unmounts cleanly.
set -eu

# The image's CLI; overridable so the same entrypoint runs outside the image (test/flow).
bin=${FUSE_MOUNT_BIN:-/app/bin/fuse-mount.js}

# `--help`, `--version` and other first arguments that are not a mountpoint go straight to the CLI.
case "${1:-}" in
  '' | -*) exec node "$bin" "$@" ;;
esac
mountpoint=$1

# A FUSE mount whose process died answers every access with ENOTCONN ("Transport endpoint is not
# connected"). It is shared with the host (rshared/Bidirectional), so it outlives the container
# and would keep the new mount from being made.
if ! stat -- "$mountpoint" >/dev/null 2>&1 && fusermount -uz "$mountpoint" 2>/dev/null; then
  echo "fuse-mount-entrypoint: cleared a dead mount at $mountpoint" >&2
fi
mkdir -p -- "$mountpoint"

exec node "$bin" "$@"
