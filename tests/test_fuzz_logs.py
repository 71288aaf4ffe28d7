"""A corrupted-log fuzz set: each corruption of a real tiny partition stops the dataset build
with a ``DataFileError`` that names the file and the field, and nothing downstream is written."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from hrlxf_assets.collect import tournament_logs
from hrlxf_assets.datasets import macro_samples, micro_samples
from hrlxf_assets.partitions import COLLECTION_RUNS
from hrlxf_assets.resources import DataStore
from hrlxf_core.datasets.partition import load_partition
from hrlxf_core.io import DataFileError

EXPERTS = ["PenguinAgent", "AS0", "UltraSuperMiracleSoraFinalAgentZ"]
LOGS_CONFIG = {
    "roster": EXPERTS,
    "n_worlds": 2,
    "n_steps_min": 8,
    "n_steps_max": 9,
    "competitors_per_world": 3,
    "workers": 2,
    "seed": 11,
}


@pytest.fixture(scope="module")
def partition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tournament_logs folder of a real tiny collection (2 worlds, 8-9 days)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    with dg.instance_for_test(temp_dir=str(tmp)) as instance:
        instance.add_dynamic_partitions(COLLECTION_RUNS, ["clean"])
        r = dg.materialize(
            [tournament_logs],
            instance=instance,
            partition_key="clean",
            resources={"data_store": DataStore(data_dir=str(tmp / "data"))},
            run_config={"ops": {"tournament_logs": {"config": LOGS_CONFIG}}},
        )
    assert r.success
    return tmp / "data" / "tournament_logs" / "clean"


# -- corruptions ------------------------------------------------------------------------------------
Corrupt = Callable[[Path], None]


def _edit(table: str, fn: Callable[[pl.DataFrame], pl.DataFrame]) -> Corrupt:
    def corrupt(logs: Path) -> None:
        f = logs / f"{table}.parquet"
        fn(pl.read_parquet(f)).write_parquet(f)

    return corrupt


def _at_row(
    col: str, value: object, row: int = 3, dtype: pl.DataType | None = None
) -> Callable[[pl.DataFrame], pl.DataFrame]:
    """Set ``col`` to ``value`` in one row (the rest unchanged)."""

    def fn(df: pl.DataFrame) -> pl.DataFrame:
        t = dtype or df.schema[col]
        return df.with_columns(
            pl.when(pl.int_range(pl.len()) == row)
            .then(pl.lit(value, dtype=t))
            .otherwise(pl.col(col))
            .alias(col)
        )

    return fn


def _truncate(table: str, keep: float = 0.5) -> Corrupt:
    def corrupt(logs: Path) -> None:
        f = logs / f"{table}.parquet"
        raw = f.read_bytes()
        f.write_bytes(raw[: int(len(raw) * keep)])

    return corrupt


def _delete(table: str) -> Corrupt:
    return lambda logs: (logs / f"{table}.parquet").unlink()


def _vector_nan(col: str) -> Callable[[pl.DataFrame], pl.DataFrame]:
    def fn(df: pl.DataFrame) -> pl.DataFrame:
        vec = df[col].to_list()
        vec[2] = [float("nan"), *vec[2][1:]]
        return df.with_columns(pl.Series(col, vec, dtype=df.schema[col]))

    return fn


def _duplicate_first_row(df: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([df, df.head(1)])


def _swap_rounds_in_a_thread(df: pl.DataFrame) -> pl.DataFrame:
    """Swap the seq of two decisions of one thread made at different rounds (out of order)."""
    key = ["world_id", "agent_id", "negotiation_id"]
    multi = df.filter(pl.col("round").n_unique().over(key) > 1)
    a = multi.row(0, named=True)
    b = multi.filter(
        (pl.col("world_id") == a["world_id"])
        & (pl.col("agent_id") == a["agent_id"])
        & (pl.col("negotiation_id") == a["negotiation_id"])
        & (pl.col("round") != a["round"])
    ).row(0, named=True)
    sa, sb = a["seq"], b["seq"]
    same_day = (
        (pl.col("world_id") == a["world_id"])
        & (pl.col("agent_id") == a["agent_id"])
        & (pl.col("day") == a["day"])
    )
    return df.with_columns(
        pl.when(same_day & (pl.col("seq") == sa))
        .then(sb)
        .when(same_day & (pl.col("seq") == sb))
        .then(sa)
        .otherwise(pl.col("seq"))
        .alias("seq")
    )


def _seq_gap(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.col("seq") + 10_000)
        .otherwise(pl.col("seq"))
        .alias("seq")
    )


CASES: dict[str, tuple[str, str | None, Corrupt]] = {
    # name: (file, field named in the error, corruption)
    "truncated_decisions": ("decisions", None, _truncate("decisions")),
    "truncated_worlds": ("worlds", None, _truncate("worlds", 0.9)),
    "empty_contracts_file": ("contracts", None, _truncate("contracts", 0.0)),
    "missing_negotiations_file": ("negotiations", None, _delete("negotiations")),
    "missing_column_relative_time": (
        "decisions",
        "relative_time",
        _edit("decisions", lambda d: d.drop("relative_time")),
    ),
    "missing_column_balance": ("day_states", "balance", _edit("day_states", lambda d: d.drop("balance"))),
    "wrong_dtype_seq": (
        "decisions",
        "seq",
        _edit("decisions", lambda d: d.with_columns(pl.col("seq").cast(pl.Float64))),
    ),
    "wrong_dtype_n_lines": (
        "day_states",
        "n_lines",
        _edit("day_states", lambda d: d.with_columns(pl.col("n_lines").cast(pl.String))),
    ),
    "nan_balance": ("day_states", "balance", _edit("day_states", _at_row("balance", float("nan")))),
    "inf_storage_cost": (
        "day_states",
        "storage_cost",
        _edit("day_states", _at_row("storage_cost", float("inf"))),
    ),
    "nan_in_commitment_vector": (
        "day_states",
        "supplies_by_offset",
        _edit("day_states", _vector_nan("supplies_by_offset")),
    ),
    "inf_trading_price": (
        "day_states",
        "trading_price_input",
        _edit("day_states", _at_row("trading_price_input", float("inf"))),
    ),
    "null_agent_id": ("decisions", "agent_id", _edit("decisions", _at_row("agent_id", None))),
    "duplicated_world_id": ("worlds", "world_id", _edit("worlds", _duplicate_first_row)),
    "duplicated_agent_day": ("day_states", "day", _edit("day_states", _duplicate_first_row)),
    "unknown_world_status": ("worlds", "status", _edit("worlds", _at_row("status", "exploded", row=0))),
    "negative_inventory": (
        "day_states",
        "inventory_input",
        _edit("day_states", _at_row("inventory_input", -5.0)),
    ),
    "negative_contract_quantity": (
        "contracts",
        "quantity",
        _edit("contracts", _at_row("quantity", -3, row=0)),
    ),
    "negative_offer_quantity": (
        "decisions",
        "recv_q",
        _edit(
            "decisions",
            lambda d: d.with_columns(
                pl.when(pl.col("recv_q").is_not_null())
                .then(-pl.col("recv_q"))
                .otherwise(None)
                .alias("recv_q")
            ),
        ),
    ),
    "zero_contract_price": ("contracts", "unit_price", _edit("contracts", _at_row("unit_price", 0.0, row=0))),
    "nan_offer_price": (
        "decisions",
        "sent_p",
        _edit(
            "decisions",
            lambda d: d.with_columns(
                pl.when(pl.col("sent_p").is_not_null()).then(float("nan")).otherwise(None).alias("sent_p")
            ),
        ),
    ),
    "delivery_before_contract_day": (
        "contracts",
        "delivery_day",
        _edit(
            "contracts", lambda d: d.with_columns((pl.col("day") - 1).cast(pl.Int64).alias("delivery_day"))
        ),
    ),
    "q_max_below_q_min": ("negotiations", "q_max", _edit("negotiations", _at_row("q_max", -1, row=0))),
    "decision_names_unknown_negotiation": (
        "decisions",
        "negotiation_id",
        _edit("decisions", _at_row("negotiation_id", "no-such-negotiation")),
    ),
    "decision_names_unknown_world": (
        "decisions",
        "world_id",
        _edit(
            "decisions",
            lambda d: d.with_columns(
                pl.when(pl.col("world_id") == d["world_id"][0])
                .then(pl.lit("no-such-world"))
                .otherwise(pl.col("world_id"))
                .alias("world_id")
            ),
        ),
    ),
    "duplicated_seq": ("decisions", "seq", _edit("decisions", _duplicate_first_row)),
    "out_of_order_seq": ("decisions", "seq", _edit("decisions", _swap_rounds_in_a_thread)),
    "seq_gap": ("decisions", "seq", _edit("decisions", _seq_gap)),
    "negative_seq": ("decisions", "seq", _edit("decisions", _at_row("seq", -1))),
    "unknown_action": ("decisions", "action", _edit("decisions", _at_row("action", "SHRUG"))),
    "relative_time_above_one": (
        "decisions",
        "relative_time",
        _edit("decisions", _at_row("relative_time", 1.5)),
    ),
    "day_past_the_game": ("day_states", "day", _edit("day_states", _at_row("day", 99))),
    "short_commitment_vector": (
        "day_states",
        "sales_by_offset",
        _edit("day_states", lambda d: d.with_columns(pl.col("sales_by_offset").list.head(40))),
    ),
}


def _corrupted(partition: Path, root: Path, name: str) -> Path:
    logs = root / "tournament_logs" / name
    shutil.copytree(partition, logs)
    CASES[name][2](logs)
    return logs


def test_the_clean_partition_loads(partition: Path) -> None:
    """The fuzz cases start from a partition that passes every check (so each case tests one fault)."""
    tables = load_partition(partition, EXPERTS)
    assert tables.decisions.height > 100 and tables.contracts.height > 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_corrupted_log_names_the_file_and_field_and_writes_nothing(
    partition: Path, tmp_path: Path, name: str
) -> None:
    table, field, _ = CASES[name]
    root = tmp_path / "data"
    logs = _corrupted(partition, root, name)
    with pytest.raises(DataFileError) as err:
        load_partition(logs, EXPERTS)
    assert Path(err.value.path) == logs / f"{table}.parquet", str(err.value)
    assert err.value.field == field, str(err.value)
    assert f"{table}.parquet" in str(err.value) and (field is None or f"(field {field!r})" in str(err.value))
    # the dataset assets stop before writing anything for the partition
    (tmp_path / "inst").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "inst")) as instance:
        instance.add_dynamic_partitions(COLLECTION_RUNS, [name])
        r = dg.materialize(
            [macro_samples, micro_samples],
            instance=instance,
            partition_key=name,
            resources={"data_store": DataStore(data_dir=str(root))},
            run_config={
                "ops": {a: {"config": {"experts": EXPERTS}} for a in ("macro_samples", "micro_samples")}
            },
            raise_on_error=False,
        )
    assert not r.success
    for asset in ("macro_samples", "micro_samples"):
        out = root / asset / name
        assert not out.exists() or not any(out.iterdir()), f"{asset} wrote {list(out.iterdir())}"
