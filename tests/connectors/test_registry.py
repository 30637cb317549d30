"""Connector types are found through Python entry points, the gateway's own and third parties'."""

from __future__ import annotations

import sys
import textwrap

import pytest

from connectors.registry import ENTRY_POINT_GROUP, Registry, registry
from connectors.runner import ConnectorRunner
from gateway.errors import InvalidInput
from gateway.models import ConnectorJob, ConnectorRunStatus
from tests.connectors.helpers import available, configure, walk_day
from tests.gateway import factories

PACKAGE = '''
"""A third party's connector: a pedometer vendor whose records arrive in its own module."""
import datetime as dt

from connectors.base import ActivityRecord, ConfigError, Page

RECORDS = []


class PedometerCloud:
    def __init__(self, *, config, credentials, context):
        self.config = config
        self.context = context

    @classmethod
    def validate_config(cls, config, jobs):
        if "region" not in config:
            raise ConfigError("region is required")
        return {"region": config["region"]}

    async def fetch_activity(self, cursor):
        start = int(cursor or 0)
        page = RECORDS[start : start + 1]
        records = [ActivityRecord(m, dt.date.fromisoformat(d), s, meters, source=self.config["region"]) for m, d, s, meters in page]
        return Page(records=records, cursor=str(start + len(page)), has_more=start + 1 < len(RECORDS))
'''


@pytest.fixture
def third_party_package(tmp_path):
    """A package installed outside the project: its code and a .dist-info with an entry point,
    as `pip install --target` lays them out, on sys.path."""
    site = tmp_path / "site-packages"
    (site / "pedometer_cloud").mkdir(parents=True)
    (site / "pedometer_cloud" / "__init__.py").write_text(textwrap.dedent(PACKAGE))
    info = site / "pedometer_cloud-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pedometer-cloud\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\npedometer-cloud = pedometer_cloud:PedometerCloud\n")
    (info / "RECORD").write_text("")
    sys.path.insert(0, str(site))
    registry.refresh()
    yield
    sys.path.remove(str(site))
    sys.modules.pop("pedometer_cloud", None)
    registry.refresh()


def test_the_built_in_types_are_registered_through_the_projects_entry_points():
    kinds = Registry().kinds()
    assert {"http-json", "csv-batch"} <= set(kinds)
    info = Registry().get("http-json")
    assert info.distribution == "mileage-gateway"
    assert info.jobs == {"PULL_ACTIVITY", "PULL_RECONCILIATION", "PUSH_STATEMENT"}


async def test_a_connector_packaged_outside_the_project_is_discovered_and_runs(db, settings, third_party_package):
    assert "pedometer-cloud" in registry.kinds()
    info = registry.get("pedometer-cloud")
    assert info.distribution == "pedometer-cloud" and info.jobs == {"PULL_ACTIVITY"}

    import pedometer_cloud

    day = walk_day().isoformat()
    pedometer_cloud.RECORDS[:] = [("kim", day, 8000, 6000), ("lee", day, 9000, 6600)]
    async with db.transaction() as session:
        op = await factories.operator(session)
    with pytest.raises(InvalidInput, match="region is required"):
        await configure(db, op, "pedometer-cloud", ["PULL_ACTIVITY"], {})
    with pytest.raises(InvalidInput, match="does not serve PUSH_STATEMENT"):
        await configure(db, op, "pedometer-cloud", ["PUSH_STATEMENT"], {"region": "kr"})
    await configure(db, op, "pedometer-cloud", ["PULL_ACTIVITY"], {"region": "kr-seoul"})
    run = await ConnectorRunner(db=db, settings=settings).sync(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)
    assert run.status == ConnectorRunStatus.COMPLETED, run.error
    assert run.records == 2 and await available(db, op.id, "lee") > 0


def test_an_unknown_type_is_refused_naming_the_installed_ones():
    with pytest.raises(InvalidInput, match="no connector type 'sftp'; installed: .*csv-batch.*http-json"):
        registry.validate("sftp", ["PULL_ACTIVITY"], {})
