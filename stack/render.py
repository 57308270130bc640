"""python -m stack.render STACK [--out DIR] [--expand-charts]: what `pulumi up` would create, checked offline.

STACK is `dev`, `prod` or a path to a `Pulumi.<name>.yaml`. Helm releases whose pinned chart is in the chart cache
(`make charts`) are expanded into the objects the chart installs; `--expand-charts` requires every one. Exit 0 when
rendered and valid, 1 when a manifest fails validation or Pod Security, 2 when the stack file or its config is
invalid, 3 when `--expand-charts` finds a chart missing from the cache.
"""

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError, validate
from pulumi.runtime import rpc

from stack.charts import cache_dir
from stack.config import PROJECT, ConfigError, StackConfig, parse_stack_config
from stack.expansion import ExpansionError, expand
from stack.mocks import REPO, Declared, run_program, secret_placeholder
from stack.platform import variant_costs
from stack.pod_security import enforced_levels, pod_template, violations

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


class StackFileError(Exception):
    """The stack file is missing or is not a Pulumi stack config."""


@dataclass
class Rendered:
    stack: str
    config: StackConfig
    documents: dict[str, list[dict[str, Any]]]  # by top-level component; chart output by `<component>.<release>`
    declared: list[Declared]
    not_expanded: list[str] = field(default_factory=list)  # `<chart> <version>` of releases not in the chart cache


@dataclass
class Validation:
    errors: list[str] = field(default_factory=list)
    custom_kinds: Counter[str] = field(default_factory=Counter)  # no built-in schema to check them against


def stack_file(stack: str) -> tuple[str, Path]:
    """`dev`/`prod` name the files at the repository root; anything else is a path to `Pulumi.<name>.yaml`."""
    path = Path(stack) if stack.endswith((".yaml", ".yml")) else REPO / f"Pulumi.{stack}.yaml"
    name = path.name.removeprefix("Pulumi.").rsplit(".", 1)[0]
    if not path.is_file():
        raise StackFileError(f"{path}: no such stack file")
    return name, path


def read_stack_config(path: Path) -> dict[str, Any]:
    """The project's keys from a stack file; `secure:` values become placeholders naming their key."""
    try:
        text = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise StackFileError(f"{path}: not valid YAML: {error}") from None
    config = text.get("config", {}) if isinstance(text, dict) else None
    if not isinstance(config, dict):
        raise StackFileError(f"{path}: `config` must be a mapping of `{PROJECT}:<key>` entries")
    prefix = f"{PROJECT}:"
    return {k.removeprefix(prefix): _placeholders(v, k) for k, v in config.items() if k.startswith(prefix)}


