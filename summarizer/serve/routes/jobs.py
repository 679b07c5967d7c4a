"""Many documents: ``/v1/jobs`` — submit (JSON or NDJSON, streamed to disk), list, watch, read, cancel.

A place under the job caps (per token and in all) is taken before the body is
read, or the answer is 429 at once; the body goes to disk as it arrives and is
parsed by a parser process; the task and options are checked at submission
(422 with the same message as a single document), never only when the job runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import ClientDisconnect

from ...errors import InputError, SummarizerError
from ..deps import Caller, ServicesDep
from ..errors import Refusal
from ..queue import Job, JobsFull, QueueUnavailable
from ..models import ErrorBody, JobRequest
from ..parsing import json_job
from ..services import Services
from ..uploads import receive_ndjson, receive_raw

__all__ = ["router"]

router = APIRouter(tags=["jobs"])
JobId = Annotated[str, PathParam(max_length=64)]


@router.post("/v1/jobs", status_code=202,
             responses={413: {"model": ErrorBody}, 422: {"model": ErrorBody}, 429: {"model": ErrorBody}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": JobRequest.model_json_schema()},
                 "application/x-ndjson": {"schema": {"type": "string", "description": "One document per line"}}}}})
async def create_job(
    request: Request, who: Caller, found: ServicesDep, task: Annotated[str | None, Query(max_length=40)] = None,
    words: str | None = None, language: Annotated[str | None, Query(max_length=40)] = None, strict: bool = False,
    verify: bool = False, published: dt.date | None = None,
) -> JSONResponse:
    """Submit many documents: JSON `{"task", "documents": [...]}` or NDJSON with `?task=`.

    The body is streamed to disk as it arrives; a place under the job caps (per token and
    in all) is taken before it is read, or the answer is 429 at once.
    """
    queue = found.queue
    ndjson = _media(request) != "application/json"
    if ndjson:
        if task is None:
            raise HTTPException(422, "an NDJSON job needs ?task= (brief, events, or any registered task)")
        chosen, options = _checked(found, task, _words_param(words), language, strict, verify, published)
    try:
        job_id = await queue.reserve(who)
    except JobsFull as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": "30"}) from None
    folder = queue.spool(job_id)
    submitted = False
    try:
        folder.mkdir(parents=True)
        if ndjson:
            total = await receive_ndjson(request.stream(), folder / "input.jsonl")
        else:
            chosen, options, total = await _json_job(request, folder, found)
        if not total:
            raise HTTPException(422, "the job has no documents")
        job = await queue.submit(job_id, who, chosen, options, total)
        submitted = True
    except ClientDisconnect:
        raise HTTPException(400, "the client went away before the body ended") from None
    except JobsFull as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": "30"}) from None
    finally:
        if not submitted:
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(QueueUnavailable):
                await queue.release(who, job_id)
    return JSONResponse(job.as_dict(_base(request)), status_code=202)


@router.get("/v1/jobs", responses={404: {"model": ErrorBody}})
async def list_jobs(request: Request, who: Caller, found: ServicesDep,
                    limit: Annotated[int, Query(ge=1, le=100)] = 20,
                    after: Annotated[str | None, Query(max_length=64)] = None) -> JSONResponse:
    """The caller's jobs, newest first, `limit` at a time; `next` is the `after` of the next page."""
    jobs = await found.queue.owned(who, limit + 1, after)
    if jobs is None:
        raise HTTPException(404, f"no job {after}")
    page = jobs[:limit]
    return JSONResponse({"jobs": [job.as_dict(_base(request)) for job in page],
                         "next": page[-1].id if len(jobs) > limit else None})


@router.get("/v1/jobs/{job_id}", responses={404: {"model": ErrorBody}})
async def job_status(job_id: JobId, request: Request, who: Caller, found: ServicesDep,
                     wait: Annotated[float, Query(ge=0, le=300)] = 0) -> JSONResponse:
    """State, counts (ok, failed, unsupported, pending), usage and ETA of a job.

    `?wait=30` holds the answer until the job ends or 30 s pass (long polling).
    """
    job = await _owned(found, job_id, who)
    if wait and job.status in ("queued", "running"):
        await found.queue.wait(job.id, wait)
        job = await _owned(found, job_id, who)
    return JSONResponse(job.as_dict(_base(request)))


@router.get("/v1/jobs/{job_id}/results", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}}}, 404: {"model": ErrorBody}})
async def job_results(job_id: JobId, who: Caller, found: ServicesDep,
                      status: Literal["ok", "error"] | None = Query(None)) -> StreamingResponse:
    """The Result records so far, one JSON per line (each id once); readable while the job runs."""
    job = await _owned(found, job_id, who)
    return StreamingResponse(found.queue.results(job.id, status), media_type="application/x-ndjson")


@router.delete("/v1/jobs/{job_id}", responses={404: {"model": ErrorBody}})
async def cancel_job(job_id: JobId, request: Request, who: Caller, found: ServicesDep) -> JSONResponse:
    """Cancel a queued or running job; what it finished stays readable."""
    job = await found.queue.cancel((await _owned(found, job_id, who)).id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return JSONResponse(job.as_dict(_base(request)))


async def _owned(found: Services, job_id: str, who: str) -> Job:
    job = await found.queue.get(job_id)
    if job is None or job.owner != who:
        raise HTTPException(404, f"no job {job_id}")
    return job


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _checked(found: Services, task: str, words: tuple[int, int] | None, language: str | None, strict: bool,
             verify: bool, published: dt.date | None) -> tuple[str, dict[str, Any]]:
    """A job's task and options, checked now as a single document's are (422, same message), not when it runs."""
    try:
        spec = found.summarizer.task(task)
        found.summarizer.checked(spec, found.summarizer.options(words=words, language=language, strict=strict,
                                                               verify=verify))
    except SummarizerError as exc:
        raise Refusal(422, str(exc), code=exc.code) from None
    return spec.name, {"words": list(words) if words else None, "language": language, "strict": strict,
                       "verify": verify, "published": published.isoformat() if published else None}


async def _json_job(request: Request, folder: Path, found: Services) -> tuple[str, dict[str, Any], int]:
    """A JSON job body: to disk as it arrives, then parsed (into input.jsonl) by a parser process."""
    upload = folder / "upload.json"
    await receive_raw(request.stream(), upload)
    try:
        fields, total = await found.pool.call("body", json_job, str(upload), str(folder / "input.jsonl"),
                                              budget=max(30.0, found.config.parse_timeout))
    except InputError as exc:
        raise HTTPException(422, str(exc)) from None
    finally:
        upload.unlink(missing_ok=True)
    words = tuple(fields["words"]) if fields.get("words") else None
    published = dt.date.fromisoformat(fields["published"]) if fields.get("published") else None
    task, options = _checked(found, fields["task"], words, fields.get("language"), bool(fields.get("strict")),
                             bool(fields.get("verify")), published)
    return task, options, total


def _words_param(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    low, sep, high = value.partition("-")
    if not (sep and low.isdecimal() and high.isdecimal()):
        raise HTTPException(422, f"words={value!r}: expected MIN-MAX, e.g. 60-90")
    return int(low), int(high)


def _media(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()
