"""Leader election on a coordination.k8s.io Lease: of the autoscaler's replicas, only the holder acts.

A replica takes the Lease when it is free or expired and keeps it by renewing; writes are optimistic (a 409 means
another replica won), so two replicas never both believe they lead for longer than one renewal. Taking, losing and
handing over the Lease are logged.
"""

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from autoscaler.kube import Kube

log = logging.getLogger("autoscaler")


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kube, self.namespace, self.name, self.identity = kube, namespace, name, identity
        self.lease_seconds, self.clock = lease_seconds, clock
        self.leading: bool | None = None  # unknown until the first attempt

    def try_acquire(self) -> bool:
        """Take or renew the Lease; False when another live replica holds it or won the race."""
        leading, holder = self._acquire()
        if leading != self.leading:
            lease = f"{self.namespace}/{self.name}"
            if leading:
                log.info("%s leads: it holds the Lease %s", self.identity, lease)
            else:
                log.info("%s stands by: %s holds the Lease %s", self.identity, holder, lease)
        self.leading = leading
        return leading

    def _acquire(self) -> tuple[bool, str]:
        """Whether this replica holds the Lease now, and who does."""
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        try:
            lease = self.kube.lease(self.namespace, self.name)
            if lease is None:
                fresh = client.V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=self.lease_seconds,
                    acquire_time=now,
                    renew_time=now,
                    lease_transitions=0,
                )
                meta = client.V1ObjectMeta(name=self.name, namespace=self.namespace)
                self.kube.create_lease(self.namespace, client.V1Lease(metadata=meta, spec=fresh))
                return True, self.identity
            spec: Any = lease.spec
            if spec.holder_identity not in (None, "", self.identity) and not self._expired(spec, now):
                return False, str(spec.holder_identity)
            if spec.holder_identity != self.identity:
                spec.acquire_time = now
                spec.lease_transitions = (spec.lease_transitions or 0) + 1
            spec.holder_identity = self.identity
            spec.lease_duration_seconds = self.lease_seconds
            spec.renew_time = now
            self.kube.replace_lease(self.namespace, lease)
            return True, self.identity
        except ApiException as error:
            if error.status == 409:
                return False, "another replica"
            raise

    def release(self) -> None:
        """On shutdown: hand the Lease over at once instead of letting it expire."""
        lease = self.kube.lease(self.namespace, self.name)
        if lease is not None and lease.spec.holder_identity == self.identity:
            lease.spec.holder_identity = None
            self.kube.replace_lease(self.namespace, lease)
            self.leading = False
            log.info("%s handed the Lease %s/%s over", self.identity, self.namespace, self.name)

    @staticmethod
    def _expired(spec: client.V1LeaseSpec, now: dt.datetime) -> bool:
        if spec.renew_time is None:
            return True
        renewed = spec.renew_time if spec.renew_time.tzinfo else spec.renew_time.replace(tzinfo=dt.UTC)
        return renewed + dt.timedelta(seconds=spec.lease_duration_seconds or 0) < now
