"""No credential in plain text: not in stack files, not in rendered manifests, not in stack outputs; generated
passwords are long."""

import re
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from stack.config import load_stack_config
from stack.mocks import REPO, install_mocks
from stack.platform import Platform
from stack.render import Rendered
from tests.conftest import stack_config

CREDENTIAL = re.compile(r"(password|passwd|secret|token|access[-_]?key|credential|metaurl)", re.IGNORECASE)
# Keys that name where a credential is, not the credential itself.
REFERENCE = re.compile(r"(Key|Ref|Name|Namespace|Secret|File|Path|-name|-namespace)$|^(secretName|name)$")
PLACEHOLDER = "<secret: "


def credential_values(node: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, value) of every string under a credential-like key that is not a reference to one."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(value, str) and CREDENTIAL.search(str(key)) and not REFERENCE.search(str(key)):
                found.append((here, value))
            else:
                found += credential_values(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += credential_values(value, f"{path}[{i}]")
    return found


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_files_hold_no_plain_credentials(stack: str) -> None:
    config = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]
    assert [p for p, v in credential_values(config)] == [], "use `pulumi config set --secret`"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_rendered_credentials_are_placeholders(rendered_stacks: dict[str, Rendered], stack: str) -> None:
    rendered = rendered_stacks[stack]
    plain = []
    for docs in rendered.documents.values():
        for doc in docs:
            where = f"{doc['kind']} {doc['metadata'].get('name')}"
            secret_data = {**doc.get("stringData", {}), **doc.get("data", {})} if doc["kind"] == "Secret" else {}
            plain += [f"{where}: {k}" for k, v in secret_data.items() if CREDENTIAL.search(k) and PLACEHOLDER not in v]
            plain += [f"{where}: {p}" for p, v in credential_values(doc) if PLACEHOLDER not in v and v]
    assert plain == []


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_generated_passwords_are_long(rendered_stacks: dict[str, Rendered], stack: str) -> None:
    passwords = [d for d in rendered_stacks[stack].declared if d.type == "random:index/randomPassword:RandomPassword"]
    assert passwords, "the platform generates its passwords"
    assert all(d.inputs["length"] >= 24 for d in passwords), [(d.name, d.inputs["length"]) for d in passwords]


def test_credential_outputs_are_secret() -> None:
    install_mocks(stack_config("prod"), "prod")
    seen: dict[str, bool] = {}

    @pulumi.runtime.test  # type: ignore[misc]
    def check() -> pulumi.Output[Any]:
        outputs = Platform(load_stack_config()).outputs()
        marks = [
            pulumi.Output.from_input(pulumi.Output.from_input(v).is_secret()).apply(lambda s, k=k: seen.update({k: s}))
            for k, v in outputs.items()
        ]
        return pulumi.Output.all(*marks)

    check()
    credentials = {k for k in seen if CREDENTIAL.search(k)}
    assert credentials, "the stack exports at least one credential (Grafana's admin password)"
    assert {k: seen[k] for k in credentials} == dict.fromkeys(credentials, True)
    assert not any(seen[k] for k in seen if k not in credentials), "only credentials are marked secret"


def test_the_scan_finds_a_plain_credential(tmp_path: Path) -> None:
    assert credential_values({"env": [{"name": "X", "password": "hunter2"}], "passwordKey": "admin-password"}) == [
        ("env[0].password", "hunter2")
    ]
