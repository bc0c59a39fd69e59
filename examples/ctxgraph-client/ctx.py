#!/usr/bin/env python3
"""A small ctxgraph client for agents: the Python standard library only.

Inside a NullBox cage the agent's ctxgraph socket is /run/nullbox/ctxgraph.sock. The socket *is*
the agent's identity: every entry written through it is written as this agent, and what it may
read and write is set by its manifest ([capabilities.ctxgraph] read/write key prefixes).

As a library:

    import ctx
    c = ctx.Client()                      # or Client("/path/to/socket")
    h = c.write("notes/today", {"mood": "ok"})["hash"]
    c.read("notes/today")["value"]        # {'mood': 'ok'}
    for e in c.query("notes/"):           # follows the cursor over every page
        print(e["key"], e["value"])

As a command (one JSON object per line on stdout; errors on stderr, exit status 1):

    ctx.py [--socket PATH] write KEY JSON
    ctx.py [--socket PATH] read KEY
    ctx.py [--socket PATH] query PREFIX [--limit N]
    ctx.py [--socket PATH] history KEY
    ctx.py [--socket PATH] by-agent AGENT
    ctx.py [--socket PATH] call METHOD PARAMS_JSON      (any method, raw)

The wire is JSON-RPC 2.0, one compact JSON object per line, at most 64 KiB per message.
"""
import json
import os
import socket
import sys

DEFAULT_SOCKET = "/run/nullbox/ctxgraph.sock"
MAX_MSG = 65536


class Error(Exception):
    """A JSON-RPC error from ctxgraph: .code and .message (and .data, if any)."""

    def __init__(self, code, message, data=None):
        super().__init__("%s (code %s)" % (message, code))
        self.code = code
        self.message = message
        self.data = data


class Client:
    """One connection to ctxgraph. Not thread-safe: one per thread."""

    def __init__(self, path=None, timeout=30.0):
        self.path = path or os.environ.get("NULLBOX_CTXGRAPH_SOCKET") or DEFAULT_SOCKET
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(self.path)
        self.buf = b""
        self.next_id = 1

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _line(self):
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_MSG:
                raise ConnectionError("message from ctxgraph over 64 KiB")
            data = self.sock.recv(MAX_MSG)
            if not data:
                raise ConnectionError("ctxgraph closed the connection")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def _pending_line(self):
        """A line the server already sent, without waiting; None if there is none."""
        try:
            self.sock.settimeout(0.5)
            return self._line()
        except (OSError, ConnectionError):
            return None

    def call(self, method, params=None):
        """Calls METHOD with PARAMS (a dict); returns the result or raises Error."""
        rid = self.next_id
        self.next_id += 1
        req = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            req["params"] = params
        try:
            self.sock.sendall(json.dumps(req, separators=(",", ":")).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            # Refused at connect (say, by peer uid): ctxgraph said why before closing.
            line = self._pending_line()
            if line is None:
                raise
            e = json.loads(line).get("error") or {}
            raise Error(e.get("code"), e.get("message"), e.get("data"))
        while True:
            line = self._line()
            if not line.strip():
                continue
            msg = json.loads(line)
            if "method" in msg:  # a notification: not ours
                continue
            if msg.get("id") not in (rid, None):
                continue
            if "error" in msg:
                e = msg["error"]
                raise Error(e.get("code"), e.get("message"), e.get("data"))
            return msg.get("result")

    # The methods an agent has (docs/CTXGRAPH.md).

    def write(self, key, value):
        """Stores VALUE (any JSON without floats) under KEY. Returns {hash, created, seq, ...}."""
        return self.call("ctx.write", {"key": key, "value": value})

    def write_batch(self, entries):
        """Stores [(key, value), ...] in one transaction: all or none.

        Returns {created: N (new entries), hashes: [...], seqs: [...]} in the order given."""
        return self.call("ctx.write_batch",
                         {"entries": [{"key": k, "value": v} for k, v in entries]})

    def read(self, key):
        """The latest entry with KEY: {hash, agent, key, value, created_at, seq}."""
        return self.call("ctx.read", {"key": key})

    def _pages(self, method, params, limit=None):
        n = 0
        cursor = None
        while True:
            p = dict(params)
            p["limit"] = 1000 if limit is None else min(1000, limit - n)
            if cursor:
                p["cursor"] = cursor
            res = self.call(method, p)
            for e in res["entries"]:
                yield e
                n += 1
            cursor = res.get("cursor")
            if not cursor or (limit is not None and n >= limit):
                return

    def query(self, prefix, limit=None):
        """The latest entry of each key under PREFIX, in key order (every page)."""
        return self._pages("ctx.query", {"prefix": prefix}, limit)

    def history(self, key, limit=None):
        """Every entry of KEY, oldest first."""
        return self._pages("ctx.history", {"key": key}, limit)

    def by_agent(self, agent, limit=None):
        """The entries AGENT wrote (that this agent may see), oldest first."""
        return self._pages("ctx.by_agent", {"agent": agent}, limit)


def _usage():
    sys.stderr.write(__doc__.split("As a command")[1].split("\n\n")[1] + "\n")
    return 2


def main(argv):
    path = None
    if len(argv) >= 2 and argv[0] == "--socket":
        path, argv = argv[1], argv[2:]
    if not argv:
        return _usage()
    cmd, args = argv[0], argv[1:]
    out = sys.stdout
    try:
        with Client(path) as c:
            if cmd == "write" and len(args) == 2:
                res = c.write(args[0], json.loads(args[1]))
            elif cmd == "read" and len(args) == 1:
                res = c.read(args[0])
            elif cmd in ("query", "history", "by-agent") and len(args) in (1, 3):
                limit = None
                if len(args) == 3:
                    if args[1] != "--limit":
                        return _usage()
                    limit = int(args[2])
                fn = {"query": c.query, "history": c.history, "by-agent": c.by_agent}[cmd]
                for e in fn(args[0], limit):
                    out.write(json.dumps(e) + "\n")
                return 0
            elif cmd == "call" and len(args) in (1, 2):
                res = c.call(args[0], json.loads(args[1]) if len(args) == 2 else None)
            else:
                return _usage()
            out.write(json.dumps(res) + "\n")
            return 0
    except Error as e:
        sys.stderr.write("ctx.py: %s: error %s: %s\n" % (cmd, e.code, e.message))
        return 1
    except (OSError, ValueError) as e:
        sys.stderr.write("ctx.py: %s: %s\n" % (cmd, e))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
