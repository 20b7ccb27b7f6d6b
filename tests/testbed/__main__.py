"""`python -m tests.testbed up [N] | down | status`: the test bed by hand (see bed.py)."""

from __future__ import annotations

import json
import sys

from .bed import ROOT, TestBed, Unavailable, leftovers, teardown


def main(args: list[str]) -> int:
    cmd = args[0] if args else ""
    if cmd == "up":
        n = int(args[1]) if len(args) > 1 else 3
        bed = TestBed(n)
        try:
            bed.up()
        except Unavailable as e:
            print(f"testbed: error: {e}", file=sys.stderr)
            return 2
        # The lock is this process's; by hand the bed outlives it (down removes it by name).
        for h in bed.hosts:
            print(f"{h.name} {h.addr}  ip netns exec {h.ns} ...   "
                  f"ssh -i {bed.ssh_key} {bed.ssh_args()} root@{h.addr}   (files: {h.root})")
        return 0
    if cmd == "down":
        teardown()
        import shutil
        shutil.rmtree(ROOT, ignore_errors=True)
        print("testbed: down")
        return 0
    if cmd == "status":
        ns, links = leftovers()
        state = ROOT / "state.json"
        print(json.dumps({"namespaces": ns, "links": links,
                          "hosts": json.loads(state.read_text())["hosts"] if state.exists() else {}}))
        return 0
    print("usage: python -m tests.testbed up [N] | down | status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
