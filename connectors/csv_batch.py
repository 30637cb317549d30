"""`csv-batch`: CSV files in a folder, e.g. a nightly drop (activity, reconciliation reports),
and statements written as files into another. docs/connectors.md shows a configuration.

Files are taken in name order (name them so that this is arrival order, e.g. with the date:
activity-2026-11-24.csv), each once: the stored cursor is the last file applied (and,
within a large activity file, how many rows of it). Files are never changed or removed, so
the partner (or a cron job) decides when to clean the folder. With `ready_marker` (e.g.
".done") a file is taken only once a marker file of that name beside it says it is whole.

A reconciliation file is one report: its agreement and period come from its name
(`name_pattern`, groups `agreement`, `start`, `end` or `date`) or from `agreement_code` in
the configuration; it is streamed into the gateway, never held in memory as a whole.
"""

from __future__ import annotations

import asyncio
import csv
import fnmatch
import os
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from connectors import mapping
from connectors.base import (
    ActivityRecord,
    BadRecord,
    ConfigError,
    ConnectorContext,
    Page,
    PermanentError,
    ReconciliationRecord,
    ReconciliationReport,
    StatementDocument,
)
from connectors.mapping import ACTIVITY_FIELDS, DISTANCE_UNITS, RECORD_FIELDS, Mapper, fields_with_defaults, parse_date

DEFAULT_RECON_NAME = r"^recon-(?P<agreement>.+?)-(?P<start>\d{4}-\d{2}-\d{2})(?:-(?P<end>\d{4}-\d{2}-\d{2}))?\.csv$"
STREAM_BATCH = 2000


class CsvBatchConnector:
    """Reads activity and reconciliation CSV files from a folder; writes statement files."""

    def __init__(self, *, config: Mapping, credentials: Mapping, context: ConnectorContext) -> None:
        self.config = self.validate_config(dict(config), frozenset())
        self.context = context

    @classmethod
    def validate_config(cls, config: dict, jobs: frozenset[str]) -> dict:
        out: dict = {
            "delimiter": config.get("delimiter", ","),
            "encoding": config.get("encoding", "utf-8-sig"),
            "ready_marker": config.get("ready_marker"),
        }
        if not isinstance(out["delimiter"], str) or len(out["delimiter"]) != 1:
            raise ConfigError("delimiter must be one character")
        try:
            "".encode(out["encoding"])
        except (LookupError, TypeError):
            raise ConfigError(f"unknown encoding {out['encoding']!r}") from None
        for key in ("retry", "breaker"):
            if key in config:
                out[key] = config[key]
        pulls = "activity" in config or "reconciliation" in config or jobs & {"PULL_ACTIVITY", "PULL_RECONCILIATION"}
        if pulls:
            folder = config.get("folder")
            if not isinstance(folder, str) or not os.path.isabs(folder):
                raise ConfigError("folder must be an absolute path (where the partner's files arrive)")
            out["folder"] = folder
        if "activity" in config or "PULL_ACTIVITY" in jobs:
            section = {
                "pattern": "activity-*.csv",
                "page_size": 1000,
                "defaults": {},
                "distance_unit": "m",
                **dict(config.get("activity", {})),
            }
            section["columns"] = fields_with_defaults(section.get("columns"), ACTIVITY_FIELDS, what="activity.columns")
            if section["distance_unit"] not in DISTANCE_UNITS:
                raise ConfigError(f"activity.distance_unit must be one of {', '.join(DISTANCE_UNITS)}")
            if not isinstance(section["page_size"], int) or not 1 <= section["page_size"] <= 1000:
                raise ConfigError("activity.page_size must be 1 to 1000")
            out["activity"] = section
        if "reconciliation" in config or "PULL_RECONCILIATION" in jobs:
            section = {
                "pattern": "recon-*.csv",
                "name_pattern": DEFAULT_RECON_NAME,
                "kind_values": {},
                **dict(config.get("reconciliation", {})),
            }
            section["columns"] = fields_with_defaults(
                section.get("columns"), RECORD_FIELDS, what="reconciliation.columns"
            )
            try:
                re.compile(section["name_pattern"])
            except re.error as exc:
                raise ConfigError(f"reconciliation.name_pattern: {exc}") from None
            out["reconciliation"] = section
        if "statements" in config or "PUSH_STATEMENT" in jobs:
            section = {"format": "both", **dict(config.get("statements", {}))}
            if not isinstance(section.get("folder"), str) or not os.path.isabs(section["folder"]):
                raise ConfigError("statements.folder must be an absolute path (where statement files are written)")
            if section["format"] not in ("json", "csv", "both"):
                raise ConfigError("statements.format must be json, csv or both")
            out["statements"] = section
        return out

    # ------------------------------------------------------------ files

    def _section(self, name: str) -> Mapping:
        section = self.config.get(name)
        if section is None:
            raise PermanentError(f"the connector's config has no {name!r} section")
        return section

    def _files(self, pattern: str) -> list[str]:
        folder = Path(self.config["folder"])
        if not folder.is_dir():
            raise PermanentError(f"folder {folder} does not exist or is not readable")
        names = sorted(
            entry.name
            for entry in os.scandir(folder)
            if entry.is_file() and not entry.name.startswith(".") and fnmatch.fnmatchcase(entry.name, pattern)
        )
        marker = self.config.get("ready_marker")
        if marker:
            names = [n for n in names if (folder / (n + marker)).exists()]
        return names

    @staticmethod
    def _split(cursor: str | None) -> tuple[str | None, int | None]:
        """(file, rows applied of it; None when the whole file is applied)."""
        if cursor is None:
            return None, None
        name, sep, rows = cursor.rpartition("#")
        if sep and rows.isdigit():
            return name, int(rows)
        return cursor, None

    def _read_rows(self, name: str, start: int, count: int) -> tuple[list[dict], bool]:
        """Rows [start, start+count) of a file (as dicts by header) and whether rows remain."""
        path = Path(self.config["folder"]) / name
        with path.open(newline="", encoding=self.config["encoding"]) as handle:
            reader = csv.DictReader(handle, delimiter=self.config["delimiter"])
            rows = []
            for index, row in enumerate(reader):
                if index < start:
                    continue
                if len(rows) == count:
                    return rows, True
                rows.append(row)
        return rows, False

    # ------------------------------------------------------------ activity

    async def fetch_activity(self, cursor: str | None) -> Page[ActivityRecord]:
        section = self._section("activity")
        current, rows_done = self._split(cursor)
        files = await asyncio.to_thread(self._files, section["pattern"])
        if current is not None and rows_done is not None and current in files:
            name, start = current, rows_done
        else:
            later = [n for n in files if current is None or n > current]
            if not later:
                return Page(records=[], cursor=cursor, has_more=False)
            name, start = later[0], 0
        rows, more_rows = await asyncio.to_thread(self._read_rows, name, start, section["page_size"])
        mapper = Mapper(section["columns"], section["defaults"])
        records = [
            mapping.activity(
                row,
                mapper,
                f"{name} row {start + i + 2}",
                distance_unit=section["distance_unit"],
                source=section.get("source"),
            )
            for i, row in enumerate(rows)
        ]
        if more_rows:
            return Page(records=records, cursor=f"{name}#{start + len(rows)}", has_more=True)
        return Page(records=records, cursor=name, has_more=any(n > name for n in files))

    # ------------------------------------------------------------ reconciliation

    async def fetch_reconciliation(self, cursor: str | None) -> Page[ReconciliationReport]:
        section = self._section("reconciliation")
        current, _ = self._split(cursor)
        files = await asyncio.to_thread(self._files, section["pattern"])
        later = [n for n in files if current is None or n > current]
        if not later:
            return Page(records=[], cursor=cursor, has_more=False)
        name = later[0]
        agreement, start, end = self._report_names(section, name)
        report = ReconciliationReport(
            agreement_code=agreement,
            period_start=start,
            period_end=end,
            records=self._stream_records(section, name),
            name=name,
        )
        return Page(records=[report], cursor=name, has_more=len(later) > 1)

    def _report_names(self, section: Mapping, name: str):
        match = re.match(section["name_pattern"], name)
        groups = match.groupdict() if match else {}
        agreement = section.get("agreement_code") or groups.get("agreement")
        if groups.get("start") or groups.get("date"):
            start = groups.get("start") or groups.get("date")
            end = groups.get("end") or start
        else:
            start = section.get("period_start")
            end = section.get("period_end") or start
        if not agreement or not start or not end:
            raise BadRecord(
                f"{name}: cannot tell the report's agreement and period from its name "
                f"(name_pattern {section['name_pattern']!r}) or the configuration"
            )
        return str(agreement), parse_date(start, "period start", name), parse_date(end, "period end", name)

    async def _stream_records(self, section: Mapping, name: str) -> AsyncIterator[ReconciliationRecord]:
        mapper = Mapper(section["columns"])
        path = Path(self.config["folder"]) / name
        handle = await asyncio.to_thread(path.open, "r", newline="", encoding=self.config["encoding"])
        try:
            reader = csv.DictReader(handle, delimiter=self.config["delimiter"])
            line = 1
            while True:
                batch = await asyncio.to_thread(_take, reader, STREAM_BATCH)
                if not batch:
                    return
                for row in batch:
                    line += 1
                    yield mapping.reconciliation_record(
                        row, mapper, f"{name} row {line}", kind_values=section["kind_values"]
                    )
        finally:
            handle.close()

    # ------------------------------------------------------------ statements

    async def push_statement(self, statement: StatementDocument) -> None:
        section = self._section("statements")
        folder = Path(section["folder"])
        base = f"statement-{statement.sponsor_code}-{statement.period_start.isoformat()}-{statement.period_end.isoformat()}"
        files: list[tuple[str, bytes]] = []
        if section["format"] in ("json", "both"):
            files += [(base + ".json", statement.document), (base + ".json.jws", statement.signature.encode())]
        if section["format"] in ("csv", "both"):
            files.append((base + ".csv", statement.csv))
        await asyncio.to_thread(_write_all, folder, files)


def _take(reader, n: int) -> list[dict]:
    rows = []
    for row in reader:
        rows.append(row)
        if len(rows) >= n:
            break
    return rows


def _write_all(folder: Path, files: list[tuple[str, bytes]]) -> None:
    """Write each file whole or not at all (a temporary name, then an atomic rename)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files:
            tmp = folder / f".{name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, folder / name)
    except OSError as exc:
        raise PermanentError(f"cannot write to {folder}: {exc}") from None


__all__ = ["CsvBatchConnector"]
