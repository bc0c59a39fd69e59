#!/bin/bash
# tests/integration/limits.sh: the manifest's pids, memory and CPU limits, enforced by cgroups.
#
# Unprotected (measured: the probe outside any sandbox): the fork bomb reaches its cap ("ok"),
# the memory bomb gets all it asks for ("ok", exit 0), the CPU hog gets ~100% of a CPU.
#
# Usage: limits.sh TEST-NAME (see meson.build).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

# ---- pids ----

# With max_pids = 16 the bomb's fork() fails with EAGAIN (pids.max) long before the cap.
t_limit_forkbomb() {
	local n
	MAX_PIDS=16
	it_write_manifest
	expect_attempt EAGAIN forkbomb 1000
	n=$(value_of forked)
	[ -n "$n" ] && [ "$n" -lt 16 ] ||
		fail "forkbomb: expected fewer than 16 processes forked (max_pids = 16), got '$n'"
	# The host is fine: it can still fork, and the sandbox's processes are gone (it_check_clean).
	bash -c true || die "the host cannot fork after the fork bomb"
}

# Control: an ordinary number of children is allowed.
t_limit_fork_ok() {
	expect_attempt ok forkbomb 8
	[ "$(value_of forked)" = 8 ] || fail "forkbomb 8: expected forked=8, got '$(value_of forked)'"
}

# ---- memory ----

# 512 MiB against max_memory_mb = 32: the OOM killer ends the agent (SIGKILL, 137). There is no
# swap on top of the limit (memsw / memory.swap.max), so it cannot page its way out either.
t_limit_membomb() {
	local oom status sig
	MAX_MEMORY_MB=32
	it_write_manifest
	run_cage --json -- /agent/probe membomb 512
	grep -q '^membomb: ok' "$OUT" && fail "membomb: the agent got 512 MiB with max_memory_mb = 32"
	expect_rc 137 "the agent killed by SIGKILL"
	status=$(json_field status)
	sig=$(json_field signal)
	oom=$(json_field oom_kills)
	[ "$status" = signaled ] || fail "--json status: expected 'signaled', got '$status'"
	[ "$sig" = 9 ] || fail "--json signal: expected 9, got '$sig'"
	[ -n "$oom" ] && [ "$oom" -ge 1 ] || fail "--json oom_kills: expected >= 1, got '$oom'"
}

# Control: well under the limit is fine.
t_limit_memory_ok() {
	MAX_MEMORY_MB=64
	it_write_manifest
	expect_attempt ok membomb 16
}

# ---- CPU ----

# max_cpu_percent = 20 of one CPU, a 2 s busy loop: measured by the probe itself (its CPU time
# over its wall time) and by cage (--json cpu_usec / wall_usec, from the cgroup).
t_limit_cpuhog() {
	local pct cpu wall jpct
	MAX_CPU_PERCENT=20
	it_write_manifest
	run_cage --json -- /agent/probe cpuhog 2
	expect_verdict cpuhog ok
	pct=$(value_of cpu_percent)
	[ -n "$pct" ] && [ "$pct" -le 30 ] ||
		fail "cpuhog: the probe got ${pct}% of a CPU over 2 s, expected <= 30% (max_cpu_percent = 20)"
	[ "$pct" -ge 5 ] || fail "cpuhog: the probe got only ${pct}% of a CPU, the measurement is off"
	cpu=$(json_field cpu_usec)
	wall=$(json_field wall_usec)
	[ -n "$cpu" ] && [ -n "$wall" ] && [ "$wall" -gt 0 ] ||
		fail "--json: expected cpu_usec and wall_usec > 0, got '$cpu' and '$wall'"
	jpct=$((cpu * 100 / wall))
	[ "$jpct" -lt 35 ] ||
		fail "--json: cpu_usec/wall_usec = $cpu/$wall = ${jpct}%, expected < 35% (max_cpu_percent = 20)"
	echo "cpuhog: probe ${pct}%, cage --json ${jpct}% ($cpu/$wall us)"
}

# Control: with max_cpu_percent = 100 the same loop gets (nearly) a whole CPU, so the test above
# measures the quota and not a slow machine.
t_limit_cpu_unthrottled() {
	local pct
	MAX_CPU_PERCENT=100
	it_write_manifest
	expect_attempt ok cpuhog 1
	pct=$(value_of cpu_percent)
	[ -n "$pct" ] && [ "$pct" -ge 60 ] ||
		fail "cpuhog: expected >= 60% of a CPU with max_cpu_percent = 100, got '$pct'"
}

it_main "$@"
