"""Prometheus metrics for the relay (one registry per app, so tests can run several apps).

=============================================  ==========================================
``fhir_iapt_relay_accepted_total{direction}``   records queued (duplicates not counted)
``fhir_iapt_relay_duplicates_total{direction}`` records already held (same id returned)
``fhir_iapt_relay_rejected_total{direction}``   records rejected with an OperationOutcome
``fhir_iapt_relay_skipped_total{direction}``    records skipped on purpose (e.g. no consent)
``fhir_iapt_relay_delivered_total{direction}``  messages the destination accepted
``fhir_iapt_relay_retried_total{direction}``    attempts that failed and will be retried
``fhir_iapt_relay_dead_total{direction}``       messages that became dead letters
``fhir_iapt_relay_queue_depth{status}``         messages by status, read from the outbox
``fhir_iapt_relay_delivery_latency_seconds``    accepted -> delivered, per direction
``fhir_iapt_relay_attempt_seconds``             one delivery attempt, per direction
=============================================  ==========================================

Queue depth is read from the outbox at scrape time, so it is right after a restart; the
counters count since the process started, as Prometheus counters do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_P = "fhir_iapt_relay"
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600)


class _QueueDepth(Collector):
    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            f"{_P}_queue_depth", "Messages in the outbox by status", labels=["status"]
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = self._family()
        for status, count in sorted(self._counts().items()):
            gauge.add_metric([status], count)
        yield gauge


class RelayMetrics:
    """The relay's counters and histograms, in their own registry."""

    def __init__(self, queue_counts: Callable[[], Mapping[str, int]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry

        def counter(name: str, doc: str) -> Counter:
            return Counter(f"{_P}_{name}", doc, ["direction"], registry=r)

        self.accepted = counter("accepted", "Records queued for delivery")
        self.duplicates = counter("duplicates", "Records already held; the same id was returned")
        self.rejected = counter("rejected", "Records rejected with an OperationOutcome")
        self.skipped = counter("skipped", "Records skipped on purpose (no decision, no consent)")
        self.delivered = counter("delivered", "Messages delivered to their destination")
        self.retried = counter("retried", "Delivery attempts that failed and will be retried")
        self.dead = counter("dead", "Messages that became dead letters")
        self.latency = Histogram(
            f"{_P}_delivery_latency_seconds",
            "Seconds from acceptance to delivery",
            ["direction"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.attempt_seconds = Histogram(
            f"{_P}_attempt_seconds",
            "Seconds one delivery attempt took",
            ["direction"],
            registry=r,
        )
        r.register(_QueueDepth(queue_counts))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


__all__ = ["CONTENT_TYPE", "RelayMetrics"]
