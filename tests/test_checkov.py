"""Manifest security scan: checkov over what `pulumi up` would create, for both stacks, with zero failed checks.

checkov runs from its own virtualenv (it pins packaging<24, which pulumi cannot share); every skipped check on our
objects carries its reason on the object itself (`checkov.io/skip<N>: CHECK=reason`). With the pinned charts in the
chart cache the render also writes their objects (files `<component>.<release>.yaml`): each finding there is fixed
through the chart's values or listed with its reason in stack/accepted_findings.py.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from stack.accepted_findings import ACCEPTED, accepted
from stack.mocks import REPO
from stack.render import main

CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"


@pytest.fixture(scope="module")
def checkov() -> Path:
    if not CHECKOV.exists():
        if os.environ.get("LLM_PLATFORM_REQUIRE_CHECKOV"):
            raise FileNotFoundError(f"{CHECKOV} is missing: run `make test`, which installs it")
        pytest.skip("checkov not installed (make test installs it into .venv-checkov)")
    return CHECKOV


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_failed_checks_and_every_skip_has_a_reason(
    checkov: Path, stack: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([stack, "--out", str(tmp_path)]) == 0
    every_chart_expanded = "charts not expanded" not in capsys.readouterr().out
    result = subprocess.run(
        [str(checkov), "-d", str(tmp_path), "--framework", "kubernetes", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(result.stdout)
    results = report["results"]
    failed = [(c["check_id"], c["resource"], "." in Path(c["file_path"]).stem) for c in results["failed_checks"]]
    assert [f"{check} {resource}" for check, resource, chart in failed if not chart] == []
    unaccepted = [f"{check} {resource}" for check, resource, chart in failed if chart and not accepted(check, resource)]
    assert unaccepted == [], "fix it through the chart's values or list it in stack/accepted_findings.py"
    if stack == "prod" and every_chart_expanded:
        unused = [a.reason for a in ACCEPTED if not any(a.covers(check, resource) for check, resource, _ in failed)]
        assert unused == [], "accepted findings that no longer occur"
    assert report["summary"]["passed"] > 100 and report["summary"]["parsing_errors"] == 0
    reasons = [c["check_result"].get("suppress_comment", "") for c in results["skipped_checks"]]
    assert all(len(r) > 20 for r in reasons), reasons


def test_accepted_findings_name_checks_objects_and_a_reason() -> None:
    for entry in ACCEPTED:
        assert entry.checks and entry.objects and len(entry.reason) > 40, entry
    assert accepted("CKV_K8S_16", "DaemonSet.kube-system.juicefs-csi-node") is not None
    assert accepted("CKV_K8S_16", "DaemonSet.storage.seaweedfs-volume") is None
