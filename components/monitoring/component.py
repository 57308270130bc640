"""Monitoring: kube-prometheus-stack with the platform's pod monitors, rules and dashboards, and Grafana."""

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.kube import (
    deny_ingress,
    helm_release,
    labels,
    manifest,
    namespace,
    namespace_selector,
    network_policy,
    resources,
)
from components.model_serving.args import ModelArgs
from components.monitoring import dashboards
from components.monitoring.args import MonitoringArgs
from components.monitoring.rules import alert_settings, rule_groups
from components.monitoring.scraping import pod_monitors
from components.pins import DCGM_DASHBOARD_GNET_ID, DCGM_DASHBOARD_REVISION, KUBE_PROMETHEUS_STACK

# The chart names its Services after the release (it contains the chart's name, so no suffix is added).
PROMETHEUS_SERVICE = f"{KUBE_PROMETHEUS_STACK.release}-prometheus"
PROMETHEUS_PORT = 9090
GRAFANA_SERVICE = f"{KUBE_PROMETHEUS_STACK.release}-grafana"
GRAFANA_PORT = 80
GRAFANA_CONTAINER_PORT = 3000
GRAFANA_ADMIN_SECRET = "grafana-admin"
# The chart's default `grafana.sidecar.dashboards.label`/`labelValue`, set explicitly so both sides agree.
DASHBOARD_LABEL = "grafana_dashboard"
DASHBOARD_LABEL_VALUE = "1"
DASHBOARD_PROVIDER = "gpu"
PROMETHEUS_DATASOURCE = "Prometheus"
SMALL_CONTAINER = resources(("10m", "200m"), ("32Mi", "256Mi"))  # sidecars and one-shot Jobs


def ingress_spec(query_namespaces: Sequence[str]) -> dict[str, Any]:
    """Inside the stack anything goes; from outside: Prometheus for the namespaces that query it, Grafana for
    people, and the operator's admission webhook for the API server. (node-exporter uses the host network.)"""
    rules: list[dict[str, Any]] = [{"from": [{"podSelector": {}}]}]
    if query_namespaces:
        ports = [{"protocol": "TCP", "port": PROMETHEUS_PORT}]
        rules.append({"from": [namespace_selector(n) for n in query_namespaces], "ports": ports})
    rules.append({"ports": [{"protocol": "TCP", "port": GRAFANA_CONTAINER_PORT}, {"protocol": "TCP", "port": 10250}]})
    return {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": rules}


def prometheus_url(namespace_name: str) -> str:
    return f"http://{PROMETHEUS_SERVICE}.{namespace_name}.svc:{PROMETHEUS_PORT}"


def grafana_url(namespace_name: str) -> str:
    return f"http://{GRAFANA_SERVICE}.{namespace_name}.svc:{GRAFANA_PORT}"


def prometheus_values(args: MonitoringArgs, models: Sequence[ModelArgs]) -> dict[str, Any]:
    """Prometheus keeps the configured history and selects monitors and rules of every release, not only its own."""
    claim: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": args.storage_size}},
    }
    if args.storage_class is not None:
        claim["storageClassName"] = args.storage_class
    spec = {
        "retention": args.retention,
        "scrapeInterval": args.scrape_interval,
        "evaluationInterval": args.scrape_interval,
        "storageSpec": {"volumeClaimTemplate": {"spec": claim}},
        **{
            f"{kind}SelectorNilUsesHelmValues": False
            for kind in ("serviceMonitor", "podMonitor", "rule", "probe", "scrapeConfig")
        },
    }
    return {"prometheusSpec": spec, "additionalPodMonitors": pod_monitors([m.namespace for m in models])}


