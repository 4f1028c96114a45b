from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from api.cross_origin import NoForeignOrigin, check_cookie_request
from api.deps import (
    ACCESS_COOKIE,
    REFRESH_COOKIE,
    AccessToken,
    CurrentUser,
    SessionDep,
    SettingsDep,
)
from api.ratelimit import LoginRateLimit
from api.schemas.auth import (
    LoginRequest,
    PasswordChangeRequest,
    RefreshRequest,
    RegisterRequest,
    TokenOut,
    UserOut,
)
from api.schemas.common import BODY_PROBLEMS, problem_responses
from orderflow.auth import service as auth
from orderflow.errors import NotAuthenticated
from orderflow.models import User
from orderflow.settings import Settings

router = APIRouter(prefix="/auth", tags=["auth"])


def _user_out(user: User) -> UserOut:
    return UserOut(id=user.id, email=user.email, name=user.name, role=user.role)


def _tokens_out(response: Response, settings: Settings, pair: auth.TokenPair) -> TokenOut:
    common = {"httponly": True, "secure": settings.cookie_secure, "samesite": "lax"}
    response.set_cookie(
        ACCESS_COOKIE,
        pair.access_token,
        max_age=pair.expires_in,
        path="/",
        **common,  # type: ignore[arg-type]
    )
    response.set_cookie(
        REFRESH_COOKIE,
        pair.refresh_token,
        max_age=settings.refresh_token_ttl_seconds,
        path="/api/v1/auth",
        **common,  # type: ignore[arg-type]
    )
    return TokenOut(
        access_token=pair.access_token, expires_in=pair.expires_in, refresh_token=pair.refresh_token
    )


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=problem_responses(*BODY_PROBLEMS, 409),
)
def register(body: RegisterRequest, session: SessionDep) -> UserOut:
    return _user_out(auth.register_user(session, body.email, body.password, body.name))


@router.post(
    "/login",
    response_model=TokenOut,
    responses=problem_responses(*BODY_PROBLEMS, 401, 403, 429),
    dependencies=[NoForeignOrigin, LoginRateLimit],
)
def login(
    body: LoginRequest, response: Response, session: SessionDep, settings: SettingsDep
) -> TokenOut:
    return _tokens_out(response, settings, auth.login(session, settings, body.email, body.password))


@router.post(
    "/refresh", response_model=TokenOut, responses=problem_responses(*BODY_PROBLEMS, 401, 403)
)
def refresh(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    body: RefreshRequest | None = None,
) -> TokenOut:
    token = body.refresh_token if body else None
    if not token:
        token = request.cookies.get(REFRESH_COOKIE)
        if not token:
            raise NotAuthenticated("send the refresh token in the body or its cookie")
        check_cookie_request(request)
    return _tokens_out(response, settings, auth.refresh(session, settings, token))


@router.post(
    "/logout", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 403)
)
def logout(
    user: CurrentUser, token: AccessToken, session: SessionDep, settings: SettingsDep
) -> Response:
    auth.logout(session, auth.session_id_of(settings, token))
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(ACCESS_COOKIE, path="/")
    response.delete_cookie(REFRESH_COOKIE, path="/api/v1/auth")
    return response


@router.put(
    "/password", response_model=TokenOut, responses=problem_responses(*BODY_PROBLEMS, 401, 403)
)
def change_password(
    body: PasswordChangeRequest,
    user: CurrentUser,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
) -> TokenOut:
    pair = auth.change_password(session, settings, user, body.current_password, body.new_password)
    return _tokens_out(response, settings, pair)


@router.get("/me", response_model=UserOut, responses=problem_responses(401))
def me(user: CurrentUser) -> UserOut:
    return _user_out(user)
