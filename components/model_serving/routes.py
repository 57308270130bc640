"""How clients outside the cluster reach a model: an Ingress or a Gateway API HTTPRoute to its Service, or to its
InferencePool when the endpoint picker routes."""

from typing import Any

from autoscaler.api import SERVING_PORT, SERVING_PORT_NAME
from components.model_serving.args import ModelArgs
from components.model_serving.inference_pool import POOL_API


def ingress_spec(model: ModelArgs) -> dict[str, Any]:
    endpoint = model.endpoint
    backend = {"service": {"name": model.name, "port": {"name": SERVING_PORT_NAME}}}
    spec: dict[str, Any] = {
        "rules": [{"host": endpoint.host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]
    }
    if endpoint.ingress_class_name:
        spec["ingressClassName"] = endpoint.ingress_class_name
    if endpoint.tls_secret_name:
        spec["tls"] = [{"hosts": [endpoint.host], "secretName": endpoint.tls_secret_name}]
    return spec


def http_route_spec(model: ModelArgs) -> dict[str, Any]:
    gateway = model.endpoint.gateway
    assert gateway is not None  # checked by EndpointArgs
    parent = {"name": gateway.name, **({"namespace": gateway.namespace} if gateway.namespace else {})}
    pool = {"group": POOL_API.split("/")[0], "kind": "InferencePool", "name": model.name}
    backend = pool if model.endpoint.inference_pool else {"name": model.name, "port": SERVING_PORT}
    return {
        "parentRefs": [parent],
        "hostnames": [model.endpoint.host],
        "rules": [{"backendRefs": [backend]}],
    }
