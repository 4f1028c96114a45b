from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.problems import problem
from api.schemas.common import json_answer, problem_example, problem_responses

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    summary="Liveness",
    description="The process answers. Checks nothing else: use `/readyz` for that.",
    responses=json_answer(200, "Alive", ok={"status": "ok"}),
)
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


_READY = {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


@router.get(
    "/readyz",
    summary="Readiness",
    description=(
        "Ready to serve: PostgreSQL and the broker (Redis) both answer. 503 names what does "
        "not, so a load balancer can take this instance out."
    ),
    responses={
        **json_answer(200, "Ready", ready=_READY),
        **problem_responses(
            503,
            examples={
                503: {
                    "broker-down": problem_example(
                        503,
                        "unavailable",
                        "Service unavailable",
                        "not ready: broker unavailable",
                        checks={"database": "ok", "broker": "unavailable: ConnectionError"},
                    )
                }
            },
        ),
    },
)
def readyz(request: Request) -> JSONResponse:
    """Readiness: the database and the broker both answer."""
    checks = {"database": "ok", "broker": "ok"}
    try:
        with request.app.state.database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        checks["database"] = f"unavailable: {type(error).__name__}"
    try:
        request.app.state.redis.ping()
    except Exception as error:
        checks["broker"] = f"unavailable: {type(error).__name__}"
    if all(value == "ok" for value in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, value in checks.items() if value != "ok")
    return problem(503, f"not ready: {failing} unavailable", checks=checks)
