"""The VariantAutoscaling CustomResourceDefinition, generated from the pydantic models in api.py.

Kubernetes wants a structural OpenAPI v3 schema: no $ref, no anyOf with null (nullable instead), boolean
exclusiveMinimum, and no additionalProperties beside properties. This turns pydantic's JSON Schema into that.
"""

from typing import Any

from autoscaler.api import GROUP, KIND, PLURAL, VERSION, VariantAutoscalingSpec, VariantAutoscalingStatus

DROPPED = {"title", "additionalProperties"}


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return structural(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    options = schema.get("anyOf")
    if options:
        present = [o for o in options if o.get("type") != "null"]
        if len(present) == 1:
            outer = {k: v for k, v in schema.items() if k != "anyOf" and not (k == "default" and v is None)}
            return {**structural(outer, defs), **structural(present[0], defs), "nullable": True}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in DROPPED or key == "$defs":
            continue
        if key == "properties":
            out[key] = {name: structural(prop, defs) for name, prop in value.items()}
        elif key == "items":
            out[key] = structural(value, defs)
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "const":
            out["enum"] = [value]
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def openapi_schema() -> dict[str, Any]:
    spec = VariantAutoscalingSpec.model_json_schema(by_alias=True)
    status = VariantAutoscalingStatus.model_json_schema(by_alias=True)
    return {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural(spec, spec.get("$defs", {})),
            "status": structural(status, status.get("$defs", {})),
        },
    }


def custom_resource_definition() -> dict[str, Any]:
    columns = [
        {"name": "Model", "type": "string", "jsonPath": ".spec.modelID"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Action", "type": "string", "jsonPath": ".status.lastDecision.action"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": KIND.lower(), "kind": KIND, "shortNames": ["va"]},
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }
