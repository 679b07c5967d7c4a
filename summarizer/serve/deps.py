"""Route dependencies: the shared services, who is calling, and the task a route is for."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..errors import UsageError
from ..registry import TaskSpec
from .services import Services

__all__ = ["Caller", "ServicesDep", "TaskDep", "caller", "services", "task_spec"]

_bearer = HTTPBearer(auto_error=False, description="A service token: `Authorization: Bearer <token>`.")


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]


async def caller(
    request: Request, found: ServicesDep,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> str:
    """The caller's token id, or 401; 429 with Retry-After past the token's requests a minute."""
    who = found.tokens.identify(request.headers.get("authorization"))
    if who is None:
        raise HTTPException(401, "missing or unknown bearer token", headers={"WWW-Authenticate": "Bearer"})
    wait = await found.rates.admit(who)
    if wait is not None:
        raise HTTPException(429, f"more than {found.config.rpm_per_token:g} requests a minute for this token",
                            headers={"Retry-After": str(int(wait) + 1)})
    return str(who)


Caller = Annotated[str, Depends(caller)]


def task_spec(task: str, found: ServicesDep) -> TaskSpec[Any]:
    """The task a route names, from the service's registry (built-in, shipped, plugins', --tasks-dir); else 404."""
    try:
        return found.summarizer.task(task)
    except UsageError as exc:
        raise HTTPException(404, str(exc)) from None


TaskDep = Annotated[TaskSpec[Any], Depends(task_spec)]
