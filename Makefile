# Everything a user or CI runs goes through here; each target installs what it needs first.
.PHONY: setup build demo demo-serve test test-rgw compose-test bench clean

setup:
	@scripts/bootstrap.sh

build: setup

demo: setup
	@node scripts/demo.mjs

# The demo, then the S3 server keeps running (Ctrl-C stops it) with the commands to try against it.
demo-serve: setup
	@node scripts/demo.mjs --serve

test: setup
	@scripts/test.sh

test-rgw: setup
	@scripts/test.sh --rgw

# The docker/ deliverable run for real: installs and starts its own Docker engine (needs root).
compose-test: setup
	@scripts/compose-test.sh

bench: setup
	@scripts/bench.sh

clean:
	rm -rf .tmp packages/*/dist packages/*/tsconfig.tsbuildinfo
