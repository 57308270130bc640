"""A local HTTP stand-in for exactly the Kubernetes API calls the autoscaler makes, with faults on demand.

The real `kubernetes` client talks to it over real HTTP; it keeps objects in memory, checks resourceVersions on
PUT (409 on a stale one), records every request, and can answer the next matching calls with an error or a delay.
"""

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from kubernetes import client


@dataclass
class Fault:
    method: str
    path: str  # regular expression matched against the request path
    status: int = 500  # 0: answer normally after the delay (the server acts; the client may have given up)
    delay_s: float = 0.0
    times: int = 1
    message: str = ""  # the Status object's message, as the API server words it (e.g. RBAC's for a 403)


@dataclass
class Cluster:
    """In-memory objects by kind, keyed (namespace, name)."""

    objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    version: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.version += 1
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)
            meta = obj["metadata"]
            self.objects.setdefault(kind, {})[(meta.get("namespace", ""), meta["name"])] = obj
            return obj

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(kind, {}).get((namespace, name))

    def items(self, kind: str, selector: str | None = None) -> list[dict[str, Any]]:
        found = list(self.objects.get(kind, {}).values())
        if selector:
            key, _, value = selector.partition("=")
            found = [o for o in found if o["metadata"].get("labels", {}).get(key) == value]
        return found

    def add_deployment(
        self, namespace: str, name: str, replicas: int, ready: int | None = None, labels: dict[str, str] | None = None
    ) -> None:
        self.put(
            "deployments",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
                "spec": {"replicas": replicas, "selector": {"matchLabels": labels or {}}, "template": {}},
                "status": {"replicas": replicas, "readyReplicas": replicas if ready is None else ready},
            },
        )

    def add_pod(
        self,
        namespace: str,
        name: str,
        labels: dict[str, str],
        ready: bool = True,
        unschedulable: str | None = None,
        created: str = "2026-01-01T00:00:00Z",
        ready_at: str | None = None,
    ) -> None:
        """A pod as the API server lists it; `unschedulable` is the scheduler's message for a pod it cannot place,
        `ready_at` when its Ready condition last changed."""
        conditions: list[dict[str, str]] = [{"type": "Ready", "status": "True" if ready else "False"}]
        if ready_at is not None:
            conditions[0]["lastTransitionTime"] = ready_at
        if unschedulable is not None:
            conditions = [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}
            ]
        self.put(
            "pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace, "labels": labels, "creationTimestamp": created},
                "status": {"phase": "Pending" if unschedulable else "Running", "conditions": conditions},
            },
        )

    def replicas(self, namespace: str, name: str) -> int:
        deployment = self.get("deployments", namespace, name)
        assert deployment is not None
        return int(deployment["spec"]["replicas"])


ROUTES: list[tuple[str, str, str]] = [
    ("GET", r"^/apis/wva\.llm-d\.io/v1alpha1/variantautoscalings$", "list:variantautoscalings"),
    (
        "PATCH",
        r"^/apis/wva\.llm-d\.io/v1alpha1/namespaces/(?P<ns>[^/]+)/variantautoscalings/(?P<name>[^/]+)/status$",
        "status",
    ),
    ("GET", r"^/apis/apps/v1/deployments$", "list:deployments"),
    ("GET", r"^/api/v1/pods$", "list:pods"),
    ("GET", r"^/apis/autoscaling/v2/horizontalpodautoscalers$", "list:horizontalpodautoscalers"),
    ("GET", r"^/api/v1/namespaces/(?P<ns>[^/]+)/configmaps/(?P<name>[^/]+)$", "get:configmaps"),
    ("GET", r"^/apis/apps/v1/namespaces/(?P<ns>[^/]+)/deployments/(?P<name>[^/]+)/scale$", "get-scale"),
    ("PUT", r"^/apis/apps/v1/namespaces/(?P<ns>[^/]+)/deployments/(?P<name>[^/]+)/scale$", "put-scale"),
    ("POST", r"^/api/v1/namespaces/(?P<ns>[^/]+)/events$", "event"),
    ("GET", r"^/apis/coordination\.k8s\.io/v1/namespaces/(?P<ns>[^/]+)/leases/(?P<name>[^/]+)$", "get:leases"),
    ("POST", r"^/apis/coordination\.k8s\.io/v1/namespaces/(?P<ns>[^/]+)/leases$", "create:leases"),
    ("PUT", r"^/apis/coordination\.k8s\.io/v1/namespaces/(?P<ns>[^/]+)/leases/(?P<name>[^/]+)$", "replace:leases"),
]