def grafana_values(enabled: bool) -> dict[str, Any]:
    """Admin credentials from our Secret; our dashboards through the sidecar; DCGM's by id from grafana.com."""
    if not enabled:
        return {"enabled": False}
    return {
        "enabled": True,
        "admin": {"existingSecret": GRAFANA_ADMIN_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"},
        "resources": resources(("100m", "1"), ("256Mi", "1Gi")),
        # The dashboard and datasource sidecars, and the init container that downloads dashboards by id.
        "sidecar": {
            "dashboards": {"enabled": True, "label": DASHBOARD_LABEL, "labelValue": DASHBOARD_LABEL_VALUE},
            "resources": SMALL_CONTAINER,
        },
        "downloadDashboards": {"resources": SMALL_CONTAINER},
        "dashboardProviders": {
            "dashboardproviders.yaml": {
                "apiVersion": 1,
                "providers": [
                    {
                        "name": DASHBOARD_PROVIDER,
                        "orgId": 1,
                        "folder": "GPU",
                        "type": "file",
                        "disableDeletion": True,
                        "editable": False,
                        "options": {"path": f"/var/lib/grafana/dashboards/{DASHBOARD_PROVIDER}"},
                    }
                ],
            }
        },
        "dashboards": {
            DASHBOARD_PROVIDER: {
                "nvidia-dcgm-exporter": {
                    "gnetId": DCGM_DASHBOARD_GNET_ID,
                    "revision": DCGM_DASHBOARD_REVISION,
                    "datasource": PROMETHEUS_DATASOURCE,
                }
            }
        },
    }


def monitoring_values(args: MonitoringArgs, models: Sequence[ModelArgs]) -> dict[str, Any]:
    """Every container the chart itself runs has requests and limits (Prometheus and Alertmanager run the
    operator's defaults)."""
    return {
        "prometheusOperator": {
            "resources": resources(("100m", "500m"), ("128Mi", "512Mi")),
            "admissionWebhooks": {"patch": {"resources": SMALL_CONTAINER}},
        },
        "kube-state-metrics": {"resources": resources(("50m", "500m"), ("128Mi", "512Mi"))},
        "prometheus-node-exporter": {"resources": resources(("50m", "250m"), ("32Mi", "128Mi"))},
        "prometheus": prometheus_values(args, models),
        "additionalPrometheusRulesMap": {"llm-platform": {"groups": rule_groups(models, alert_settings(args))}},
        "grafana": grafana_values(args.grafana),
    }


class Monitoring(pulumi.ComponentResource):
    """Namespace (privileged: node-exporter uses the host's namespaces), Grafana's admin Secret and dashboards,
    and the pinned kube-prometheus-stack release, whose CRDs the other parts' monitors need."""

    def __init__(
        self,
        name: str,
        args: MonitoringArgs,
        models: Sequence[ModelArgs],
        query_namespaces: Sequence[str] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("llm-platform:monitoring:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.namespace = namespace(f"{name}-namespace", args.namespace, "monitoring", "privileged", child)
        ns = self.namespace.metadata.name
        deny_ingress(f"{name}-deny-ingress", ns, child)
        network_policy(f"{name}-allow", ns, "allow-monitoring-flows", ingress_spec(query_namespaces), child)
        before_release: list[pulumi.Resource] = []
        self.grafana_admin_password: pulumi.Output[str] | None = None
        if args.grafana:
            password = random.RandomPassword(f"{name}-grafana-password", length=32, special=False, opts=child)
            self.grafana_admin_password = pulumi.Output.secret(password.result)
            before_release.append(
                k8s.core.v1.Secret(
                    f"{name}-grafana-admin",
                    metadata=manifest({"name": GRAFANA_ADMIN_SECRET, "namespace": ns, "labels": labels("monitoring")}),
                    type="Opaque",
                    string_data={"admin-user": "admin", "admin-password": self.grafana_admin_password},
                    opts=child,
                )
            )
            for board in dashboards.dashboards():
                k8s.core.v1.ConfigMap(
                    f"{name}-dashboard-{board['uid']}",
                    metadata=manifest(
                        {
                            "name": f"dashboard-{board['uid']}",
                            "namespace": ns,
                            "labels": labels("monitoring", {DASHBOARD_LABEL: DASHBOARD_LABEL_VALUE}),
                        }
                    ),
                    data=dashboards.configmap_data(board),
                    opts=child,
                )
        self.release = helm_release(
            f"{name}-release",
            KUBE_PROMETHEUS_STACK,
            ns,
            monitoring_values(args, models),
            pulumi.ResourceOptions(parent=self, depends_on=before_release),
        )
        self.namespace_name = args.namespace
        self.prometheus_url = prometheus_url(args.namespace)
        self.grafana_url = grafana_url(args.namespace) if args.grafana else None
        self.register_outputs(
            {
                "namespace": ns,
                "release": self.release.name,
                "prometheusUrl": self.prometheus_url,
                "grafanaUrl": self.grafana_url,
            }
        )

    def outputs(self) -> dict[str, object]:
        """Stack outputs: the in-cluster addresses, how to reach them from a laptop, and Grafana's password."""
        ns = self.namespace_name
        found: dict[str, object] = {
            "prometheusUrl": self.prometheus_url,
            "prometheusPortForward": f"kubectl -n {ns} port-forward svc/{PROMETHEUS_SERVICE} 9090:{PROMETHEUS_PORT}",
        }
        if self.grafana_url is not None:
            found["grafanaUrl"] = self.grafana_url
            found["grafanaPortForward"] = f"kubectl -n {ns} port-forward svc/{GRAFANA_SERVICE} 3000:{GRAFANA_PORT}"
            found["grafanaAdminPassword"] = self.grafana_admin_password
        return found