def _placeholders(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return secret_placeholder(f"config '{key}'")
        return {k: _placeholders(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_placeholders(v, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def render(stack: str, raw_config: dict[str, Any]) -> Rendered:
    """Validate the config, run the program under mocks, and turn what it declared into documents."""
    config = parse_stack_config(raw_config)
    declared = run_program(raw_config, stack)
    by_urn = {d.urn: d for d in declared}
    documents: dict[str, list[dict[str, Any]]] = {}
    for d in declared:
        if d.custom and d.type.startswith("kubernetes:"):
            documents.setdefault(_top_component(d, by_urn), []).append(to_document(d))
    return Rendered(stack, config, documents, declared)


def _top_component(resource: Declared, by_urn: dict[str, Declared]) -> str:
    while resource.parent in by_urn:
        resource = by_urn[resource.parent]
    return resource.name


def to_document(resource: Declared) -> dict[str, Any]:
    """A Kubernetes object as a manifest; a Helm release as the `helm.sh/v3` Release document of the contract."""
    inputs = _plain(resource.inputs)
    if resource.type != HELM_RELEASE:
        head = ("apiVersion", "kind", "metadata")
        return {**{k: inputs[k] for k in head if k in inputs}, **{k: v for k, v in inputs.items() if k not in head}}
    return {
        "apiVersion": "helm.sh/v3",
        "kind": "Release",
        "metadata": {"name": inputs["name"], "namespace": inputs["namespace"]},
        "spec": {k: inputs.get(k) for k in ("chart", "version", "repositoryOpts", "values")},
    }


def _plain(value: Any) -> Any:
    """Wire form to manifest form: secrets unwrapped (they hold placeholders), whole floats back to integers,
    keys sorted so that a render diffs cleanly against the last one."""
    if rpc.is_rpc_secret(value):
        return _plain(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def validate_rendered(rendered: Rendered) -> Validation:
    """Strict schema validation of every built-in kind, custom resources against the CRDs rendered with them (or
    counted), Helm releases checked, and every pod template against its namespace's enforced Pod Security level."""
    result = Validation()
    version = rendered.config.kubernetes.version
    crds = _crd_validators(rendered)
    levels = enforced_levels([doc for docs in rendered.documents.values() for doc in docs])
    for component, docs in rendered.documents.items():
        for doc in docs:
            where = f"{component}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
            if doc.get("apiVersion") == "helm.sh/v3":
                result.errors += [f"{where}: spec.{k} is empty" for k in ("chart", "version") if not doc["spec"][k]]
                continue
            try:
                validate(doc, version, strict=True)
            except SchemaNotFoundError:
                checker = crds.get((doc["apiVersion"], doc["kind"]))
                if checker is None:
                    result.custom_kinds[f"{doc['kind']}.{doc['apiVersion']}"] += 1
                else:
                    result.errors += [f"{where}: {_path(e)}: {e.message}" for e in checker.iter_errors(doc)]
            except ValidationError as error:
                result.errors.append(f"{where}: {_path(error)}: {error.message}")
            pod = pod_template(doc)
            if pod is not None:
                level = levels.get(doc["metadata"].get("namespace", ""), "privileged")
                result.errors += [f"{where}: Pod Security {level}: {v}" for v in violations(pod, level)]
    return result


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.path)


def _crd_validators(rendered: Rendered) -> dict[tuple[str, str], jsonschema.Draft4Validator]:
    """Custom resources whose CRD the stack or one of its charts declares are validated against its schema."""
    found = {}
    for docs in rendered.documents.values():
        for doc in docs:
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                schema = _nullable(version["schema"]["openAPIV3Schema"])
                found[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = jsonschema.Draft4Validator(
                    schema
                )
    return found


def _nullable(schema: Any) -> Any:
    """OpenAPI's `nullable: true` as JSON Schema: the type also admits null."""
    if isinstance(schema, list):
        return [_nullable(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _nullable(v) for k, v in schema.items() if k != "nullable"}
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def write(rendered: Rendered, out: Path) -> list[Path]:
    """One multi-document YAML file per component; files of an earlier render are replaced, not mixed in."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.yaml"):
        old.unlink()
    written = []
    for component, docs in sorted(rendered.documents.items()):
        path = out / f"{component}.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        written.append(path)
    return written


def summary(rendered: Rendered, validation: Validation, out: Path) -> str:
    lines = [
        f"Stack '{rendered.stack}' rendered to {out} (validated for Kubernetes {rendered.config.kubernetes.version})"
    ]
    if not rendered.documents:
        lines.append("  no Kubernetes objects in this stack yet")
    for component, docs in sorted(rendered.documents.items()):
        kinds = Counter(d["kind"] for d in docs)
        detail = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        lines.append(f"  {component:<24} {len(docs):>3} objects ({detail})")
    if validation.custom_kinds:
        custom = ", ".join(f"{k} {n}" for k, n in sorted(validation.custom_kinds.items()))
        lines.append(f"  custom resources (no built-in schema): {custom}")
    if rendered.not_expanded:
        lines.append(
            f"  charts not expanded (not in the chart cache; `make charts`): {', '.join(rendered.not_expanded)}"
        )
    lines.append("")
    header = f"  {'model':<16} {'variant':<22} {'accelerator':<11} {'GPUs min-max':>12} {'USD/h min-max':>16}"
    lines.append(header)
    totals = [0, 0, 0.0, 0.0]
    for c in variant_costs(rendered.config):
        gpus = (c.gpus_per_replica * c.min_replicas, c.gpus_per_replica * c.max_replicas)
        usd = (c.usd_per_replica_hour * c.min_replicas, c.usd_per_replica_hour * c.max_replicas)
        totals = [totals[0] + gpus[0], totals[1] + gpus[1], totals[2] + usd[0], totals[3] + usd[1]]
        lines.append(
            f"  {c.model:<16} {c.variant:<22} {c.accelerator:<11} {f'{gpus[0]}-{gpus[1]}':>12}"
            f" {f'{usd[0]:.2f}-{usd[1]:.2f}':>16}"
        )
    lines.append(f"  {'total':<51} {f'{totals[0]}-{totals[1]}':>12} {f'{totals[2]:.2f}-{totals[3]:.2f}':>16}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.render", description=__doc__.splitlines()[0])
    parser.add_argument("stack", help="dev, prod, or a path to a Pulumi.<name>.yaml")
    parser.add_argument("--out", type=Path, help="output folder (default build/render/<stack>)")
    parser.add_argument(
        "--expand-charts", action="store_true", help="expand every Helm release; exit 3 if a chart is not cached"
    )
    args = parser.parse_args(argv)
    try:
        name, path = stack_file(args.stack)
        raw = read_stack_config(path)
        rendered = render(name, raw)
    except StackFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ConfigError as error:
        print(f"error: {path}: invalid stack config", file=sys.stderr)
        for message in error.errors:
            print(f"  {message}", file=sys.stderr)
        return 2
    cache = cache_dir()
    try:
        expansion = expand(rendered.documents, cache)
    except ExpansionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.expand_charts and expansion.not_cached:
        missing = ", ".join(expansion.not_cached)
        print(f"error: not in the chart cache {cache}: {missing}; run `make charts` to fill it", file=sys.stderr)
        return 3
    documents = {**rendered.documents, **expansion.documents}
    rendered = replace(rendered, documents=documents, not_expanded=expansion.not_cached)
    out = args.out or REPO / "build" / "render" / name
    validation = validate_rendered(rendered)
    write(rendered, out)
    print(summary(rendered, validation, out))
    if validation.errors:
        print(f"error: {len(validation.errors)} manifests fail validation:", file=sys.stderr)
        for message in validation.errors:
            print(f"  {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
