# Installing knockd as a service, router builds, emulated runs.
# `make test-contrib`: shellcheck, systemd-analyze verify/security on contrib/systemd, the
#   OpenWrt init script's start_service against stubbed procd functions, and the static x86_64
#   binary under strace against the unit's system-call filter (builds it and the simulator).
# `make test-cross`: builds the aarch64 and armv7 release binaries and the native simulator,
#   then runs each binary under qemu-user: --version, --check-config, one knock end to end.
# `make armv7` and `make dist` live in the Makefile, beside `make aarch64`.

.PHONY: test-contrib test-cross

test-contrib:
	scripts/test-contrib.sh

test-cross:
	scripts/test-cross.sh
