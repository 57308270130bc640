"""A fresh control plane per test module: the modules apply different stacks and must not see each other's."""

from collections.abc import Iterator

import pytest

from tests.envtest.controlplane import ControlPlane, control_plane


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with control_plane(tmp_path_factory.mktemp("envtest")) as started:
        yield started
