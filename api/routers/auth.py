from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response, status

from api import examples as ex
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
    ProfileUpdate,
    RefreshRequest,
    RegisterRequest,
    TokenOut,
    UserOut,
)
from api.schemas.common import BODY_PROBLEMS, json_answer, problem_example, problem_responses
from orderflow.auth import service as auth
from orderflow.errors import NotAuthenticated
from orderflow.models import User
from orderflow.settings import Settings

router = APIRouter(prefix="/auth", tags=["auth"])


def _user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        phone=user.phone,
        sms_opt_in=user.sms_opt_in,
    )


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


_WRONG_PASSWORD = problem_example(
    401, "not-authenticated", "Not authenticated", "email or password is wrong"
)
_WEAK = problem_example(
    422,
    "unprocessable",
    "Unprocessable request",
    "password is too weak: it needs both letters and digits or symbols",
    errors=[{"field": "password", "message": "needs both letters and digits or symbols"}],
)
_BAD_PHONE = problem_example(
    422,
    "validation-error",
    "Validation failed",
    "invalid input in phone",
    errors=[
        {
            "field": "phone",
            "message": "no such number exists in that country's numbering plan",
            "type": "value_error",
        }
    ],
)
_CROSS_SITE = problem_example(
    403,
    "cross-site-request",
    "Cross-site request refused",
    "a request authenticated by cookie must send Origin (or Referer); "
    "a script sends Authorization: Bearer instead",
)
_TOKEN_PAIR = (
    "Also sets two HTTP-only cookies: `orderflow_access` (path `/`), which authenticates "
    "every request like the bearer header, and `orderflow_refresh` (path `/api/v1/auth`)."
)


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    summary="Register a customer",
    description=(
        "Creates a user with the `client` role. The password needs 8 to 128 characters, not "
        "only letters and not only digits. `phone` (optional) is an international number "
        "(`+` and country code; spaces and dashes allowed), stored as E.164; with "
        "`sms_opt_in: true` (needs a phone) the shipped and delivered notices also go by SMS. "
        "Registering does not log in: call `POST /auth/login` next."
    ),
    responses={
        **json_answer(201, "The new user", client=ex.USER),
        **problem_responses(
            *BODY_PROBLEMS,
            409,
            examples={
                409: {
                    "email-taken": problem_example(
                        409, "conflict", "Conflict", "a user with this email already exists"
                    )
                },
                422: {"weak-password": _WEAK, "bad-phone": _BAD_PHONE},
            },
        ),
    },
)
def register(body: RegisterRequest, session: SessionDep) -> UserOut:
    return _user_out(
        auth.register_user(
            session,
            body.email,
            body.password,
            body.name,
            phone=body.phone,
            sms_opt_in=body.sms_opt_in,
        )
    )


@router.post(
    "/login",
    response_model=TokenOut,
    summary="Log in",
    description=(
        "Answers an access token (send it as `Authorization: Bearer <token>`; it lives "
        "`expires_in` seconds) and a refresh token for `POST /auth/refresh`. "
        + _TOKEN_PAIR
        + " Rate-limited per account (failed attempts) and per client address: 429 with "
        "`Retry-After`."
    ),
    responses={
        **json_answer(200, "Tokens; the cookies are set too", tokens=ex.TOKENS),
        **problem_responses(
            *BODY_PROBLEMS,
            401,
            403,
            429,
            examples={
                403: {"foreign-origin": _CROSS_SITE},
                401: {"wrong-password": _WRONG_PASSWORD},
                429: {
                    "too-many-failures": problem_example(
                        429,
                        "rate-limited",
                        "Too many requests",
                        "too many failed logins for this account; retry in 37 s",
                    )
                },
            },
        ),
    },
    dependencies=[NoForeignOrigin, LoginRateLimit],
)
def login(
    body: LoginRequest, response: Response, session: SessionDep, settings: SettingsDep
) -> TokenOut:
    return _tokens_out(response, settings, auth.login(session, settings, body.email, body.password))


