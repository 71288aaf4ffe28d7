"""The Ray backend of the collection runner (optional ``scale`` extra: ``pip install -e ".[scale]"``).

Why Ray: a useful training set is thousands of worlds of 20-150 core-seconds each, more than one
machine runs in a day; Ray runs the same code on a laptop (a local instance) and on a cluster
(an address), and Dagster stays the control plane (``dagster-ray`` resource in ``hrlxf_assets``).

The guarantees are those of the local pool (:mod:`hrlxf_core.sim.collect`), kept as follows:

- one world per worker process: tasks run with ``max_calls=1`` (a fresh worker per world, as the
  local pool forks one per world: no agent or scml state leaks from one world into the next);
- fixed hash seed: ``PYTHONHASHSEED`` is set in the task's ``runtime_env`` (the interpreter reads
  it at start) and checked by the world body;
- per-world wall-clock limit, counted from the moment the world starts on a worker (a small
  actor receives the start, so a world queued on a busy or still-scaling cluster is not timed
  out for waiting); a world over the limit is killed with ``ray.cancel(force=True)`` (which
  kills its worker process) and recorded ``timed_out``;
- failure isolation: a world that raises is recorded ``failed`` by the world body itself; a task
  whose worker dies (segfault, OOM kill, lost node) is recorded ``failed`` with Ray's error; no
  task is retried by Ray (``max_retries=0``): a rerun with ``retry_failed`` decides that;
- atomic output and resume: the task *returns* the world's tables and the driver writes the part
  with the same atomic writer as the local pool. No shared filesystem is needed between the
  driver and the Ray nodes, and a part exists only once its world is complete, so killing the
  driver loses at most the worlds in flight and a rerun skips the rest.

Ray itself must not write under ``$HOME``: a Ray instance started here keeps its session files in
a short temp directory (Unix socket paths are limited to 107 bytes) and, since Ray 2.59 enables
token authentication for local instances and would save a generated token to
``~/.ray/auth_token``, gets a token file of ours in that directory instead (see
:func:`local_ray_env`).
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from types import ModuleType
from typing import Any

from hrlxf_core.sim.parts import write_crash_part, write_part, write_timeout_part
from hrlxf_core.sim.worker import PYTHONHASHSEED, SCALE_EXTRA_HINT, world_tables
from hrlxf_core.sim.world_spec import WorldSpec

#: Ray's session directory holds Unix sockets ``<temp>/session_<date>_<pid>/sockets/plasma_store``
#: (~66 characters below the temp dir) and Linux caps socket paths at 107 bytes.
MAX_TEMP_DIR_CHARS = 40
#: How long a submitted world may wait for a Ray worker before the run stops (at least).
MIN_START_WAIT_S = 600.0


def require_ray() -> ModuleType:
    """Import Ray, or fail with the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError(
            f"the Ray backend needs Ray, which is not installed: install the scale extra ({SCALE_EXTRA_HINT})"
        ) from exc
    return ray


def default_temp_dir() -> Path:
    """Where a local Ray instance keeps its session files: ``$HRLXF_RAY_TMPDIR``, else
    ``<system temp>/hrlxf-ray-<uid>`` (per user, local disk: never ``$HOME`` nor the data
    directory, which may be a network mount where Unix sockets do not work)."""
    env = os.environ.get("HRLXF_RAY_TMPDIR")
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"hrlxf-ray-{os.getuid()}"


def _token_file(temp_dir: Path) -> Path:
    """A token for local instances, created once (0600) and then reused: Ray caches the token it
    loaded in the driver process, so a second instance started by the same process must find the
    same token."""
    path = temp_dir / "auth_token"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made earlier, or just now by a concurrent run
        return path
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return path


def local_ray_env(temp_dir: Path) -> dict[str, str]:
    """Environment for a Ray instance that this process starts.

    Token authentication stays on (Ray's default since 2.59 for local instances: it keeps other
    local users off the instance's ports), but with a token file in ``temp_dir`` rather than
    the ``~/.ray/auth_token`` Ray would generate. An explicit ``RAY_AUTH_MODE`` (``disabled`` or
    ``token``) and a token given by ``RAY_AUTH_TOKEN``/``RAY_AUTH_TOKEN_PATH`` are respected.
    Usage statistics are off (no reporting from a collection run)."""
    env = {"RAY_TMPDIR": str(temp_dir)}
    if "RAY_USAGE_STATS_ENABLED" not in os.environ:
        env["RAY_USAGE_STATS_ENABLED"] = "0"
    mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower()
    if mode in ("", "token"):
        env["RAY_AUTH_MODE"] = "token"
        if not os.environ.get("RAY_AUTH_TOKEN") and not os.environ.get("RAY_AUTH_TOKEN_PATH"):
            env["RAY_AUTH_TOKEN_PATH"] = str(_token_file(temp_dir))
    return env


