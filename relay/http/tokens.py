"""API token administration: list, create, delete (needs ``token.admin`` or ``admin``).

Tokens are 64 random hex characters, shown once when created. Only their
SHA-256 digest is stored: a token is a random 256-bit secret, so a fast hash
is as good as a KDF against guessing and keeps each token-authenticated call to
one indexed lookup. The list therefore names each token by its digest, which
``DELETE /api/token/<digest>`` accepts as well as the token itself; except the
token the call itself was authenticated with, shown in clear (the caller holds
it): openWB lists the tokens and deletes every one that is not its own.
"""

from __future__ import annotations

import logging

from relay import permits
from relay.db import token_hash
from relay.http.authenticator import Credential
from relay.http.call import Call
from relay.http.control import free_text
from relay.http.formatting import time_text
from relay.http.messages import HttpError, Response, json_response

log = logging.getLogger("relay.http.tokens")


def _own_token(call: Call) -> tuple[str, str] | None:
    """(digest, clear value) of the token this call was authenticated with, if any."""
    login = call.login
    if login is None or login.via != "token" or login.credential is None:
        return None
    clear = call.param("password") or ""
    digest = login.credential.value
    return (digest, clear) if clear and token_hash(clear) == digest else None


async def token_list(call: Call) -> Response:
    records = await call.api.services.store.list_tokens(call.owner)
    own = _own_token(call)
    return json_response([
        {
            "owner": r.owner,
            "token": own[1] if own is not None and r.token_hash == own[0] else r.token_hash,
            "application": r.application,
            "purpose": r.purpose,
            "permit": r.permit,
            "created": time_text(r.created),
            "lastused": None if r.lastused is None else time_text(r.lastused),
        }
        for r in records
    ])


async def token_create(call: Call) -> Response:
    assert call.login is not None
    application = free_text(call, "application", required=False) or "notspecified"
    purpose = free_text(call, "purpose", required=False) or "notspecified"
    permit = free_text(call, "permit", required=False) or "auth"
    try:
        permits.parse(permit)
    except permits.UnknownPermit as exc:
        raise HttpError(400, str(exc)) from None
    # No escalation: a token can only carry rights its creator holds.
    if not permits.covers(call.login.permissions, permit):
        log.info("%s: token with permit %r refused (more than the caller's rights)",
                 call.context(), permit)
        raise HttpError(403, "Insufficient rights")
    token, _record = await call.api.services.store.create_token(
        call.owner, application, purpose, permit)
    log.info("%s: token created for application %r, permit %r", call.context(), application,
             permit)
    return json_response({"owner": call.owner, "token": token, "application": application,
                          "purpose": purpose, "permit": permit}, status=201)


async def token_delete(call: Call) -> Response:
    token = call.args["token"]
    if len(token) > 200:
        raise HttpError(404, "Token not found")
    digest = await call.api.services.store.delete_token(call.owner, token)
    # Cached logins and sessions of this owner may rest on the token: they must not
    # outlive it.
    call.api.auth.forget(call.owner)
    ended = 0
    if digest is not None:
        ended = call.api.sessions.end_revoked({(call.owner, Credential("token", digest))},
                                              "token revoked", everywhere=True)
        await call.api.sessions.flush()
    log.info("%s: token %s", call.context(),
             f"deleted, {ended} session(s) ended" if digest else "to delete not found")
    # 200 either way, as the public server: deleting is idempotent.
    return json_response({"owner": call.owner, "token": token})
