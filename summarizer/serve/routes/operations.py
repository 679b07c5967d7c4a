"""The process: ``/healthz`` (up), ``/readyz`` (can answer), ``/metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from ..admission import Gated
from ..deps import ServicesDep
from ..models import ErrorBody
from ..queue import QueueUnavailable

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": ErrorBody}})
async def readyz(found: ServicesDep) -> JSONResponse:
    """The job store answers, and the backend is configured (and, for the embedded model, loaded)."""
    readiness = found.readiness
    stored = await found.queue.problem()
    if stored:
        return JSONResponse({"status": "not ready", "reason": stored}, status_code=503)
    if readiness.problem:
        return JSONResponse({"status": "not ready", "reason": readiness.problem}, status_code=503)
    if not readiness.ready:
        return JSONResponse({"status": "not ready", "reason": "loading the model"}, status_code=503)
    return JSONResponse({"status": "ready", "model": found.summarizer.backend.model})


@router.get("/metrics", response_class=Response)
async def prometheus(found: ServicesDep) -> Response:
    """Prometheus metrics."""
    metrics, gated = found.metrics, found.summarizer.backend_unwrapped
    if isinstance(gated, Gated):
        metrics.queue_depth.set(gated.waiting)
        metrics.in_flight.set(gated.in_flight)
    try:
        counts = await found.queue.counts()
    except QueueUnavailable:
        counts = {}  # the database is down: the gauges keep their last values, /readyz says why
    for name, count in counts.items():
        metrics.jobs.labels(name).set(count)
    body, media = metrics.render()
    return Response(body, media_type=media)
