"""NullBox demo agent: tries what an untrusted agent might, and prints what the sandbox allowed.

Every line is the kernel's own answer (an errno), not a guess: this script holds no knowledge of
the policy it runs under.
"""
import ctypes
import errno
import os
import socket
import subprocess

DATA = "/var/lib/nullbox-demo/data"
OUT = "/var/lib/nullbox-demo/out"
libc = ctypes.CDLL("libc.so.6", use_errno=True)
results = []


def attempt(what, expect_allowed, fn):
    try:
        detail = fn()
        got = "allowed"
    except OSError as e:
        detail = errno.errorcode.get(e.errno, str(e.errno))
        got = "denied"
    ok = (got == "allowed") == expect_allowed
    results.append(ok)
    mark = "ok " if ok else "BAD"
    print(f"[{mark}] {what:<44} {got:<8} {detail or ''}", flush=True)


def read(path):
    with open(path) as f:
        return f"{len(f.read())} bytes"


def write(path):
    with open(path, "w") as f:
        f.write("written by the demo agent\n")
    return path


def syscall_result(r):
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return "0"


def connect(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((host, port))
    finally:
        s.close()
    return f"{host}:{port}"


def resolve(name):
    try:
        return socket.gethostbyname(name)
    except socket.gaierror as e:
        raise OSError(errno.EHOSTUNREACH, str(e))


def shell():
    subprocess.run(["/bin/sh", "-c", "true"], check=True)
    return "/bin/sh ran"


print(f"NullBox demo agent: uid={os.getuid()} pid={os.getpid()} host={socket.gethostname()}")
attempt(f"read {DATA}/notes.txt", True, lambda: read(f"{DATA}/notes.txt"))
attempt(f"write {OUT}/report.txt", True, lambda: write(f"{OUT}/report.txt"))
attempt(f"write into the read-only {DATA}", False, lambda: write(f"{DATA}/x"))
attempt("read /etc/shadow", False, lambda: read("/etc/shadow"))
attempt("read /proc/1/environ (init's memory)", False, lambda: read("/proc/1/environ"))
attempt("list /home", False, lambda: str(os.listdir("/home")))
attempt("resolve api.example.com (no network granted)", False, lambda: resolve("api.example.com"))
attempt("connect to 169.254.169.254:80 (metadata)", False, lambda: connect("169.254.169.254", 80))
attempt("ptrace(PTRACE_TRACEME)", False, lambda: syscall_result(libc.ptrace(0, 0, None, None)))
attempt("mount tmpfs on /tmp", False,
        lambda: syscall_result(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, None)))
attempt("unshare(CLONE_NEWUSER)", False, lambda: syscall_result(libc.unshare(0x10000000)))
attempt("run a shell (shell = false)", False, shell)
bad = results.count(False)
print(f"demo: {len(results) - bad} of {len(results)} behaved as the manifest says")
raise SystemExit(1 if bad else 0)
