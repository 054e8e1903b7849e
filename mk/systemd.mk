# `make test-systemd`: contrib/systemd under a real systemd as PID 1. Debootstraps a minimal
# Debian bookworm once into target/systemd/bookworm (reused while it exists), boots it with
# systemd-nspawn, installs knockd by the README's steps and checks the units against
# lighthouse-sim on the host's loopback (scripts/test-systemd.sh says what and how). Needs root.

.PHONY: test-systemd

test-systemd:
	scripts/test-systemd.sh
