"""GET /metrics (a `metrics:read` token): Prometheus text with requests by route and status,
GraphQL operations and their durations, and refusals by limit."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.auth import get_token, post_graphql, register_partner


def _samples(live_server, token: str) -> dict[tuple[str, frozenset], float]:
    response = httpx.get(live_server.url + "/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.settings(rate_per_second=0.5, rate_burst=2)
async def test_metrics_count_requests_operations_and_refusals(db, live_server):
    reg = await register_partner(
        db, code="seoul-walk", kind="OPERATOR", scopes=["members:read"], unit_code="SWM", won_per_point=1
    )
    token = get_token(live_server.url, reg.client_id, reg.client_secret)
    monitor = await register_partner(db, code="office", kind="ADMIN", scopes=["metrics:read"])
    metrics_token = get_token(live_server.url, monitor.client_id, monitor.client_secret)
    before = _samples(live_server, metrics_token)

    assert post_graphql(live_server.url, token, "{ viewer { clientId } }").status_code == 200
    assert post_graphql(live_server.url, token, "{ viewr { clientId } }").status_code == 200
    assert post_graphql(live_server.url, token, "{ viewer { clientId } }").status_code == 429
    after = _samples(live_server, metrics_token)

    def grew(name: str, **labels) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("gateway_http_requests_total", route="/graphql", method="POST", status="200") == 2
    assert grew("gateway_http_requests_total", route="/graphql", method="POST", status="429") == 1
    assert grew("gateway_graphql_operations_total", operation_type="query", outcome="ok") == 1
    assert grew("gateway_graphql_operations_total", operation_type="query", outcome="refused") == 1
    assert grew("gateway_graphql_root_fields_total", operation_type="query", field="viewer") == 1
    assert grew("gateway_graphql_operation_duration_seconds_count", operation_type="query") == 2
    assert grew("gateway_http_request_duration_seconds_count", route="/graphql", method="POST") == 3
    assert grew("gateway_limited_requests_total", limit="rate") == 1
    assert grew("gateway_http_requests_total", route="/oauth/token", method="POST", status="200") == 0
    unmatched = httpx.get(live_server.url + "/no/such/path/12345")
    assert unmatched.status_code == 404
    assert (
        _value(
            _samples(live_server, metrics_token),
            "gateway_http_requests_total",
            route="unmatched",
            method="GET",
            status="404",
        )
        >= 1
    )
