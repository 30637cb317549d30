"""Schemathesis hooks for bench/fuzz_schema.py: the gateway's scalars and the leak checks.

Loaded by the `schemathesis` CLI through SCHEMATHESIS_HOOKS=fuzz_hooks (bench/ on
PYTHONPATH). Every response is judged by `gateway_never_leaks` and appended, one JSON line
each, to the file named by FUZZ_LOG; the harness reads that file for its summary, so the
numbers do not depend on schemathesis' own report format.
"""

from __future__ import annotations

import json
import os
import re
import threading
from urllib.parse import unquote_plus

import schemathesis
from hypothesis import strategies as st
from schemathesis.graphql import nodes

FUZZ_LOG = os.environ.get("FUZZ_LOG", "fuzz-responses.jsonl")
FUZZ_LABEL = os.environ.get("FUZZ_LABEL", "")
EXCERPT = 600

# Text that only an exception, a traceback or a database driver writes. A match that is
# also in the request is the fuzzer's own input echoed back (a partner named "Traceback").
INTERNAL_TEXT = [
    re.compile(p)
    for p in (
        r"Traceback",
        r'File "[^"]*", line \d+',
        r"line \d+, in \w+",
        r"(?i)sqlalchemy",
        r"(?i)asyncpg",
        r"(?i)psycopg",
        r"(?i)aiosqlite|sqlite3",
        r"QueuePool",
        r"\[SQL: ",
        r"\[parameters: ",
        r"Background on this error",
        r"\b\w*(IntegrityError|DataError|ProgrammingError|OperationalError|InterfaceError|InternalError|DBAPIError)\b",
        r"\b(UniqueViolation|ForeignKeyViolation|CharacterNotInRepertoire|NumericValueOutOfRange|StringDataRightTruncation)\w*",
        r"(?i)invalid byte sequence for encoding",
        r"(?i)out of range for type (integer|bigint|smallint)",
        r"\b(TypeError|KeyError|AttributeError|IndexError|ZeroDivisionError|OverflowError|RecursionError|UnicodeEncodeError|UnicodeDecodeError|NotImplementedError|AssertionError)\b",
        r"decimal\.InvalidOperation|ConversionSyntax|<class '",
        r"object has no attribute|NoneType",
        r"Exceeds the limit \(\d+ digits?\)",
        r"(?i)int too large|integer out of range|value out of int64 range",
        r"IntegerDomainError|exceeds safe integer domain",
        r"\bat 0x[0-9a-f]{6,}",
    )
]

_lock = threading.Lock()


def _write(record: dict) -> None:
    line = json.dumps(record, ensure_ascii=True) + "\n"
    with _lock, open(FUZZ_LOG, "a", encoding="ascii") as sink:
        sink.write(line)


def _request_text(response) -> str:
    body = getattr(response.request, "body", None) or b""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    # JSON escapes (\\u0000, \\") are compared decoded as well as raw.
    try:
        decoded = json.dumps(json.loads(body), ensure_ascii=False)
    except (ValueError, TypeError):
        decoded = ""
    url = response.request.url
    return f"{url}\n{unquote_plus(url)}\n{body}\n{decoded}"


def _coded(error) -> bool:
    return (
        isinstance(error, dict) and isinstance(error.get("extensions"), dict) and bool(error["extensions"].get("code"))
    )


def _graphql_problems(status: int, payload) -> list[tuple[str, str]]:
    if not isinstance(payload, dict):
        return [("uncoded-error", "the body is not a GraphQL JSON object")] if status >= 400 else []
    errors = payload.get("errors")
    if errors is None:
        return [("uncoded-error", f"HTTP {status} without `errors`")] if status >= 400 else []
    if not isinstance(errors, list):
        return [("uncoded-error", "`errors` is not a list")]
    problems = [("uncoded-error", str(e.get("message") if isinstance(e, dict) else e)) for e in errors if not _coded(e)]
    problems += [
        ("internal-error", str(e.get("message"))) for e in errors if _coded(e) and e["extensions"]["code"] == "INTERNAL"
    ]
    return problems


def _rest_problems(status: int, payload) -> list[tuple[str, str]]:
    # The REST faces answer {"error": {"code", "message", "field"}} on every 4xx.
    if status < 400:
        return []
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict) or not error.get("code"):
        return [("uncoded-error", f"HTTP {status} without error.code")]
    if error["code"] == "INTERNAL":
        return [("internal-error", str(error.get("message")))]
    return []


