"""The outermost layer: request ids, and OpenAI-shaped errors for everything that escapes.

Handlers raise ``ApiError``; aiohttp raises its own ``HTTPException`` for unknown routes,
wrong methods and oversized bodies; anything else is a bug. All three leave here as
``{"error": {...}}`` JSON with ``x-request-id`` and ``x-fulcrum-deployment``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable

from aiohttp import web

from fulcrum.api.errors import ApiError, internal_error

log = logging.getLogger("fulcrum.api")

REQUEST_ID = "x-request-id"
DEPLOYMENT = "x-fulcrum-deployment"
ATTEMPTS = "x-fulcrum-attempts"
FALLBACK = "x-fulcrum-fallback"
NO_DEPLOYMENT = "-"

request_id_key = web.RequestKey("request_id", str)


def new_request_id() -> str:
    return "req_" + os.urandom(12).hex()


def error_response(
    error: ApiError, request_id: str, deployment: str = NO_DEPLOYMENT
) -> web.Response:
    headers = {REQUEST_ID: request_id, DEPLOYMENT: deployment, **error.headers}
    return web.Response(
        status=error.status,
        body=error.body(),
        content_type="application/json",
        headers=headers,
    )


_HTTP_CODES = {
    404: ("Unknown request URL. Please check the URL and method.", "unknown_url"),
    405: ("Method not allowed for this URL.", "method_not_allowed"),
    413: ("The request body is larger than the gateway accepts.", "request_too_large"),
}


@web.middleware
async def errors_and_ids(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Assign the request id and turn every escaping failure into an OpenAI error."""
    request_id = request.headers.get(REQUEST_ID) or new_request_id()
    request[request_id_key] = request_id
    try:
        response = await handler(request)
    except ApiError as exc:
        return error_response(exc, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message, code = _HTTP_CODES.get(exc.status, (exc.reason, None))
        error = ApiError(exc.status, message, code=code)
        return error_response(error, request_id)
    except Exception:
        log.exception("request %s failed unexpectedly", request_id)
        return error_response(internal_error(), request_id)
    if not response.prepared:
        headers = response.headers
        if REQUEST_ID not in headers:
            headers[REQUEST_ID] = request_id
        if DEPLOYMENT not in headers:
            headers[DEPLOYMENT] = NO_DEPLOYMENT
    return response
