"""A failed call to Prometheus or the Kubernetes API in one short line a person can act on: what failed, where and
why, never a traceback or the query it was sent."""

import http
import http.client
import json
import logging
import re
import socket
import ssl
from collections.abc import Iterator

import requests
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from prometheus_api_client.exceptions import PrometheusApiClientException

log = logging.getLogger("autoscaler")
# prometheus-api-client's text for a non-200 answer, and urllib3's once its retries on an error status ran out.
_STATUS = re.compile(r"^HTTP Status Code (\d{3})|too many (\d{3}) error responses")


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error, then what it wraps, outermost first: urllib3's `reason`, an exception among `args` (requests wraps
    urllib3's errors so), `__cause__`, `__context__`."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)
        wrapped = next((a for a in current.args if isinstance(a, BaseException)), None)
        current = reason if isinstance(reason, BaseException) else wrapped or current.__cause__ or current.__context__


def _transport(error: BaseException, timeout_s: float) -> str | None:
    """What went wrong on the way, as the rest of a sentence about the server, read from the innermost cause out;
    None when the request got an answer (or the error is not a network one)."""
    for e in reversed(list(_causes(error))):
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"unreachable (TLS certificate not trusted: {e.verify_message})"
        if isinstance(e, ssl.SSLError):
            return f"unreachable (TLS failed: {str(e.reason or e).lower().replace('_', ' ')})"
        if isinstance(e, socket.gaierror | urllib3.exceptions.NameResolutionError):
            return "unreachable (host name not resolved)"
        if isinstance(e, http.client.RemoteDisconnected):
            return "unreachable (connection closed without an answer)"
        if isinstance(e, urllib3.exceptions.NewConnectionError):  # a ConnectTimeoutError only by inheritance
            return "unreachable (connection failed)"
        if isinstance(e, TimeoutError | urllib3.exceptions.TimeoutError | requests.exceptions.Timeout):
            return f"did not answer within {timeout_s:g}s"
        if isinstance(e, OSError) and not isinstance(e, requests.exceptions.RequestException):  # those are IOErrors
            return f"unreachable ({(e.strerror or str(e) or type(e).__name__).lower()})"
    return None


def _status_text(code: int) -> str:
    try:
        return f"{code} {http.HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def _answered(code: int) -> str:
    """An HTTP error status, as the rest of a sentence about the server."""
    if code in (401, 403):
        return f"refused the autoscaler's credentials ({_status_text(code)})"
    return f"answered {_status_text(code)}"


def _status_code(error: BaseException) -> int | None:
    for e in _causes(error):
        if isinstance(e, PrometheusApiClientException | urllib3.exceptions.ResponseError):
            found = _STATUS.search(str(e))
            if found:
                return int(found.group(1) or found.group(2))
    return None


def prometheus_problem(url: str, timeout_s: float, error: BaseException) -> str:
    """Why a cycle's Prometheus queries gave nothing usable, e.g.
    `Prometheus at http://prometheus.monitoring:9090 unreachable (connection refused)`."""
    where = f"Prometheus at {url}"
    code = _status_code(error)
    if code is not None:
        return f"{where} {_answered(code)}"
    said = _transport(error, timeout_s)
    if said is not None:
        return f"{where} {said}"
    return f"{where} answered something that is not a query result ({type(error).__name__})"


def kubernetes_problem(error: BaseException, timeout_s: float) -> str | None:
    """A failed Kubernetes API call, e.g. `Kubernetes API unreachable (connection refused)` or, for a 403, the API
    server's own message (`pods is forbidden: User "system:serviceaccount:..." cannot list resource "pods" ...`);
    None for an error that is not an API call's."""
    said = _transport(error, timeout_s)
    if said is None and isinstance(error, ApiException) and error.status:
        message = _api_message(error.body)
        if error.status == 403 and message:
            return f"Kubernetes API: {message}"
        said = _answered(error.status) + (f": {message}" if message and error.status != 401 else "")
    elif said is None and isinstance(error, ApiException | urllib3.exceptions.HTTPError):
        said = f"call failed ({type(error).__name__})"
    return f"Kubernetes API {said}" if said else None


def _api_message(body: object) -> str | None:
    """The `message` of the Status object the API server answers an error with."""
    try:
        found = json.loads(body) if isinstance(body, str | bytes) else None
    except ValueError:
        return None
    message = found.get("message") if isinstance(found, dict) else None
    return str(message).replace("\n", " ") if message else None


def log_failure(what: str, error: Exception, timeout_s: float) -> None:
    """`what failed: <the API's problem>` in one line; any other error is a bug, logged with its traceback."""
    problem = kubernetes_problem(error, timeout_s)
    if problem is None:
        log.exception("%s failed", what)
    else:
        log.error("%s failed: %s", what, problem)
