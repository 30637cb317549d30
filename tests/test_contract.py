"""The contract ratchet: the exported schema breaks nothing of the partner contract
except the items listed in tests/contract_pending.txt (not built yet), and every
item in that list is indeed still missing. The list only shrinks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKER = ROOT.parent / "shared" / "contract" / "check_schema.py"
PENDING = Path(__file__).with_name("contract_pending.txt")


def _breaking_changes(tmp_path) -> set[str]:
    exported = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "export-schema"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    target = tmp_path / "exported.graphql"
    target.write_text(exported)
    result = subprocess.run([sys.executable, str(CHECKER), str(target)], capture_output=True, text=True)
    assert result.returncode in (0, 1), result.stderr
    return {
        line.removeprefix("BREAKING: ").strip() for line in result.stdout.splitlines() if line.startswith("BREAKING: ")
    }


def _pending() -> set[str]:
    lines = PENDING.read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


@pytest.fixture(scope="module")
def breaking(tmp_path_factory) -> set[str]:
    if not CHECKER.exists():
        pytest.fail(f"the partner contract's checker is missing at {CHECKER}")
    return _breaking_changes(tmp_path_factory.mktemp("contract"))


def test_no_breaking_change_outside_the_pending_list(breaking):
    unexpected = sorted(breaking - _pending())
    assert not unexpected, "breaking changes against the contract:\n" + "\n".join(unexpected)


def test_pending_list_names_only_what_is_still_missing(breaking):
    built = sorted(_pending() - breaking)
    assert not built, "built now; remove from tests/contract_pending.txt:\n" + "\n".join(built)
