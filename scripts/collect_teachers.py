"""Collect one partition whose roster is every tracked expert, the 2026 std finalists included
(the teacher study of issue 12). Usage: python scripts/collect_teachers.py PARTITION N_WORLDS;
rerun the same command to resume. The world draw is seeded by the partition key."""

import sys

from hrlxf_core.sim.roster import DEFAULT_EXPERTS

#: every tracked expert: PenguinAgent, the 2025 and the 2026 std finalists (the training experts)
ROSTER = list(DEFAULT_EXPERTS)


def main(partition: str, n_worlds: int) -> int:
    from hrlxf_assets.cli import prepare_instance_env

    prepare_instance_env()
    import dagster as dg

    from hrlxf_assets.definitions import defs
    from hrlxf_assets.partitions import COLLECTION_RUNS

    instance = dg.DagsterInstance.get()
    if not instance.has_dynamic_partition(COLLECTION_RUNS, partition):
        instance.add_dynamic_partitions(COLLECTION_RUNS, [partition])
    config = {"profile": "full", "roster": ROSTER, "n_worlds": n_worlds, "workers": 2}
    result = dg.materialize(
        [defs.get_assets_def(a) for a in ("tournament_logs", "macro_samples", "micro_samples")],
        instance=instance,
        partition_key=partition,
        resources={"data_store": defs.resources["data_store"]},
        run_config={"ops": {"tournament_logs": {"config": config}}},
        raise_on_error=False,
    )
    print(f"collect_teachers: {partition} {'succeeded' if result.success else 'FAILED'}")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
