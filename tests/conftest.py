"""The mocks harness: every test renders through the same in-process program run as `python -m stack.render`."""

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stack.mocks import REPO
from stack.render import Rendered, read_stack_config, render

Render = Callable[..., Rendered]


def stack_config(name: str) -> dict[str, Any]:
    """A deep copy of a shipped stack's config (project keys without prefix), safe to edit in a test."""
    return copy.deepcopy(read_stack_config(REPO / f"Pulumi.{name}.yaml"))


@pytest.fixture
def render_config() -> Render:
    def run(raw: dict[str, Any], stack: str = "test") -> Rendered:
        return render(stack, raw)

    return run


@pytest.fixture(scope="session")
def rendered_stacks() -> dict[str, Rendered]:
    """Both shipped stacks, rendered once for the read-only assertions."""
    return {name: render(name, stack_config(name)) for name in ("dev", "prod")}


def chart_values_dir() -> Path | None:
    """Default values of the pinned charts; CI points LLM_PLATFORM_CHART_VALUES at them and then requires them."""
    configured = os.environ.get("LLM_PLATFORM_CHART_VALUES")
    path = Path(configured) if configured else REPO.parent / "shared" / "reference" / "charts"
    if path.is_dir():
        return path
    if configured:
        raise FileNotFoundError(f"LLM_PLATFORM_CHART_VALUES={configured} is not a folder")
    return None
