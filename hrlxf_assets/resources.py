"""Resources: where the data lives, and (with the ``scale`` extra) the Ray cluster that runs worlds.

The data directory is ``$HRLXF_DATA_DIR`` (default ``./data``); every asset writes under
``<data_dir>/<asset>/<partition>/`` and scml/negmas/matplotlib writes are kept inside it.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

try:  # the scale extra: pip install -e ".[scale]"
    from dagster_ray import LocalRay
    from dagster_ray.configs import Lifecycle
except ImportError:
    LocalRay = None

RAY_RESOURCE_KEY = "ray_cluster"


def default_data_dir() -> str:
    return os.environ.get("HRLXF_DATA_DIR", "data")


class DataStore(dg.ConfigurableResource):
    """Local file storage for hrlxf assets."""

    data_dir: str = Field(
        default_factory=default_data_dir,
        description="Root of all hrlxf data (default: $HRLXF_DATA_DIR or ./data).",
    )

    def root(self) -> Path:
        return Path(self.data_dir).resolve()

    def asset_dir(self, asset: str, partition: str | None = None) -> Path:
        base = self.root() / asset
        return base / partition if partition else base


if LocalRay is not None:

    class CollectionRay(LocalRay):
        """dagster-ray's ``LocalRay`` with the settings collection needs: a local Ray instance
        on this machine, or the Ray cluster at ``address`` (a Ray cluster or KubeRay head:
        ``ray://<head>:10001``, or ``<head>:6379`` from a node of the cluster); nothing else
        changes between the two.

        It connects only when a run uses the Ray backend (a local-pool run starts no Ray), and
        shuts a local instance down when the step ends. A local instance keeps its session files
        and auth token in a short temp directory, never under ``$HOME`` (see
        ``hrlxf_core.sim.ray_backend``)."""

        address: str | None = Field(
            default_factory=lambda: os.environ.get("RAY_ADDRESS") or None,
            description="Ray cluster to connect to (default $RAY_ADDRESS); empty = start a local Ray "
            "instance in the step. For a cluster with token auth set RAY_AUTH_MODE=token and "
            "RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) in the step's environment.",
        )
        num_cpus: int | None = Field(
            default=None, description="CPUs of a local Ray instance (empty = all cores of this machine)."
        )
        temp_dir: str | None = Field(
            default=None,
            description="Session directory of a local Ray instance (<= 40 characters: Ray's Unix "
            "sockets live below it); empty = $HRLXF_RAY_TMPDIR or <tmp>/hrlxf-ray-<uid>.",
        )
        lifecycle: Lifecycle = Field(
            default_factory=lambda: Lifecycle(connect=False, cleanup="never"),
            description="Connect lazily (only runs on the Ray backend start Ray); nothing to delete.",
        )

        _environ: AbstractContextManager[None] | None = PrivateAttr(default=None)

        @property
        def ray_address(self) -> str | None:  # type: ignore[override]
            return self.address or None

        @property
        def host(self) -> str:
            if not self.address:
                return "127.0.0.1"
            return self.address.split("://")[-1].rsplit(":", 1)[0]

        @property
        def name(self) -> str:
            return f"Ray cluster {self.address}" if self.address else "LocalRay"

        def connect(self, context: Any) -> Any:
            """``ray.init`` with hrlxf's arguments (see ``ray_init_args``) and the user's
            ``ray_init_options``/``env_vars`` on top."""
            import ray
            from dagster_ray.utils import _process_dagster_env_vars

            from hrlxf_core.sim.ray_backend import ray_environ, ray_init_args

            extra = _process_dagster_env_vars(dict(self.ray_init_options))
            injected = self.get_env_vars_to_inject()
            if injected:
                extra.setdefault("runtime_env", {}).setdefault("env_vars", {}).update(injected)
            kwargs, env = ray_init_args(
                self.address, self.num_cpus, Path(self.temp_dir) if self.temp_dir else None, extra
            )
            environ = ray_environ(env)
            environ.__enter__()
            try:
                self._context = ray.init(**kwargs)
            except BaseException:
                environ.__exit__(None, None, None)
                raise
            self._environ = environ
            return self._context

        def ensure_connected(self, context: Any) -> None:
            """Connect now unless connected (the lifecycle connects lazily)."""
            if not self.connected:
                self.connect(context)
                self.on_connect(context)

        def cluster_cpus(self) -> int:
            import ray

            return int(ray.cluster_resources().get("CPU", 0))

        def cleanup(self, context: Any, exception: BaseException | None) -> None:
            try:
                super().cleanup(context, exception)  # disconnects (shuts a local instance down)
            finally:
                if self._environ is not None:
                    self._environ.__exit__(None, None, None)
                    self._environ = None


def ray_resource_defs() -> dict[str, Any]:
    """``{"ray_cluster": CollectionRay(...)}`` when the scale extra is installed, else ``{}``.

    The lifecycle is given explicitly: Dagster takes a nested config's default from the instance's
    values, not from a pydantic default factory (it would connect eagerly otherwise)."""
    if LocalRay is None:
        return {}
    return {RAY_RESOURCE_KEY: CollectionRay(lifecycle=Lifecycle(connect=False, cleanup="never"))}
