#!/bin/bash
# tests/integration/net.sh: the agent's network namespace has only its own loopback.
#
# Nothing here leaves the machine: the only listener is one this test starts on the host's
# loopback, and the other destinations are unroutable inside the sandbox by construction.
# Unprotected (measured: the probe on the host), the loopback connect succeeds and the listener
# logs it.
#
# Usage: net.sh TEST-NAME (see meson.build).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

LISTENER_PID=""

stop_listener() {
	if [ -n "$LISTENER_PID" ]; then
		kill "$LISTENER_PID" 2>/dev/null || true
		wait "$LISTENER_PID" 2>/dev/null || true
		LISTENER_PID=""
	fi
}

# Starts a TCP listener on the host's 127.0.0.1 that logs each connection it accepts to
# $T/accepted; sets PORT.
start_listener() {
	python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(16)
with open(sys.argv[1], "w") as f:
    f.write(str(s.getsockname()[1]))
while True:
    c, a = s.accept()
    with open(sys.argv[2], "a") as f:
        f.write("%s:%d\n" % a)
    c.close()
' "$T/port" "$T/accepted" &
	LISTENER_PID=$!

	for _ in $(seq 1 50); do
		[ -s "$T/port" ] && break
		sleep 0.1
	done
	[ -s "$T/port" ] || broken "the host listener did not start"
	PORT=$(cat "$T/port")
	: >"$T/accepted"
}

t_net_socket_tcp() {
	expect_attempt ok socket-tcp
}

# A fresh network namespace: "lo", up, and nothing else.
t_net_only_lo() {
	local ifaces
	expect_attempt ok net-ifaces
	ifaces=$(sed -n 's/^| //p' "$OUT" | tr '\n' ';')
	[ "$ifaces" = "lo up;" ] || fail "interfaces: expected 'lo up;', got '$ifaces'"
}

# 127.0.0.1 inside is the sandbox's own loopback: the host's listener is not there.
t_escape_connect_host_loopback() {
	trap 'stop_listener; it_cleanup' EXIT
	start_listener
	expect_attempt ECONNREFUSED connect 127.0.0.1 "$PORT"
	[ ! -s "$T/accepted" ] || fail "the host listener accepted: $(cat "$T/accepted")"
	# The listener did work: a connection from the host is seen.
	python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 3).close()' "$PORT"
	for _ in $(seq 1 30); do
		[ -s "$T/accepted" ] && break
		sleep 0.1
	done
	[ -s "$T/accepted" ] || broken "the host listener saw no connection from the host either"
	stop_listener
}

# The cloud metadata service: no route in the sandbox.
t_escape_connect_metadata() {
	expect_attempt ENETUNREACH connect 169.254.169.254 80
}

# The host's own address on its main interface, where host services listen.
t_escape_connect_host_ip() {
	local ip
	ip=$(ip -4 -o addr show scope global | awk '{ split($4, a, "/"); print a[1]; exit }')
	# without one, a documentation address (TEST-NET-1) is just as unroutable inside
	ip=${ip:-192.0.2.1}
	expect_attempt ENETUNREACH connect "$ip" 22
}

it_main "$@"
