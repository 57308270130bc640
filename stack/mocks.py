"""Runs the real Pulumi program in-process under mocks and records every resource it declares.

The offline render and the tests share this: what they inspect is what `pulumi up` would send to the engine.
"""

import json
import runpy
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor

from stack.config import PROJECT

REPO = Path(__file__).resolve().parent.parent
PROGRAM = REPO / "__main__.py"
ROOT_TYPE = "pulumi:pulumi:Stack"


def secret_placeholder(source: str) -> str:
    """What a secret looks like in the render: where its value comes from, never the value."""
    return f"<secret: {source}>"


@dataclass(frozen=True)
class Declared:
    """One resource as registered with the engine: wire-form inputs (camelCase, secrets wrapped)."""

    urn: str
    type: str
    name: str
    parent: str
    provider: str
    custom: bool
    inputs: dict[str, Any]
    ignore_changes: tuple[str, ...]


class _Mocks(pulumi.runtime.Mocks):
    """Echo inputs as outputs; generated secrets become placeholders naming the resource that makes them."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ.startswith("random:"):
            state["result"] = secret_placeholder(f"{args.typ.rsplit(':', 1)[-1]} '{args.name}'")
        return f"{args.name}-id", state

    # The mock monitor takes a plain dict here, whatever the base class annotation says.
    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        return {}


class _RecordingMonitor(MockMonitor):
    """The mock engine, keeping each registration's parent and provider, which mocks alone do not see."""

    def __init__(self) -> None:
        super().__init__(_Mocks())
        self.declared: list[Declared] = []
        self._lock = threading.Lock()

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != ROOT_TYPE:
            record = Declared(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                provider=request.provider,
                custom=request.custom,
                inputs=rpc.deserialize_properties(request.object, keep_unknowns=True),
                ignore_changes=tuple(request.ignoreChanges),
            )
            with self._lock:
                self.declared.append(record)
        return response


def install_mocks(raw_config: dict[str, Any], stack: str) -> _RecordingMonitor:
    """Point the Pulumi runtime at a recording mock engine, with this config (keys without the project prefix)."""
    monitor = _RecordingMonitor()
    pulumi.runtime.set_all_config(
        {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw_config.items()}
    )
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    return monitor


def run_program(raw_config: dict[str, Any], stack: str) -> list[Declared]:
    """Run `__main__.py` with this config and return what it declared."""
    monitor = install_mocks(raw_config, stack)

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> None:
        runpy.run_path(str(PROGRAM), run_name="__main__")

    program()
    return sorted(monitor.declared, key=lambda d: d.urn)
