"""A failed call in words: each kind of failure the autoscaler meets, as the client libraries raise it."""

import http.client
import http.server
import json
import socket
import ssl
from collections.abc import Iterator

import pytest
import requests
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from prometheus_api_client.exceptions import PrometheusApiClientException

from autoscaler.failures import kubernetes_problem, prometheus_problem
from tests.prometheus_api import loopback
from tests.test_controller import quick

URL = "http://prometheus.monitoring:9090"
QUERY_URL = "/api/v1/query?query=sum+by+%28namespace%2C+pod%29+%28vllm%3Anum_requests_waiting%29"


def caused(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


def retried(reason: BaseException) -> urllib3.exceptions.MaxRetryError:
    """urllib3 gave up on the request: how both clients see a network failure."""
    return urllib3.exceptions.MaxRetryError(
        urllib3.HTTPConnectionPool("prometheus.monitoring", 9090), QUERY_URL, reason
    )


def new_connection(cause: OSError) -> BaseException:
    conn = urllib3.connection.HTTPConnection("prometheus.monitoring", 9090)
    return caused(urllib3.exceptions.NewConnectionError(conn, f"Failed to establish a new connection: {cause}"), cause)


def api_error(status: int, message: str | None = None) -> ApiException:
    error = ApiException(status=status, reason=http.HTTPStatus(status).phrase)
    error.body = json.dumps({"kind": "Status", "message": message} if message else {"kind": "Status"})
    return error


refused = new_connection(ConnectionRefusedError(111, "Connection refused"))
read_timeout = caused(
    urllib3.exceptions.ReadTimeoutError(None, QUERY_URL, "Read timed out. (read timeout=10)"),  # type: ignore[arg-type]
    TimeoutError("timed out"),
)
unresolved = caused(
    urllib3.exceptions.NameResolutionError(
        "prometheus.monitoring", urllib3.connection.HTTPConnection("prometheus.monitoring"), socket.gaierror(-2)
    ),
    socket.gaierror(-2, "Name or service not known"),
)
untrusted = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
untrusted.verify_message = "self-signed certificate"
wrong_version = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
wrong_version.reason = "WRONG_VERSION_NUMBER"  # type: ignore[misc]
FORBIDDEN = (
    'pods is forbidden: User "system:serviceaccount:wva-system:llm-platform-autoscaler" cannot list resource "pods"'
    ' in API group "" at the cluster scope'
)


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (requests.exceptions.ConnectionError(retried(refused)), "unreachable (connection refused)"),
        (requests.exceptions.ConnectionError(retried(read_timeout)), "did not answer within 10s"),
        (requests.exceptions.ReadTimeout("read timeout=10"), "did not answer within 10s"),
        (
            requests.exceptions.ConnectionError(retried(unresolved)),
            "unreachable (host name not resolved)",
        ),
        (
            requests.exceptions.ConnectionError(retried(new_connection(OSError(113, "No route to host")))),
            "unreachable (no route to host)",
        ),
        (
            requests.exceptions.SSLError(retried(urllib3.exceptions.SSLError(untrusted))),
            "unreachable (TLS certificate not trusted: self-signed certificate)",
        ),
        (
            requests.exceptions.SSLError(retried(urllib3.exceptions.SSLError(wrong_version))),
            "unreachable (TLS failed: wrong version number)",
        ),
        (
            requests.exceptions.ConnectionError(
                urllib3.exceptions.ProtocolError(
                    "Connection aborted.", http.client.RemoteDisconnected("Remote end closed connection")
                )
            ),
            "unreachable (connection closed without an answer)",
        ),
        (
            requests.exceptions.RetryError(retried(urllib3.exceptions.ResponseError("too many 503 error responses"))),
            "answered 503 Service Unavailable",
        ),
        (
            PrometheusApiClientException("HTTP Status Code 401 (b'Unauthorized')"),
            "refused the autoscaler's credentials (401 Unauthorized)",
        ),
        (
            PrometheusApiClientException("HTTP Status Code 403 (b'')"),
            "refused the autoscaler's credentials (403 Forbidden)",
        ),
        (
            PrometheusApiClientException('HTTP Status Code 400 (b\'{"error":"parse error"}\')'),
            "answered 400 Bad Request",
        ),
        (
            requests.exceptions.JSONDecodeError("Expecting value", "<html>", 0),
            "answered something that is not a query result (JSONDecodeError)",
        ),
        (KeyError("data"), "answered something that is not a query result (KeyError)"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_prometheus_failures_say_what_failed_where(error: BaseException, said: str) -> None:
    assert prometheus_problem(URL, 10.0, error) == f"Prometheus at {URL} {said}"


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (retried(refused), "Kubernetes API unreachable (connection refused)"),
        (retried(read_timeout), "Kubernetes API did not answer within 10s"),
        (api_error(403, FORBIDDEN), f"Kubernetes API: {FORBIDDEN}"),
        (api_error(401, "Unauthorized"), "Kubernetes API refused the autoscaler's credentials (401 Unauthorized)"),
        (api_error(503), "Kubernetes API answered 503 Service Unavailable"),
        (
            api_error(422, 'Scale.autoscaling "x" is invalid: spec.replicas: Invalid value: -1'),
            'Kubernetes API answered 422 Unprocessable Entity: Scale.autoscaling "x" is invalid: spec.replicas: Invalid'
            " value: -1",
        ),
        (
            caused(ApiException(status=0, reason="SSLError\n..."), urllib3.exceptions.SSLError(untrusted)),
            "Kubernetes API unreachable (TLS certificate not trusted: self-signed certificate)",
        ),
        (ValueError("not an API call"), None),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_kubernetes_failures_say_what_failed(error: BaseException, said: str | None) -> None:
    assert kubernetes_problem(error, 10.0) == said


def test_no_message_carries_the_query_or_a_traceback() -> None:
    said = prometheus_problem(URL, 10.0, requests.exceptions.ConnectionError(retried(refused)))
    assert "%2C" not in said and "query" not in said and "\n" not in said


class Answers(http.server.BaseHTTPRequestHandler):
    """Answers `/<status>/api/v1/query` with that status, or 200 with a page that is not a query result."""

    def log_message(self, *args: object) -> None:
        return

    def do_GET(self) -> None:
        first = self.path.split("/")[1]
        status = int(first) if first.isdigit() else 200
        body = b"<html>a login page</html>"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def answers() -> Iterator[str]:
    with loopback(Answers) as port:
        yield f"127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("path", "said"),
    [
        ("http://{}/503", "answered 503 Service Unavailable"),
        ("http://{}/401", "refused the autoscaler's credentials (401 Unauthorized)"),
        ("http://{}", "answered something that is not a query result (JSONDecodeError)"),
        ("https://{}", "unreachable (TLS failed: wrong version number)"),
    ],
)
def test_real_answers_from_a_server_read_the_same(answers: str, path: str, said: str) -> None:
    url = path.format(answers)
    with pytest.raises(Exception) as raised:
        quick(url).custom_query("sum by (namespace, pod) (vllm:num_requests_waiting)")
    assert prometheus_problem(url, 1.0, raised.value) == f"Prometheus at {url} {said}"
