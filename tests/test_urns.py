"""Resource URNs of the shipped stacks stay what existing stacks hold: a changed URN makes `pulumi up` replace
the resource (delete and create), so a component's type token or a child's name never changes unnoticed.

`tests/urns/<stack>.txt` lists every URN the stack declares; it changes only with a rename that is meant, and then
with a `pulumi.Alias` for the old URN in the same change.
"""

from pathlib import Path

import pytest

from stack.render import Rendered

URNS = Path(__file__).parent / "urns"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_urns_are_unchanged(rendered_stacks: dict[str, Rendered], stack: str) -> None:
    expected = (URNS / f"{stack}.txt").read_text().splitlines()
    assert sorted(d.urn for d in rendered_stacks[stack].declared) == expected
