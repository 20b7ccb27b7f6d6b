"""A multi-host test bed on one machine (network namespaces on a bridge, sshd on each): see bed.py.

By hand, from the repository root, as root:

    python -m tests.testbed up 3      # hosts h1..h3 at 198.51.100.11.. ; prints how to reach them
    python -m tests.testbed status
    python -m tests.testbed down      # removes everything (also what a killed run left)

Tests: `python -m pytest -q -m testbed tests/testbed` (deselected by default).
"""
