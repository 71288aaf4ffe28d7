"""Collect one partition whose roster is every tracked expert, the 2026 std finalists included
(the teacher study of issue 12). Usage: python scripts/collect_teachers.py PARTITION N_WORLDS;
rerun the same command to resume. The world draw is seeded by the partition key.

The same as ``hrlxf collect PARTITION --profile full --roster <DEFAULT_EXPERTS> --n-worlds N
--workers 2``: this script only spells out the roster."""

import sys

from hrlxf_core.sim.roster import DEFAULT_EXPERTS

#: every tracked expert: PenguinAgent, the 2025 and the 2026 std finalists (the training experts)
ROSTER = list(DEFAULT_EXPERTS)


def main(partition: str, n_worlds: int) -> int:
    from hrlxf_assets.cli import main as hrlxf

    args = ["collect", partition, "--profile", "full", "--roster", ",".join(ROSTER)]
    return hrlxf([*args, "--n-worlds", str(n_worlds), "--workers", "2"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
