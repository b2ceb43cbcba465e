#!/usr/bin/python3
"""Reads `go test -json` on stdin; prints what `go test` would (package
lines, and the whole output of every failing test), then one closing line
`N passed, N failed, N skipped` that counts the tests themselves. Exits 1
if anything failed."""
import json
import sys

passed = failed = skipped = 0
broken = set()  # packages that failed outside any single test
output = {}  # (package, test) -> lines
failing = []
for line in sys.stdin:
    try:
        ev = json.loads(line)
    except ValueError:
        print(line, end="")
        continue
    pkg, test, action = ev.get("Package", ""), ev.get("Test"), ev.get("Action")
    if action == "build-output":
        print(ev.get("Output", ""), end="")
        continue
    if action in ("fail", "build-fail") and not test:
        broken.add(pkg or ev.get("ImportPath", ""))  # a build failure, a panic outside a test, a timeout
        continue
    if action == "output":
        if test:
            output.setdefault((pkg, test), []).append(ev.get("Output", ""))
        else:
            text = ev.get("Output", "")
            if text.startswith(("ok ", "FAIL", "?", "---", "panic", "#")) or "[build failed]" in text:
                print(text, end="")
        continue
    if not test:
        continue
    if action == "pass":
        passed += 1
        output.pop((pkg, test), None)
    elif action == "fail":
        failed += 1
        failing.append((pkg, test))
    elif action == "skip":
        skipped += 1
        print("".join(output.pop((pkg, test), [])), end="")

for key in failing:
    print("".join(output.get(key, [])), end="")
if broken:
    print(f"{len(broken)} package(s) failed outside any single test: {' '.join(sorted(broken))}")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or broken else 0)