def is_local_address(address: str | None) -> bool:
    """Whether ``ray.init(address=...)`` starts a new instance here (``None``/``local`` with no
    ``RAY_ADDRESS`` set) rather than connecting to an existing cluster."""
    address = address if address is not None else (os.environ.get("RAY_ADDRESS") or None)
    return address in (None, "", "local")


def ray_init_args(
    address: str | None = None,
    num_cpus: int | None = None,
    temp_dir: Path | None = None,
    extra: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """``ray.init`` keyword arguments and the environment to set first, for a new local
    instance or a connection to the cluster at ``address`` (``RAY_ADDRESS`` when ``None``).

    A connection to an existing cluster gets no local-only arguments (Ray refuses ``num_cpus``
    or ``_temp_dir`` then) and leaves authentication to the user's ``RAY_AUTH_*`` variables,
    which must match the cluster's. ``extra`` (user options) wins over the defaults here."""
    kwargs: dict[str, Any] = {
        "log_to_driver": False,  # world errors are recorded in the parts; keep the step log readable
        "runtime_env": {"env_vars": {"PYTHONHASHSEED": PYTHONHASHSEED}},
    }
    env: dict[str, str] = {}
    if is_local_address(address):
        temp = (temp_dir or default_temp_dir()).resolve()
        if len(str(temp)) > MAX_TEMP_DIR_CHARS:
            raise ValueError(
                f"Ray temp dir {str(temp)!r} (setting HRLXF_RAY_TMPDIR / temp_dir) is {len(str(temp))} "
                f"characters; Ray's Unix socket paths below it must fit in 107 bytes: use a path of at "
                f"most {MAX_TEMP_DIR_CHARS} characters"
            )
        temp.mkdir(mode=0o700, parents=True, exist_ok=True)
        # "local" rather than None: ray.init(address=None) would follow a RAY_ADDRESS set later
        kwargs.update(address="local", _temp_dir=str(temp), include_dashboard=False)
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        env = local_ray_env(temp)
    else:
        kwargs["address"] = address if address is not None else os.environ["RAY_ADDRESS"]
    for key, value in (extra or {}).items():
        if key == "runtime_env":
            merged = {**kwargs["runtime_env"], **value}
            merged["env_vars"] = {**kwargs["runtime_env"]["env_vars"], **(value.get("env_vars") or {})}
            kwargs["runtime_env"] = merged
        else:
            kwargs[key] = value
    return kwargs, env


def _reload_ray_config() -> None:
    """Ray reads its ``RAY_*`` variables into a cached config when it is imported (and caches the
    token it loaded); after they change, reload both, as Ray's own token setup does."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@contextmanager
def ray_environ(env: Mapping[str, str]) -> Iterator[None]:
    """Set ``env`` in ``os.environ`` (where Ray and the processes it starts read it) and in Ray's
    cached config; restore both at exit, so that later Ray sessions of this process are not
    affected."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    _reload_ray_config()
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _reload_ray_config()


@contextmanager
def ray_session(
    address: str | None = None, num_cpus: int | None = None, temp_dir: Path | None = None
) -> Iterator[ModuleType]:
    """Ray, initialised: the caller's connection when there is one (the Dagster resource's),
    else a new local instance or a connection to ``address``/``RAY_ADDRESS``, shut down at exit."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs, env = ray_init_args(address, num_cpus, temp_dir)
    with ray_environ(env):
        ray.init(**kwargs)
        try:
            yield ray
        finally:
            ray.shutdown()


# --------------------------------------------------------------------------- worker side


class StartBoard:
    """Actor that hears when each world starts on a worker; the driver drains it every poll and
    starts the world's clock then (its own clock: node clocks may differ)."""

    def __init__(self) -> None:
        self._started: list[str] = []

    def started(self, world_id: str) -> None:
        self._started.append(world_id)

    def drain(self) -> list[str]:
        out, self._started = self._started, []
        return out


def ray_world(spec_json: str, run_id: str, data_dir: str, tracked: bool, board: Any) -> dict[str, Any]:
    """Ray task body: announce the start, run the world, return its tables to the driver.

    The world's scratch and sandbox files go to the data directory when this node sees it (one
    machine, or a shared filesystem), else to a node-local temp directory: a cluster node need
    not mount the driver's data directory, since the driver writes the part."""
    board.started.remote(WorldSpec.from_json(spec_json).world_id)
    scratch_root = Path(data_dir)
    if not scratch_root.is_dir():
        scratch_root = Path(tempfile.gettempdir()) / f"hrlxf-scratch-{os.getuid()}"
    return world_tables(spec_json, run_id, str(scratch_root), tracked)


# --------------------------------------------------------------------------- driver side


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"Ray task failed ({type(exc).__name__}): {text[-4000:]}"


def run_on_ray(
    todo: list[WorldSpec],
    out_dir: Path,
    run_id: str,
    data_dir: Path,
    workers: int,
    world_timeout_s: float,
    tracked: bool,
    on_done: Callable[[str, float], None],
    poll_s: float = 0.2,
    start_wait_s: float | None = None,
) -> None:
    """Run ``todo`` (in this order) as Ray tasks, at most ``workers`` in flight, writing each
    world's part as it finishes and calling ``on_done(world_id, elapsed)``.

    A world not started within ``start_wait_s`` (default: the larger of the world timeout and
    ten minutes) stops the run with an error: the cluster has no free CPU for it, and recording
    the world as failed would be wrong. Finished parts stay; a rerun resumes."""
    start_wait_s = start_wait_s if start_wait_s is not None else max(world_timeout_s, MIN_START_WAIT_S)
    with ray_session() as ray:
        board = ray.remote(num_cpus=0)(StartBoard).remote()
        task = ray.remote(
            num_cpus=1,
            max_calls=1,
            max_retries=0,
            runtime_env={"env_vars": {"PYTHONHASHSEED": PYTHONHASHSEED}},
        )(ray_world)
        queue = list(todo)
        # ref -> (spec, submitted at, started at or None), by the driver's clock
        inflight: dict[Any, tuple[WorldSpec, float, float | None]] = {}
        by_id: dict[str, Any] = {}
        try:
            while queue or inflight:
                while queue and len(inflight) < workers:
                    spec = queue.pop(0)
                    ref = task.options(name=f"hrlxf-world-{spec.world_id}").remote(
                        spec.to_json(), run_id, str(data_dir), tracked, board
                    )
                    inflight[ref] = (spec, time.perf_counter(), None)
                    by_id[spec.world_id] = ref
                # starts first: a world's clock then starts at least one poll before its end
                for wid in ray.get(board.drain.remote()):
                    ref = by_id.get(wid)
                    if ref in inflight and inflight[ref][2] is None:
                        spec, submitted, _ = inflight[ref]
                        inflight[ref] = (spec, submitted, time.perf_counter())
                ready, _ = ray.wait(list(inflight), num_returns=len(inflight), timeout=poll_s)
                now = time.perf_counter()
                for ref in ready:
                    spec, submitted, started = inflight.pop(ref)
                    elapsed = now - (started if started is not None else submitted)
                    _finish(ray, ref, out_dir, spec, run_id, elapsed)
                    on_done(spec.world_id, elapsed)
                for ref, (spec, submitted, started) in list(inflight.items()):
                    if started is None:
                        if now - submitted > start_wait_s:
                            raise RuntimeError(
                                f"world {spec.world_id} waited {now - submitted:.0f}s for a Ray worker "
                                f"without starting: the Ray cluster has no free CPU for it (see `ray status`); "
                                "finished worlds are on disk, rerun the partition to resume"
                            )
                        continue
                    elapsed = now - started
                    if elapsed <= world_timeout_s:
                        continue
                    ray.cancel(ref, force=True)  # kills the worker process running the world
                    del inflight[ref]
                    _finish(ray, ref, out_dir, spec, run_id, elapsed, timeout_s=world_timeout_s)
                    on_done(spec.world_id, elapsed)
        finally:
            for ref in inflight:
                with suppress(Exception):
                    ray.cancel(ref, force=True)
            with suppress(Exception):
                ray.kill(board)


def _finish(
    ray: ModuleType,
    ref: Any,
    out_dir: Path,
    spec: WorldSpec,
    run_id: str,
    elapsed: float,
    timeout_s: float | None = None,
) -> None:
    """Write the part of a finished task (its tables), of a task that failed (Ray's error) or,
    with ``timeout_s``, of a task cancelled for running over it. As with the local pool, a world
    that completed just before its kill keeps its tables."""
    try:
        tables = ray.get(ref, timeout=10 if timeout_s is not None else None)
    except Exception as exc:  # the worker died, the task could not run, or it was cancelled
        if timeout_s is not None:
            write_timeout_part(out_dir, spec, run_id, elapsed, timeout_s)
        else:
            write_crash_part(out_dir, spec, run_id, elapsed, None, reason=_error_text(exc))
    else:
        write_part(out_dir, spec.world_id, tables)