def judge(status: int, content: bytes, request_text: str, graphql: bool) -> list[tuple[str, str]]:
    """Every (kind, detail) wrong with one response; empty when it is fine."""
    problems: list[tuple[str, str]] = []
    if status >= 500:
        problems.append(("server-error", f"HTTP {status}"))
    text = content.decode("utf-8", "replace")
    try:
        readable = json.dumps(json.loads(text), ensure_ascii=False)
    except ValueError:
        readable, payload = text, None
    else:
        payload = json.loads(text)
    leaked = []
    for pattern in INTERNAL_TEXT:
        for match in pattern.finditer(readable):
            if match.group(0) not in request_text:
                leaked.append(match.group(0))
                break
    if leaked:
        problems.append(("internal-text", ", ".join(leaked)))
    if status < 500:  # a 5xx is one failure already, whatever its body
        problems += _graphql_problems(status, payload) if graphql else _rest_problems(status, payload)
    return problems


def _answered(status: int, content: bytes, graphql: bool) -> bool:
    """Whether the request got through to an answer (no error at all): how deep the fuzzing went."""
    if not graphql:
        return status < 400
    try:
        payload = json.loads(content)
    except ValueError:
        return False
    return isinstance(payload, dict) and not payload.get("errors") and payload.get("data") is not None


def _first_message(content: bytes) -> str:
    """The first error's message (GraphQL) or error object (REST), else the body's start."""
    try:
        payload = json.loads(content)
    except ValueError:
        return _short(content.decode("utf-8", "replace"))
    if isinstance(payload, dict) and isinstance(payload.get("errors"), list) and payload["errors"]:
        first = payload["errors"][0]
        return _short(str(first.get("message") if isinstance(first, dict) else first))
    if isinstance(payload, dict) and "error" in payload:
        return _short(json.dumps(payload["error"]))
    return _short(json.dumps(payload))


def _short(text: str) -> str:
    # A fuzzed number of 400 digits would push the words of the message out of the excerpt.
    return re.sub(r"\d{20,}", lambda m: f"{m.group(0)[:6]}...({len(m.group(0))} digits)", text)[:300]


@schemathesis.check
def gateway_never_leaks(ctx, response, case):
    """No 5xx, no exception or driver text, every error with a code, and no masked INTERNAL
    error either: fuzzed input deserves a typed refusal, not an unexpected exception."""
    graphql = "/graphql" in response.request.url
    request_text = _request_text(response)
    problems = judge(response.status_code, response.content, request_text, graphql)
    record = {
        "who": FUZZ_LABEL,
        "op": case.operation.label,
        "status": response.status_code,
        "answered": _answered(response.status_code, response.content, graphql),
    }
    if problems:
        body = response.request.body or b""
        record.update(
            problems=problems,
            method=response.request.method,
            url=response.request.url,
            request=body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body),
            response=response.content[:EXCERPT].decode("utf-8", "replace"),
            message=_first_message(response.content),
        )
    _write(record)
    if problems:
        raise AssertionError("; ".join(f"{kind}: {detail}" for kind, detail in problems))
    return None


# ---------------------------------------------------------------- the contract's scalars

_huge = st.one_of(
    st.integers(),
    st.integers(min_value=2**52, max_value=2**70),
    st.integers(min_value=-(2**70), max_value=-(2**52)),
    st.sampled_from([2**53 + 1, 2**63, 2**63 - 1, -(2**63) - 1, 10**40, 10**400]),
)
schemathesis.graphql.scalar(
    "BigInt",
    st.one_of(_huge.map(nodes.Int), _huge.map(str).map(nodes.String), st.text(max_size=12).map(nodes.String)),
)
schemathesis.graphql.scalar(
    "Decimal",
    st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str).map(nodes.String),
        st.sampled_from(["0.5", "1", "-1", "1e400", "NaN", "Infinity", "1" * 300, "0." + "0" * 300 + "1"]).map(
            nodes.String
        ),
        st.text(max_size=8).map(nodes.String),
    ),
)
_dates = st.dates().map(str)
_times = st.times().map(str)
schemathesis.graphql.scalar(
    "DateTime",
    st.one_of(
        st.tuples(_dates, _times, st.sampled_from(["Z", "+09:00", "-12:00", "+14:00", ""]))
        .map(lambda t: f"{t[0]}T{t[1]}{t[2]}")
        .map(nodes.String),
        st.text(max_size=30).map(nodes.String),
    ),
)
schemathesis.graphql.scalar("Date", st.one_of(_dates.map(nodes.String), st.text(max_size=12).map(nodes.String)))
