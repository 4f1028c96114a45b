"""What every API route refuses before its own code runs, checked by one dependency of the
whole app (``create_app``) against the route the request matched:

* a query parameter the route does not read: 422 naming it. Ignoring it would answer a
  different question than the one asked (``GET /orders?user_id=…`` listing every order);
* a body that is not JSON on a route that takes JSON (``text/plain``, a form, XML, or no
  ``Content-Type`` at all): 415, rather than a 422 about a "dictionary" the client never sent.

Routes that are not FastAPI operations (``/docs``, ``/openapi.json``) are left alone."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.params import Form
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException


async def strict_request(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    rules = rules_of(route)
    unknown = [name for name in request.query_params if name not in rules.query_names]
    if unknown:
        takes = ", ".join(sorted(rules.query_names)) or "none"
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": f"unknown query parameter (this route takes: {takes})",
                }
                for name in unknown
            ]
        )
    if rules.takes_json and await request.body() and not is_json(request):
        sent = request.headers.get("content-type")
        got = f"it came as {sent}" if sent else "it came without one"
        raise HTTPException(
            415, f"send the body as JSON with Content-Type: application/json ({got})"
        )


def is_json(request: Request) -> bool:
    """``application/json`` or a ``+json`` type, parameters aside (FastAPI's own test)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    main, _, sub = media_type.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


@dataclass(frozen=True)
class RouteRules:
    query_names: frozenset[str]
    takes_json: bool


#: By ``id`` of the route, holding the route too (so no id is reused): routes are not hashable.
_RULES: dict[int, tuple[APIRoute, RouteRules]] = {}


def rules_of(route: APIRoute) -> RouteRules:
    """What ``route`` reads: its query parameters (its dependencies' included) and whether
    its body is JSON. Worked out once per route."""
    known = _RULES.get(id(route))
    if known is None:
        body = route.body_field
        rules = RouteRules(
            query_names=frozenset(_query_names(route.dependant)),
            takes_json=body is not None and not isinstance(body.field_info, Form),
        )
        known = _RULES[id(route)] = (route, rules)
    return known[1]


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names
