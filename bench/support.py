"""What the benchmarks share: a served gateway process on a scratch database."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
#: Outside development the gateway refuses a key of fewer than 256 random bits: a fresh one per run.
SECRET = secrets.token_urlsafe(32)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gateway(url: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": url,
        "GATEWAY_SECRET_KEY": SECRET,
        "GATEWAY_ISSUER": base,
        "GATEWAY_SCHEDULER": "0",
        "GATEWAY_RATE_PER_SECOND": "1000000",
        "GATEWAY_RATE_BURST": "1000000",
        "GATEWAY_MAX_CONCURRENT": "100000",
    }
    return serve(env, port, log), base


def serve(env: dict[str, str], port: int, log: Path, *, cwd: Path = ROOT) -> subprocess.Popen:
    """`mileage-gateway serve` (no migration) from the checkout `cwd`, once it answers /readyz."""
    base = f"http://127.0.0.1:{port}"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "serve",
                "--no-migrate",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=cwd,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the gateway exited:\n" + log.read_text(errors="replace")[-3000:])
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError("the gateway did not become ready")
