"""Fuzz the whole GraphQL schema (and the POS REST face) of a served gateway with schemathesis.

    .venv/bin/python bench/fuzz_schema.py                  # 120 s per token (admin, then merchant) + 60 s REST
    .venv/bin/python bench/fuzz_schema.py --seconds 30 --rest-seconds 0 --report /tmp/fuzz.md

A scratch PostgreSQL database on $GATEWAY_TEST_PG_DSN (default
postgresql://postgres@127.0.0.1:5432/postgres) is created and migrated (dropped afterwards
unless --keep), or --database-url names an empty migrated one. The demo world is loaded
(`mileage-gateway demo`) so that codes and members exist, an admin client is created
(`create-admin-client`), and one gateway process is served as production serves it
(`mileage-gateway serve`, GATEWAY_ENV=production, a random 256-bit GATEWAY_SECRET_KEY), with
the per-client rate limits raised so that the fuzzer is never slowed down.

Schemathesis (`schemathesis run`, the exported SDL, since production does not answer
introspection) then sends generated queries and mutations to every root field for
`--seconds` with the admin's token, then again for `--seconds` with a merchant's (Mangwon
Market Bakery) token, then the POS REST face (connectors/pos_openapi.yaml) for
`--rest-seconds` with the merchant's token. Argument values are drawn from the demo world's
codes half of the time (a schemathesis dictionary), the rest is Hypothesis' own.

A response fails (bench/fuzz_hooks.py) when its status is 5xx, when it carries text only an
exception or a database driver writes (traceback, SQLAlchemy, asyncpg, QueuePool, exception
class names, ...) that is not an echo of the request, or when an error lacks its code
(GraphQL: `extensions.code` on each of `errors`; REST: `error.code` on each 4xx), or when
an error is the masked `INTERNAL` one (an unexpected exception behind the mask). The
summary lists the requests sent, failures by kind and, for each distinct failure, the
shortest request that showed it with an excerpt of the answer. Exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from support import free_port, serve  # noqa: E402  (bench/support.py)

PG_ADMIN_DSN = os.environ.get("GATEWAY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_URL_BASE = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MERCHANT = "mangwon-market-bakery"

# The demo world's codes (gateway/demo.py, gateway/demo_campaigns.py), offered to every
# argument that names a partner, agreement, campaign or member.
DEMO_CODES = [
    "program-office",
    "seoul-walking",
    "gyeonggi-steps",
    "mangwon-market-bakery",
    "suwon-fortress-cafe",
    "korea-yakult",
    "warm-steps-coop",
    "seoul-gyeonggi-2026",
    "warm-steps-2026",
    "seo-member-001",
    "seo-member-002",
    "seo-member-015",
    "gye-member-001",
    "gye-member-005",
]
CODE_ARGUMENTS = [
    "code",
    "externalId",
    "operatorCode",
    "sponsorCode",
    "agreementCode",
    "input.partnerCode",
    "input.agreementCode",
    "input.memberExternalId",
    "input.campaignCode",
    "input.beneficiaryCode",
    "input.sponsorCode",
    "input.operatorCode",
    "input.operatorACode",
    "input.operatorBCode",
    "input.activities[*].memberExternalId",
    "filter.campaignCode",
    "filter.beneficiaryCode",
]


# ---------------------------------------------------------------- the served gateway


async def _pg(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database() -> tuple[str, str]:
    """A fresh PostgreSQL database migrated by the Alembic history: (url, name)."""
    from gateway.migrations import upgrade

    name = f"gw_fuzz_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    url = f"{PG_URL_BASE}/{name}"
    asyncio.run(upgrade(url))
    return url, name


def gateway_env(database_url: str, base: str) -> dict[str, str]:
    return {
        **os.environ,
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_ENV": "production",
        "GATEWAY_SECRET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "GATEWAY_ISSUER": base,
        "GATEWAY_AUDIENCE": f"{base}/graphql",
        "GATEWAY_SCHEDULER": "0",
        "GATEWAY_DEBUG_ERRORS": "0",
        # One fuzzing client per token sends as fast as it can: no rate limit may slow it.
        "GATEWAY_RATE_PER_SECOND": "1000000",
        "GATEWAY_RATE_BURST": "1000000",
        "GATEWAY_MAX_CONCURRENT": "100000",
        "GATEWAY_TOKEN_RATE_PER_CLIENT": "100000/minute",
        "GATEWAY_TOKEN_RATE_PER_ADDRESS": "100000/minute",
    }


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode:
        raise RuntimeError(f"mileage-gateway {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def token(base: str, client_id: str, secret: str) -> str:
    response = httpx.post(
        f"{base}/oauth/token", auth=(client_id, secret), data={"grant_type": "client_credentials"}, timeout=30
    )
    response.raise_for_status()
    return response.json()["access_token"]


# ---------------------------------------------------------------- schemathesis


def write_config(path: Path) -> None:
    """schemathesis.toml: only our check (and the 5xx one), demo codes as a dictionary."""
    lines = [
        "[checks]",
        "enabled = false",
        "[checks.not_a_server_error]",
        "enabled = true",
        "[checks.gateway_never_leaks]",
        "enabled = true",
        "[dictionaries.demo]",
        "values = " + json.dumps(DEMO_CODES),
        "[parameters]",
    ]
    lines += [f'"*.*.{arg}" = {{ dictionary = "demo", probability = 0.5 }}' for arg in CODE_ARGUMENTS]
    path.write_text("\n".join(lines) + "\n")


def run_schemathesis(
    *,
    label: str,
    location: str,
    url: str,
    bearer: str,
    seconds: int,
    workers: int,
    work: Path,
    config: Path,
    seed: int | None,
) -> int:
    """One `schemathesis run`; its responses land in work/responses.jsonl. Returns its exit code."""
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "fuzz_hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "bench"), os.environ.get("PYTHONPATH")])),
        "FUZZ_LOG": str(work / "responses.jsonl"),
        "FUZZ_LABEL": label,
    }
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        location,
        "--url",
        url,
        "-H",
        f"Authorization: Bearer {bearer}",
        "--max-time",
        str(seconds),
        "--workers",
        str(workers),
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--continue-on-failure",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "30",
        "--warnings",
        "off",
    ]
    if seed is not None:
        command += ["--seed", str(seed)]
    log = work / f"schemathesis-{label}.log"
    print(f"  {label}: schemathesis for {seconds} s against {url} (log {log})", flush=True)
    with open(log, "wb") as sink:
        try:
            return subprocess.run(
                command, cwd=work, env=env, stdout=sink, stderr=subprocess.STDOUT, timeout=seconds + 240
            ).returncode
        except subprocess.TimeoutExpired:
            return -1


# ---------------------------------------------------------------- the summary


def _family(record: dict, kind: str, detail: str) -> tuple:
    """What tells one cause from another: for a 5xx the operation, otherwise the error's wording
    with the varying parts (quoted input, numbers, everything after the first ':' ',' ';') cut."""
    if kind in ("server-error", "internal-error") or not record["url"].endswith("/graphql"):
        return kind, f"{record['op']} HTTP {record['status']}"
    text = (record.get("message") or detail) if kind == "internal-text" else detail
    scalar = re.match(r"Expected value of type '[^']+', but encountered error", text)
    if scalar:  # one of our scalars refused the value: one family per scalar
        return kind, scalar.group(0)
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "Q", text)
    text = re.sub(r"-?\d+(\.\.\.\(N digits\))?", "N", re.sub(r"\d+ digits", "N digits", text))
    return kind, re.split(r"[:;,\n]", text, maxsplit=1)[0][:120]


def summarize(jsonl: Path) -> dict:
    sent: collections.Counter = collections.Counter()
    answered: collections.Counter = collections.Counter()
    by_kind: collections.Counter = collections.Counter()
    distinct: dict[tuple, dict] = {}
    if jsonl.exists():
        for line in jsonl.read_text(encoding="ascii").splitlines():
            record = json.loads(line)
            sent[record["who"]] += 1
            answered[record["who"]] += bool(record.get("answered"))
            for kind, detail in record.get("problems", []):
                by_kind[kind] += 1
                key = _family(record, kind, detail)
                best = distinct.get(key)
                if best is None or len(record["request"]) < len(best["request"]):
                    distinct[key] = {
                        **record,
                        "kind": kind,
                        "family": key[1],
                        "detail": detail,
                        "count": (best or {}).get("count", 0),
                        "ops": (best or {}).get("ops", []),
                    }
                item = distinct[key]
                item["count"] += 1
                if record["op"] not in item["ops"]:
                    item["ops"].append(record["op"])
    return {
        "requests": dict(sent),
        "answered": dict(answered),
        "failures_by_kind": dict(by_kind),
        "distinct": list(distinct.values()),
    }


_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exhausted|Timeout)\w*)(?::\s*(.*))?$")


def server_exceptions(log: Path, top: int = 15) -> list[tuple[int, str]]:
    """The gateway log's exceptions (last line of each traceback), grouped: information only,
    since a masked error is still a bug behind the mask."""
    counts: collections.Counter = collections.Counter()
    if log.exists():
        for line in log.read_text(errors="replace").splitlines():
            match = _EXCEPTION_LINE.match(line)
            if match:
                message = re.sub(r"'[^']*'|\"[^\"]*\"", "Q", match.group(2) or "")
                message = re.sub(r"\d+", "N", message)[:100]
                counts[f"{match.group(1)}: {message}"] += 1
    return [(n, text) for text, n in counts.most_common(top)]


def render(summary: dict, seconds: dict) -> str:
    out = ["# Schema fuzzing: findings", ""]
    out.append("Run: " + ", ".join(f"{who} {s} s" for who, s in seconds.items()) + ".")
    out.append(
        "Requests sent: "
        + ", ".join(f"{who} {n}" for who, n in summary["requests"].items())
        + f" (total {sum(summary['requests'].values())}); answered without any error: "
        + ", ".join(f"{who} {n}" for who, n in summary.get("answered", {}).items())
        + "."
    )
    kinds = summary["failures_by_kind"]
    out.append(
        "Failing responses by kind: " + (", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none") + "."
    )
    out.append(f"Distinct failures: {len(summary['distinct'])}.")
    for n, item in enumerate(sorted(summary["distinct"], key=lambda d: (d["kind"], -d["count"])), 1):
        request = item["request"]
        try:
            body = json.loads(request)
            shown = body.get("query", request) if isinstance(body, dict) else request
            variables = body.get("variables") if isinstance(body, dict) else None
        except ValueError:
            shown, variables = request, None
        out += [
            "",
            f"## {n}. {item['kind']}: {item['family']}",
            "",
            f"Seen {item['count']} times in {len(item['ops'])} operation(s): {', '.join(item['ops'][:12])}"
            + (" ..." if len(item["ops"]) > 12 else "")
            + ".",
            f"Shortest example, as {item['who']}: {item['method']} {item['url']}, HTTP {item['status']},"
            f" detail `{item['detail'][:200]}`",
            "",
            "```",
            shown[:1500],
            "```",
        ]
        if variables:
            out += ["Variables: `" + json.dumps(variables)[:500] + "`"]
        out += ["Response:", "```", item["response"][:600], "```"]
    if summary.get("server_exceptions"):
        out += ["", "## The gateway's log (information: exceptions it logged, most frequent first)", ""]
        out += [f"- {n}x `{text}`" for n, text in summary["server_exceptions"]]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=120, help="GraphQL fuzzing time per token (admin, merchant)")
    parser.add_argument("--rest-seconds", type=int, default=60, help="POS REST fuzzing time (merchant); 0 to skip")
    parser.add_argument("--workers", type=int, default=2, help="schemathesis workers")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--database-url", help="an empty, migrated PostgreSQL database to use (not dropped)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database and work directory")
    parser.add_argument("--report", type=Path, help="also write the findings as Markdown to this file")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON to this file")
    parser.add_argument(
        "--work-dir", type=Path, help="where the logs go (default: a new directory under the system's temp)"
    )
    args = parser.parse_args(argv)

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="gw-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    created = None
    if args.database_url:
        url = args.database_url
    else:
        url, created = create_database()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = gateway_env(url, base)
    process = None
    seconds: dict[str, int] = {}
    try:
        print(f"fuzz: database {url.rsplit('/', 1)[1]}, work directory {work}", flush=True)
        demo = {row["partner"]: row for row in json.loads(cli(env, "demo", "--json", "--no-migrate"))}
        admin = json.loads(cli(env, "create-admin-client", "--json", "--no-migrate"))
        process = serve(env, port, work / "gateway.log")
        credentials = {
            "admin": (admin["client_id"], admin["client_secret"]),
            "merchant": (demo[MERCHANT]["client_id"], demo[MERCHANT]["client_secret"]),
        }
        from schema import export_sdl  # the SDL this tree serves

        sdl = work / "schema.graphql"
        sdl.write_text(export_sdl())
        config = work / "schemathesis.toml"
        write_config(config)
        codes = {}
        for label in ("admin", "merchant"):
            # A token per run, minted just before it: tokens live at most 15 minutes.
            bearer = token(base, *credentials[label])
            codes[label] = run_schemathesis(
                label=label,
                location=str(sdl),
                url=f"{base}/graphql",
                bearer=bearer,
                seconds=args.seconds,
                workers=args.workers,
                work=work,
                config=config,
                seed=args.seed,
            )
            seconds[label] = args.seconds
        if args.rest_seconds > 0:
            bearer = token(base, *credentials["merchant"])
            codes["merchant-rest"] = run_schemathesis(
                label="merchant-rest",
                location=str(ROOT / "connectors" / "pos_openapi.yaml"),
                url=base,
                bearer=bearer,
                seconds=args.rest_seconds,
                workers=args.workers,
                work=work,
                config=config,
                seed=args.seed,
            )
            seconds["merchant-rest"] = args.rest_seconds
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if created and not args.keep:
            asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)'))

    summary = summarize(work / "responses.jsonl")
    summary["schemathesis_exit_codes"] = codes
    summary["server_exceptions"] = server_exceptions(work / "gateway.log")
    text = render(summary, seconds)
    print(text)
    if args.report:
        args.report.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    # Exit 1 is schemathesis' "failures found"; a run that sent nothing did not run at all.
    broken = [label for label, code in codes.items() if code not in (0, 1) or not summary["requests"].get(label)]
    if broken:
        print(f"fuzz: schemathesis did not complete for {broken}; see {work}", file=sys.stderr)
    print(f"fuzz: logs in {work}", file=sys.stderr)
    failed = bool(summary["failures_by_kind"]) or bool(broken) or not summary["requests"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