@router.post(
    "/refresh",
    response_model=TokenOut,
    summary="Refresh the tokens",
    description=(
        "Trades a refresh token (in the body, or the `orderflow_refresh` cookie) for a new "
        "pair. Refresh tokens rotate: each is good once, and presenting a used one again "
        "revokes the whole session (401). " + _TOKEN_PAIR
    ),
    responses={
        **json_answer(200, "A new token pair; the cookies are set too", tokens=ex.TOKENS),
        **problem_responses(
            *BODY_PROBLEMS,
            401,
            403,
            examples={
                403: {"cross-site": _CROSS_SITE},
                401: {
                    "reused": problem_example(
                        401,
                        "not-authenticated",
                        "Not authenticated",
                        "the refresh token was already used; the session is revoked",
                    )
                },
            },
        ),
    },
)
def refresh(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    body: Annotated[
        RefreshRequest | None,
        Body(
            openapi_examples={
                "in-the-body": {
                    "summary": "The refresh token in the body",
                    "value": {"refresh_token": ex.TOKENS["refresh_token"]},
                },
                "from-the-cookie": {
                    "summary": "No body: the orderflow_refresh cookie is used",
                    "value": {},
                },
            }
        ),
    ] = None,
) -> TokenOut:
    token = body.refresh_token if body else None
    if not token:
        token = request.cookies.get(REFRESH_COOKIE)
        if not token:
            raise NotAuthenticated("send the refresh token in the body or its cookie")
        check_cookie_request(request)
    return _tokens_out(response, settings, auth.refresh(session, settings, token))


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Log out",
    description=(
        "Closes the caller's session: its access and refresh tokens stop working at once, "
        "and the cookies are cleared."
    ),
    responses={
        204: {"description": "Logged out"},
        **problem_responses(401, 403, examples={403: {"cross-site": _CROSS_SITE}}),
    },
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
    "/password",
    response_model=TokenOut,
    summary="Change the password",
    description=(
        "Needs the current password. Every session of the user is revoked (other devices "
        "are logged out) and a fresh token pair is answered. " + _TOKEN_PAIR
    ),
    responses={
        **json_answer(200, "A fresh token pair for this device", tokens=ex.TOKENS),
        **problem_responses(
            *BODY_PROBLEMS,
            401,
            403,
            examples={
                403: {"cross-site": _CROSS_SITE},
                401: {
                    "wrong-password": problem_example(
                        401,
                        "not-authenticated",
                        "Not authenticated",
                        "the current password is wrong",
                    )
                },
                422: {"weak-password": _WEAK},
            },
        ),
    },
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


@router.get(
    "/me",
    response_model=UserOut,
    summary="Who am I",
    description=(
        "The logged-in user: id, email, name, role (`client` or `admin`), phone (E.164 or "
        "null) and sms_opt_in."
    ),
    responses={**json_answer(200, "The caller", client=ex.USER), **problem_responses(401)},
)
def me(user: CurrentUser) -> UserOut:
    return _user_out(user)


@router.patch(
    "/me",
    response_model=UserOut,
    summary="Change my profile",
    description=(
        "Changes the fields sent of the caller's own profile and answers it: `name`, `phone` "
        "(an international number, stored as E.164; `null` removes it, and with it the SMS "
        "opt-in) and `sms_opt_in` (true needs a phone, sent now or on file). Fields left out "
        "stay as they are; any other field is 422 (the e-mail and the role cannot change here)."
    ),
    responses={
        **json_answer(200, "The caller's profile after the change", client=ex.USER),
        **problem_responses(
            *BODY_PROBLEMS,
            401,
            403,
            examples={
                403: {"cross-site": _CROSS_SITE},
                422: {
                    "bad-phone": _BAD_PHONE,
                    "opt-in-without-phone": problem_example(
                        422,
                        "unprocessable",
                        "Unprocessable request",
                        "sms_opt_in needs a phone number: give phone as well",
                        errors=[{"field": "sms_opt_in", "message": "needs a phone number"}],
                    ),
                },
            },
        ),
    },
)
def update_me(body: ProfileUpdate, user: CurrentUser, session: SessionDep) -> UserOut:
    return _user_out(auth.update_profile(session, user, body.model_dump(exclude_unset=True)))
