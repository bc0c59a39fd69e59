#!/usr/bin/env python3
"""Reads meson's testlog.json files and fuzz results, prints every failure and skip with its
reason, and ends with the line 'N passed, N failed' (', N skipped'). Exit 1 if anything failed
or if no test ran at all.

usage: summarize.py LABEL=build/meson-logs/testlog.json ... [--extra FILE]
  --extra FILE: lines 'RESULT<TAB>NAME<TAB>DETAIL' (RESULT: OK, FAIL or SKIP) from other runners.
"""
import json
import sys

passed = failed = skipped = 0
problems = []


def last_line(text):
    lines = [l for l in (text or "").strip().splitlines() if l.strip()]
    return lines[-1] if lines else "(no output)"


args = sys.argv[1:]
extra = []
logs = []
while args:
    a = args.pop(0)
    if a == "--extra":
        extra.append(args.pop(0))
    else:
        logs.append(a)

for spec in logs:
    label, _, path = spec.partition("=")
    try:
        f = open(path)
    except OSError as e:
        problems.append(f"FAIL  {label}: no test log ({e.strerror}): the build or the run broke")
        failed += 1
        continue
    with f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            t = json.loads(line)
            name = f"{label}:{t.get('name')}"
            res = t.get("result")
            out = (t.get("stderr") or "") + "\n" + (t.get("stdout") or "")
            if res in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif res == "SKIP":
                skipped += 1
                problems.append(f"SKIP  {name}: {last_line(out)}")
            else:
                failed += 1
                problems.append(f"FAIL  {name} ({res}): {last_line(out)}")

for path in extra:
    try:
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 2:
                    continue
                res, name = parts[0], parts[1]
                detail = parts[2] if len(parts) > 2 else ""
                if res == "OK":
                    passed += 1
                elif res == "SKIP":
                    skipped += 1
                    problems.append(f"SKIP  {name}: {detail}")
                else:
                    failed += 1
                    problems.append(f"FAIL  {name}: {detail}")
    except OSError:
        pass

if problems:
    print("\n".join(problems))
if passed + failed == 0:
    print("no test ran")
    failed = 1
tail = f", {skipped} skipped" if skipped else ""
print(f"{passed} passed, {failed} failed{tail}")
sys.exit(1 if failed else 0)
