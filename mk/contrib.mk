# Installing knockd as a service, router builds, emulated runs.
# `make test-contrib`: shellcheck, systemd-analyze verify/security on contrib/systemd, the
#   OpenWrt init script's start_service against stubbed procd functions, and the static x86_64
#   binary under strace against the unit's system-call filter (builds it and the simulator).
# `make test-cross`: builds the aarch64, armv7, mipsel and mips release binaries, the native
#   simulator and the native knockd, then runs each binary under qemu-user: --version,
#   --check-config, one knock end to end, and one `knockd --knock` against the native knockd.
# `make armv7`, `make mipsel`, `make mips` and `make dist` live in the Makefile, beside
# `make aarch64`.

.PHONY: test-contrib test-cross

test-contrib:
	scripts/test-contrib.sh

test-cross:
	scripts/test-cross.sh
