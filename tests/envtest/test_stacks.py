"""Both stacks against a real kube-apiserver: Namespaces and CRDs applied, every other object accepted by a
server-side dry run (schema, admission and Pod Security included) with no error and no warning."""

import pytest

from stack.render import Rendered
from tests.envtest.controlplane import ControlPlane, apply_stack, requires_assets

pytestmark = requires_assets


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_object_passes_a_server_side_dry_run_without_warnings(
    plane: ControlPlane, rendered_stacks: dict[str, Rendered], stack: str
) -> None:
    applied = apply_stack(plane, rendered_stacks[stack], dry_run=True)
    assert applied.errors == []
    assert applied.warnings == []  # Pod Security warns on workloads its namespace level would reject
