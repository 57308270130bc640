"""`python -m stack.render`: the offline view of what `pulumi up` would create, per the contract in DESIGN.md."""

import shutil
from pathlib import Path

import pytest
import yaml

from stack.mocks import REPO
from stack.render import Rendered, main, read_stack_config, summary, validate_rendered
from tests.conftest import Render, stack_config


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_shipped_stacks_render_and_validate(stack: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([stack, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"Stack '{stack}' rendered to {tmp_path}" in out
    for path in tmp_path.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["metadata"]["name"], path


def test_prod_release_document_follows_the_contract(tmp_path: Path) -> None:
    assert main(["prod", "--out", str(tmp_path)]) == 0
    docs = list(yaml.safe_load_all((tmp_path / "gpu-operator.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["Namespace", "Release"]
    release = docs[1]
    assert release["apiVersion"] == "helm.sh/v3"
    assert release["metadata"] == {"name": "gpu-operator", "namespace": "gpu-operator"}
    assert set(release["spec"]) == {"chart", "version", "repositoryOpts", "values"}
    assert release["spec"]["version"] == "v26.7.0"


def test_summary_prints_gpus_and_cost_at_min_and_max(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["prod", "--out", str(tmp_path)]) == 0
    rows = {line.split()[1]: line.split()[-2:] for line in capsys.readouterr().out.splitlines() if "llama-70b-" in line}
    assert rows == {
        "llama-70b-l40s": ["4-32", "5.00-40.00"],
        "llama-70b-a100": ["0-16", "0.00-80.00"],
        "llama-70b-h100": ["0-16", "0.00-160.00"],
    }


def test_a_stack_file_path_is_accepted_and_stale_files_are_replaced(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.staging.yaml"
    shutil.copy(REPO / "Pulumi.prod.yaml", stack)
    out = tmp_path / "out"
    out.mkdir()
    (out / "removed-component.yaml").write_text("kind: Stale\n")
    assert main([str(stack), "--out", str(out)]) == 0
    names = {p.name for p in out.glob("*.yaml")}
    assert "gpu-operator.yaml" in names and "removed-component.yaml" not in names


def test_invalid_config_exits_2_with_every_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    variants = raw["config"]["llm-platform:models"][0]["variants"]
    variants[0]["cost"] = 0
    variants[1]["acceleratorType"] = "A100"
    stack = tmp_path / "Pulumi.broken.yaml"
    stack.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    assert main([str(stack), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "models[0].variants[0].cost: must be greater than 0 (got 0)" in err
    assert "models[0].variants[1].acceleratorType: unknown type" in err
    assert not out.exists(), "nothing is written for an invalid config"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such stack file"),
        ("config: [1, 2]\n", "`config` must be a mapping"),
        ("config: {a: [\n", "not valid YAML"),
    ],
)
def test_bad_stack_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    stack = tmp_path / "Pulumi.x.yaml"
    if content is not None:
        stack.write_text(content)
    assert main([str(stack)]) == 2
    assert message in capsys.readouterr().err


def test_secure_config_values_render_as_placeholders(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    raw["config"]["llm-platform:kubernetes"]["context"] = {"secure": "v1:AAAA"}
    stack = tmp_path / "Pulumi.secure.yaml"
    stack.write_text(yaml.safe_dump(raw))
    config = read_stack_config(stack)
    assert config["kubernetes"]["context"] == "<secret: config 'llm-platform:kubernetes.context'>"


def test_a_user_added_fourth_variant_appears_without_code_change(render_config: Render) -> None:
    raw = stack_config("prod")
    raw["models"][0]["variants"].append(
        {"name": "llama-70b-h200", "acceleratorType": "H200", "gpusPerReplica": 2, "cost": 30, "maxReplicas": 2}
    )
    rendered = render_config(raw, "prod")
    assert validate_rendered(rendered).errors == []
    assert [v.name for v in rendered.config.models[0].variants][-1] == "llama-70b-h200"
    row = next(
        line
        for line in summary(rendered, validate_rendered(rendered), Path("out")).splitlines()
        if "llama-70b-h200" in line
    )
    assert row.split()[-2:] == ["0-4", "0.00-60.00"]


def test_manifests_that_break_the_schema_are_reported(rendered_stacks: dict[str, Rendered]) -> None:
    rendered = rendered_stacks["prod"]
    broken = Rendered(
        rendered.stack,
        rendered.config,
        {"x": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "labelz": {}}}]},
        [],
    )
    assert validate_rendered(broken).errors == [
        "x: Namespace a: metadata: Additional properties are not allowed ('labelz' was unexpected)"
    ]