def _handler(cluster: Cluster) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left

        def _status(self, code: int, reason: str, message: str = "") -> None:
            body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code}
            self._send(code, {**body, "message": message} if message else body)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            with cluster.lock:
                cluster.requests.append((method, url.path))
                fault = next((f for f in cluster.faults if f.method == method and re.search(f.path, url.path)), None)
                if fault:
                    fault.times -= 1
                    if fault.times <= 0:
                        cluster.faults.remove(fault)
            if fault:
                time.sleep(fault.delay_s)
                if fault.status:
                    self._status(fault.status, "InjectedFault", fault.message)
                    return
            for verb, pattern, action in ROUTES:
                match = re.match(pattern, url.path)
                if verb == method and match:
                    self._route(action, match.groupdict(), parse_qs(url.query))
                    return
            self._status(404, "NotFound")

        def _route(self, action: str, args: dict[str, str], query: dict[str, list[str]]) -> None:
            ns, name = args.get("ns", ""), args.get("name", "")
            op, _, kind = action.partition(":")
            if op == "list":
                selector = query.get("labelSelector", [None])[0]
                self._send(
                    200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": cluster.items(kind, selector)}
                )
            elif op == "get":
                found = cluster.get(kind, ns, name)
                self._send(200, found) if found else self._status(404, "NotFound")
            elif op == "create":
                body = self._body()
                if cluster.get(kind, ns, body["metadata"]["name"]):
                    self._status(409, "AlreadyExists")
                else:
                    self._send(201, cluster.put(kind, body))
            elif op == "replace":
                body = self._body()
                current = cluster.get(kind, ns, name)
                if current is None:
                    self._status(404, "NotFound")
                elif body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                    self._status(409, "Conflict")
                else:
                    self._send(200, cluster.put(kind, body))
            elif op == "status":
                found = cluster.get("variantautoscalings", ns, name)
                if found is None:
                    self._status(404, "NotFound")
                else:
                    found["status"] = {**found.get("status", {}), **self._body().get("status", {})}
                    self._send(200, cluster.put("variantautoscalings", found))
            elif op in ("get-scale", "put-scale"):
                self._scale(op, ns, name)
            elif op == "event":
                cluster.events.append(self._body())
                self._send(201, cluster.events[-1])

        def _scale(self, op: str, ns: str, name: str) -> None:
            deployment = cluster.get("deployments", ns, name)
            if deployment is None:
                self._status(404, "NotFound")
                return
            version = deployment["metadata"]["resourceVersion"]
            if op == "put-scale":
                body = self._body()
                if body["metadata"].get("resourceVersion") != version:
                    self._status(409, "Conflict")
                    return
                deployment["spec"]["replicas"] = body["spec"]["replicas"]
                version = cluster.put("deployments", deployment)["metadata"]["resourceVersion"]
            self._send(
                200,
                {
                    "apiVersion": "autoscaling/v1",
                    "kind": "Scale",
                    "metadata": {"name": name, "namespace": ns, "resourceVersion": version},
                    "spec": {"replicas": deployment["spec"]["replicas"]},
                    "status": {"replicas": deployment["status"]["replicas"]},
                },
            )

        def do_GET(self) -> None:
            self._serve("GET")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

    return Handler


@contextmanager
def running(cluster: Cluster) -> Iterator[client.ApiClient]:
    """Serve the cluster on a free loopback port; yield a real client configured for it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(cluster))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    api = client.ApiClient(config)
    try:
        yield api
    finally:
        api.close()
        server.shutdown()
        server.server_close()
