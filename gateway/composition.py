"""The composition root's wiring, shared by `create_app` (gateway/app.py) and the CLI
(gateway/cli.py): which periodic jobs a process has, who listens to credited walking, and
which connector runner and connector types the faces reach through gateway/connectors.py.

Packages do not register themselves at import. Each one says what it has in a
`register_jobs(jobs)` (or `register_listeners(listeners)`) function, and this module, which
only the entry points import, calls them. Adding a job is one line here and one function
in its package; nothing is found by name.
"""

from __future__ import annotations

from typing import Any

from auth import jobs as auth_jobs
from connectors import jobs as connector_jobs
from connectors.registry import registry as connector_types
from connectors.runner import runner_for
from gateway import activity, audit_jobs, campaigns, expiry, redemption, settlement_jobs
from gateway.jobs import JobRegistry


def job_registry() -> JobRegistry:
    """Every periodic job of the gateway (the scheduler and `mileage-gateway jobs` run these)."""
    jobs = JobRegistry()
    expiry.register_jobs(jobs)
    redemption.register_jobs(jobs)
    settlement_jobs.register_jobs(jobs)
    auth_jobs.register_jobs(jobs)
    connector_jobs.register_jobs(jobs)
    audit_jobs.register_jobs(jobs)
    return jobs


def register_listeners() -> None:
    """Hook campaign commitments onto credited walking (`gateway.activity.listeners`).

    Idempotent: every entry point (the app, each CLI run, test fixtures) calls it."""
    campaigns.register_listeners(activity.listeners)


def wire_connectors(state: Any) -> None:
    """Put on the app state what `gateway.connectors.request_run` and `check_config` are
    handed: this process's runner (`state.connector_runs`, closed at shutdown) and the
    installed connector types (`state.connector_types`)."""
    state.connector_runs = runner_for(state)
    state.connector_types = connector_types


__all__ = ["job_registry", "register_listeners", "wire_connectors"]
