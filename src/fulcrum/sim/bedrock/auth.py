"""Request authentication as AWS does it: SigV4 (recomputed with botocore's signer) or a
Bedrock API key sent as ``Authorization: Bearer <key>``.

SigV4 verification rebuilds the received request as a botocore ``AWSRequest`` — method, URL
with the raw (still percent-encoded) path, only the headers listed in ``SignedHeaders``, the
body — and asks ``botocore.auth.SigV4Auth`` for the canonical request, the string to sign and
the signature, with the timestamp taken from ``X-Amz-Date`` and the region from the credential
scope. The signatures are compared in constant time. Failures are the errors AWS's front end
answers (403), with its messages; an ``InvalidSignatureException`` carries the canonical
request and string to sign the server expected, as AWS's does, which makes signing bugs easy
to find.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from fulcrum.sim.bedrock.errors import BedrockError

SERVICE = "bedrock"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_S = 300.0
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

INVALID_TOKEN = "The security token included in the request is invalid."
MISSING_TOKEN = "Missing Authentication Token"
BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)


def _incomplete(message: str) -> BedrockError:
    return BedrockError("IncompleteSignatureException", message)


def parse_authorization(value: str) -> dict[str, str]:
    """The ``Credential``, ``SignedHeaders`` and ``Signature`` of a SigV4 header."""
    _, _, params = value.partition(" ")
    fields: dict[str, str] = {}
    for part in params.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key] = val
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in fields]
    if missing:
        raise _incomplete(
            " ".join(f"Authorization header requires '{k}' parameter." for k in missing)
            + f" Authorization={value.split(' ', 1)[0]}"
        )
    return fields


class Authenticator:
    """Checks one request's credentials; raises :class:`BedrockError` (403) when they fail."""

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        region: str | None = None,
        api_keys: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        from botocore.credentials import Credentials

        self._access_key = access_key
        self._credentials = Credentials(access_key, secret_key)
        self._region = region
        self._api_keys = [k.encode("utf-8") for k in api_keys]
        self._clock = clock
        self._signers: dict[str, Any] = {}

    def _signer(self, region: str) -> Any:
        signer = self._signers.get(region)
        if signer is None:
            from botocore.auth import SigV4Auth

            signer = self._signers[region] = SigV4Auth(self._credentials, SERVICE, region)
        return signer

    def check(
        self,
        method: str,
        raw_path: str,
        headers: Mapping[str, str],
        all_headers: Callable[[str], list[str]],
        body: bytes,
    ) -> None:
        """Verify the request; ``all_headers(name)`` returns every value of a header."""
        authorization = headers.get("Authorization")
        if not authorization:
            raise BedrockError("MissingAuthenticationTokenException", MISSING_TOKEN)
        scheme = authorization.split(" ", 1)[0]
        if scheme.lower() == "bearer":
            self._check_bearer(authorization[len(scheme) :].strip())
            return
        self._check_sigv4(method, raw_path, headers, all_headers, body, authorization)

    def _check_bearer(self, token: str) -> None:
        presented = token.encode("utf-8")
        if not any(hmac.compare_digest(presented, key) for key in self._api_keys):
            raise BedrockError("UnrecognizedClientException", INVALID_TOKEN)

    def _check_sigv4(
        self,
        method: str,
        raw_path: str,
        headers: Mapping[str, str],
        all_headers: Callable[[str], list[str]],
        body: bytes,
        authorization: str,
    ) -> None:
        fields = parse_authorization(authorization)
        if not authorization.startswith(ALGORITHM + " "):
            raise _incomplete(f"Unsupported AWS 'algorithm': '{authorization.split(' ', 1)[0]}'.")
        scope = fields["Credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            raise _incomplete(
                f"Credential should have at least 5 slash-separated parts, not {len(scope)}."
                if len(scope) < 5
                else "Credential should be scoped with a valid terminator: 'aws4_request', "
                f"not '{scope[-1]}'."
            )
        access_key, date, region, service, _ = scope
        if access_key != self._access_key or headers.get("X-Amz-Security-Token"):
            raise BedrockError("UnrecognizedClientException", INVALID_TOKEN)
        if service != SERVICE:
            raise BedrockError(
                "InvalidSignatureException",
                f"Credential should be scoped to correct service: '{SERVICE}'. ",
            )
        if self._region is not None and region != self._region:
            raise BedrockError(
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region, not '{region}'. ",
            )
        amz_date = headers.get("X-Amz-Date")
        if not amz_date:
            raise _incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
                "header."
            )
        self._check_time(amz_date, date)
        signed = [name for name in fields["SignedHeaders"].split(";") if name]
        if "host" not in signed:
            raise BedrockError(
                "InvalidSignatureException",
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            )

        from botocore.awsrequest import AWSRequest
        from botocore.compat import HTTPHeaders

        request = AWSRequest(
            method=method, url=f"http://{headers.get('Host', '')}{raw_path}", data=body
        )
        signed_headers = HTTPHeaders()
        for name in signed:
            for value in all_headers(name):
                signed_headers[name] = value
        request.headers = signed_headers
        request.context["timestamp"] = amz_date
        declared = headers.get("X-Amz-Content-SHA256")
        if declared not in (None, "UNSIGNED-PAYLOAD") and (
            declared != hashlib.sha256(body).hexdigest()
        ):
            raise BedrockError(
                "InvalidSignatureException",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
        signer = self._signer(region)
        canonical = signer.canonical_request(request)
        string_to_sign = signer.string_to_sign(request, canonical)
        expected = signer.signature(string_to_sign, request)
        if not hmac.compare_digest(expected.encode("ascii"), fields["Signature"].encode("ascii")):
            raise BedrockError(
                "InvalidSignatureException",
                f"{BAD_SIGNATURE}\n\nThe Canonical String for this request should have been\n"
                f"'{canonical}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n",
            )

    def _check_time(self, amz_date: str, scope_date: str) -> None:
        try:
            when = datetime.strptime(amz_date, _DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise _incomplete(
                f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See "
                "http://en.wikipedia.org/wiki/ISO_8601"
            ) from None
        if scope_date != amz_date[:8]:
            raise BedrockError(
                "InvalidSignatureException",
                f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                f"date from HTTP: '{scope_date}' != '{amz_date[:8]}', from '{amz_date}'.",
            )
        now = self._clock()
        stamp = when.timestamp()

        def fmt(t: float) -> str:
            return datetime.fromtimestamp(t, UTC).strftime(_DATE_FORMAT)

        if stamp < now - MAX_SKEW_S:
            raise BedrockError(
                "InvalidSignatureException",
                f"Signature expired: {amz_date} is now earlier than {fmt(now - MAX_SKEW_S)} "
                f"({fmt(now)} - 5 min.)",
            )
        if stamp > now + MAX_SKEW_S:
            raise BedrockError(
                "InvalidSignatureException",
                f"Signature not yet current: {amz_date} is still later than "
                f"{fmt(now + MAX_SKEW_S)} ({fmt(now)} + 5 min.)",
            )
