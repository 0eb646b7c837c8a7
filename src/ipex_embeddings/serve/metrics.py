"""Prometheus metrics of one server: requests, latency, batch sizes and queue depth.

Each app has its own registry (two apps in one process never share counters); `GET /metrics`
renders it in the Prometheus text format.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["Metrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                   30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


class Metrics:
    """The server's instruments, in one registry.

    - `ipex_embed_requests_total{route,status}`: requests answered.
    - `ipex_embed_request_seconds{route}`: request latency (histogram).
    - `ipex_embed_batch_texts{model}`: texts per model call (histogram).
    - `ipex_embed_batch_seconds{model}`: seconds per model call (histogram).
    - `ipex_embed_queue_wait_seconds{model}`: time from queueing to the call starting.
    - `ipex_embed_queue_depth{model}`: texts queued or running now (gauge).
    - `ipex_embed_rejected_total{model}`: requests refused with 429.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("ipex_embed_requests", "Requests answered, by route and status.",
                                ["route", "status"], registry=r)
        self.latency = Histogram("ipex_embed_request_seconds", "Request latency in seconds.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_texts = Histogram("ipex_embed_batch_texts", "Texts per model call.",
                                     ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("ipex_embed_batch_seconds", "Seconds per model call.",
                                       ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("ipex_embed_queue_wait_seconds",
                                    "Seconds from queueing to the model call starting.",
                                    ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("ipex_embed_queue_depth", "Texts queued or running.",
                                 ["model"], registry=r)
        self.rejected = Counter("ipex_embed_rejected", "Requests refused with 429 (queue full).",
                                ["model"], registry=r)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
