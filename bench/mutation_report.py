"""The mutation score of `make mutation`, per module, from mutmut's results.

Score = killed (or timed out) / (all mutants - those judged equivalent).
A mutant "with no tests" counts as a survivor: nothing would notice it.
Equivalent mutants (no test could tell them apart from the original) are
listed with a reason in tests/mutation_equivalent.txt, one `name  reason` a
line, and printed here so that the judgement can be read and argued with.
Exits 1 when a module is under its target.
"""

import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"keys.access": 95.0, "keys.guard": 90.0, "keys.services": 90.0}
KILLED = {"killed", "timeout"}


def main() -> int:
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "mutmut"), "results", "--all", "true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    results = {}
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            results[name] = status
    equivalent = {}
    listed = ROOT / "tests" / "mutation_equivalent.txt"
    for line in listed.read_text().splitlines() if listed.exists() else []:
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.strip().partition(" ")
            equivalent[name] = reason.strip()
    failed = False
    for module, target in TARGETS.items():
        mine = {n: s for n, s in results.items() if n.startswith(module + ".")}
        counted = {n: s for n, s in mine.items() if n not in equivalent}
        killed = sum(1 for s in counted.values() if s in KILLED)
        score = 100 * killed / len(counted) if counted else 0.0
        statuses = Counter(mine.values())
        mark = "ok" if score >= target else "UNDER TARGET"
        print(f"{module}: {score:.1f}% of {len(counted)} non-equivalent mutants killed (target {target:g}%) {mark}")
        print(f"  all statuses: {dict(statuses)}; judged equivalent: {len(mine) - len(counted)}")
        for name, status in sorted(counted.items()):
            if status not in KILLED:
                print(f"  survivor ({status}): {name}")
        failed |= score < target
    if equivalent:
        print("judged equivalent:")
        for name, reason in sorted(equivalent.items()):
            print(f"  {name}: {reason}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
