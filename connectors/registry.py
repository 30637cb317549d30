"""Connector types, discovered through Python entry points.

Any installed distribution may add a connector type by declaring, in its pyproject.toml,

    [project.entry-points."mileage_gateway.connectors"]
    my-erp = "my_erp_connector:MyErpConnector"

The entry point's name is the `kind` an administrator configures; its object is the class
(connectors/base.py says what it implements). The gateway's own types (http-json, csv-batch)
are registered the same way, in this project's pyproject.toml.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from connectors.base import JOB_PROTOCOLS, ConfigError
from connectors.guarded_http import vet_outbound
from gateway.errors import InvalidInput

ENTRY_POINT_GROUP = "mileage_gateway.connectors"


class UnknownConnector(LookupError):
    pass


@dataclass(frozen=True)
class ConnectorTypeInfo:
    kind: str
    cls: type
    jobs: frozenset[str]
    #: The distribution that ships it ("mileage-gateway" for the built-ins).
    distribution: str | None


def jobs_of(cls: type) -> frozenset[str]:
    """The jobs a connector class serves: its `jobs` attribute, or what its methods implement."""
    declared = getattr(cls, "jobs", None)
    if declared is not None:
        return frozenset(str(j) for j in declared)
    return frozenset(job for job, protocol in JOB_PROTOCOLS.items() if _implements(cls, protocol))


def _implements(cls: type, protocol: type) -> bool:
    try:
        return issubclass(cls, protocol)
    except TypeError:
        return False


class Registry:
    """Entry points of one group (plus types registered in-process, e.g. by tests)."""

    def __init__(self, group: str = ENTRY_POINT_GROUP, extra: Mapping[str, type] | None = None) -> None:
        self.group = group
        self._extra: dict[str, type] = dict(extra or {})
        self._points: dict[str, EntryPoint] | None = None
        self._loaded: dict[str, ConnectorTypeInfo] = {}
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Look for installed connector types again (after installing a package)."""
        with self._lock:
            self._points = None
            self._loaded.clear()

    def _entry_points(self) -> dict[str, EntryPoint]:
        with self._lock:
            if self._points is None:
                self._points = {ep.name: ep for ep in entry_points(group=self.group)}
            return self._points

    def register(self, kind: str, cls: type) -> None:
        """Add a type in this process only (tests, embedding applications)."""
        self._extra[kind] = cls
        self._loaded.pop(kind, None)

    def kinds(self) -> list[str]:
        return sorted(set(self._entry_points()) | set(self._extra))

    def get(self, kind: str) -> ConnectorTypeInfo:
        if kind in self._loaded:
            return self._loaded[kind]
        if kind in self._extra:
            cls, dist = self._extra[kind], None
        else:
            point = self._entry_points().get(kind)
            if point is None:
                self.refresh()
                point = self._entry_points().get(kind)
            if point is None:
                raise UnknownConnector(f"no connector type {kind!r}; installed: {', '.join(self.kinds()) or 'none'}")
            cls = point.load()
            dist = point.dist.name if getattr(point, "dist", None) is not None else None
        info = ConnectorTypeInfo(kind=kind, cls=cls, jobs=jobs_of(cls), distribution=dist)
        self._loaded[kind] = info
        return info

    def validate(self, kind: str, jobs: Iterable[str], config: Mapping) -> dict:
        """The configuration, checked by the type (InvalidInput naming the input field)."""
        try:
            info = self.get(kind)
        except UnknownConnector as exc:
            raise InvalidInput(str(exc), field=["input", "kind"]) from exc
        jobs = frozenset(jobs)
        missing = sorted(jobs - info.jobs)
        if missing:
            raise InvalidInput(
                f"{kind} does not serve {', '.join(missing)} (it serves {', '.join(sorted(info.jobs)) or 'nothing'})",
                field=["input", "jobs"],
            )
        if not isinstance(config, Mapping):
            raise InvalidInput("config must be a JSON object", field=["input", "config"])
        check = getattr(info.cls, "validate_config", None)
        if check is None:
            return dict(config)
        try:
            return dict(check(dict(config), jobs))
        except ConfigError as exc:
            raise InvalidInput(f"config: {exc}", field=["input", "config"]) from exc

    async def vet_outbound(self, kind: str, config: dict, *, allow_private: bool) -> None:
        """Refuse (InvalidInput) a configuration whose partner URLs point at refused addresses
        (connectors/guarded_http.py); outside a transaction, it resolves host names."""
        await vet_outbound(self.get(kind).cls, config, allow_private=allow_private)


#: The process's registry.
registry = Registry()


__all__ = ["ENTRY_POINT_GROUP", "ConnectorTypeInfo", "Registry", "UnknownConnector", "jobs_of", "registry"]
