"""Collect one partition whose roster is every tracked expert, the 2026 std finalists included
(the teacher study of issue 12). Usage: python scripts/collect_teachers.py PARTITION N_WORLDS;
rerun the same command to resume."""
import sys

from hrlxf_assets.cli import prepare_instance_env

prepare_instance_env()
import dagster as dg
from hrlxf_assets.definitions import defs
from hrlxf_assets.partitions import COLLECTION_RUNS

ROSTER = ["PenguinAgent", "AS0", "XenoSotaAgent", "UltraSuperMiracleSoraFinalAgentZ", "PriceTrendStdAgent",
          "TakaLinkAgent", "COW", "SBD", "HorizonAwareAgent", "Rohn", "HeyStd"]
if __name__ == "__main__":
    partition, n = sys.argv[1], int(sys.argv[2])
    instance = dg.DagsterInstance.get()
    if not instance.has_dynamic_partition(COLLECTION_RUNS, partition):
        instance.add_dynamic_partitions(COLLECTION_RUNS, [partition])
    r = dg.materialize([defs.get_assets_def(a) for a in ["tournament_logs", "macro_samples", "micro_samples"]],
        instance=instance, partition_key=partition, resources={"data_store": defs.resources["data_store"]},
        run_config={"ops": {"tournament_logs": {"config": {"profile": "full", "roster": ROSTER, "n_worlds": n, "workers": 2}}}},
        raise_on_error=False)
    print("success", r.success)
