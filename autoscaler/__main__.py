"""python -m autoscaler: the controller process in the cluster.

Every interval: take or renew the leader Lease; the leader runs one reconcile pass, the others stand by. SIGTERM
ends the loop after the pass in progress and hands the Lease over at once.
"""

import argparse
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path

from kubernetes import client, config

from autoscaler.api import AUTOSCALER_METRICS_PORT, LEASE_NAME
from autoscaler.controller import LOCAL_PROMETHEUS, Controller, Settings
from autoscaler.failures import log_failure
from autoscaler.kube import Kube
from autoscaler.leader import LeaderElector
from autoscaler.metrics import PrometheusAuth, connect
from autoscaler.server import Health, serve
from autoscaler.telemetry import Telemetry, configure_logging

log = logging.getLogger("autoscaler")


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m autoscaler", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--prometheus-url", default=env("PROMETHEUS_URL", LOCAL_PROMETHEUS.url))
    p.add_argument("--prometheus-ca-file", type=Path, default=env("PROMETHEUS_CA_FILE"))
    p.add_argument("--prometheus-token-file", type=Path, default=env("PROMETHEUS_TOKEN_FILE"))
    p.add_argument("--prometheus-username", default=env("PROMETHEUS_USERNAME"))
    p.add_argument("--prometheus-password-file", type=Path, default=env("PROMETHEUS_PASSWORD_FILE"))
    p.add_argument("--namespace", default=env("POD_NAMESPACE", "wva-system"))
    p.add_argument("--identity", default=env("POD_NAME", socket.gethostname()))
    p.add_argument("--lease-name", default=LEASE_NAME)
    p.add_argument("--mode", choices=["default", "wva-v1"], default=env("AUTOSCALER_MODE", "default"))
    p.add_argument("--interval", type=float, default=float(env("AUTOSCALER_INTERVAL_SECONDS", "30")))
    p.add_argument("--dry-run", action="store_true", default=env("AUTOSCALER_DRY_RUN", "false") == "true")
    p.add_argument("--metrics-port", type=int, default=AUTOSCALER_METRICS_PORT)
    p.add_argument("--log-format", choices=["text", "json"], default=env("AUTOSCALER_LOG_FORMAT", "text"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    configure_logging(args.log_format)
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]  # running outside the cluster, e.g. against kind from a laptop
    kube = Kube(client.ApiClient())
    auth = PrometheusAuth(
        args.prometheus_url,
        args.prometheus_ca_file,
        args.prometheus_token_file,
        args.prometheus_username,
        args.prometheus_password_file,
    )
    telemetry = Telemetry()
    settings = Settings(namespace=args.namespace, mode=args.mode, dry_run=args.dry_run, prometheus=auth)
    controller = Controller(kube, connect(auth).custom_query, settings, telemetry)
    elector = LeaderElector(kube, args.namespace, args.lease_name, args.identity, lease_seconds=int(args.interval * 2))
    health = Health(args.interval)
    server = serve(args.metrics_port, telemetry.registry, health)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info(
        "autoscaler %s started: mode %s, every %.0fs, dry run %s", args.identity, args.mode, args.interval, args.dry_run
    )
    while not stop.is_set():
        started = time.monotonic()
        try:
            if elector.try_acquire():
                controller.reconcile()
            health.cycle_done()
        except Exception as error:  # the next cycle retries; /healthz reports a loop that keeps failing
            telemetry.errors.labels("cycle").inc()
            log_failure("reconcile pass", error, kube.timeout)
        stop.wait(max(0.0, args.interval - (time.monotonic() - started)))
    try:
        elector.release()
    except Exception as error:  # it expires on its own
        log_failure("handing the Lease over", error, kube.timeout)
    server.shutdown()
    log.info("autoscaler %s stopped", args.identity)


if __name__ == "__main__":
    main()
