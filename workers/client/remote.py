"""The HTTP client of the API, which the CLI's data commands use when it has an API URL.

Every call names an operation of ``OPERATIONS`` (method, path, the query parameters it may
send); ``tests/unit/client/test_remote.py`` checks each against the API's OpenAPI document,
so the client cannot drift from the server. An error answer becomes ``ApiError`` carrying
the problem's status, type and detail (never a traceback)."""

import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote

import httpx

from workers.client.profiles import Profile

CHUNK = 1 << 20
OBJECT_ID = 24  # hex characters of an object id (schemas.events.object_id_for)


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    params: frozenset[str] = frozenset()


OPERATIONS = {
    "whoami": Operation("GET", "/v1/whoami"),
    "put": Operation("POST", "/v1/objects", frozenset({"name", "targets", "tag", "force"})),
    "list": Operation(
        "GET",
        "/v1/objects",
        frozenset({"prefix", "state", "store", "tier", "all_versions", "limit", "cursor"}),
    ),
    "get": Operation("GET", "/v1/objects/{object_id}"),
    "by_name": Operation("GET", "/v1/objects/by-name/{name}"),
    "content": Operation(
        "GET", "/v1/objects/{object_id}/content", frozenset({"version", "replica"})
    ),
    "delete": Operation(
        "DELETE", "/v1/objects/{object_id}", frozenset({"version", "all_versions", "forget"})
    ),
    "removal": Operation("GET", "/v1/objects/{object_id}/removals/{request_id}"),
    "verify": Operation("POST", "/v1/objects/{object_id}/verify"),
    "audit": Operation("GET", "/v1/audit", frozenset({"since", "limit"})),
    "create_link": Operation("POST", "/v1/objects/{object_id}/links"),
    "list_links": Operation("GET", "/v1/objects/{object_id}/links"),
    "revoke_link": Operation("DELETE", "/v1/links/{link_id}"),
    "hold": Operation("PUT", "/v1/objects/{object_id}/hold"),
    "release": Operation(
        "DELETE", "/v1/objects/{object_id}/hold", frozenset({"version", "all_versions"})
    ),
    "holds": Operation("GET", "/v1/holds"),
    "hold_prefix": Operation("PUT", "/v1/holds"),
    "release_prefix": Operation("DELETE", "/v1/holds", frozenset({"prefix"})),
    "create_sync": Operation("POST", "/v1/syncs"),
    "plan_sync": Operation("POST", "/v1/syncs/plan"),
    "syncs": Operation("GET", "/v1/syncs"),
    "sync": Operation("GET", "/v1/syncs/{job_id}"),
    "cancel_sync": Operation("DELETE", "/v1/syncs/{job_id}"),
}
# What goes wrong, by kind: the CLI turns each into its exit code.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
ENDED = frozenset({"verified", "unchanged", "failed"})  # a put's outcome that is final


class ApiError(Exception):
    """An error answer (``status`` 0: the API did not answer)."""

    def __init__(self, status: int, detail: str, kind: str = "about:blank") -> None:
        super().__init__(detail)
        self.status, self.detail, self.kind = status, detail, kind

    @property
    def transient(self) -> bool:
        return self.status == 0 or self.status in RETRY_STATUSES


def error_of(answer: httpx.Response) -> ApiError:
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or answer.reason_phrase or "no detail")
    return ApiError(answer.status_code, detail, str(body.get("type") or "about:blank"))


class Remote:
    """One API, one token. Use as a context manager (the connection pool is closed)."""

    def __init__(self, profile: Profile, timeout: float = 60.0) -> None:
        self.profile = profile
        self.http = httpx.Client(
            base_url=profile.url,
            headers={"Authorization": f"Bearer {profile.token}"},
            timeout=httpx.Timeout(timeout, connect=10.0),
            follow_redirects=False,
        )

    def __enter__(self) -> "Remote":
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    def request(
        self,
        op: str,
        *,
        params: dict[str, Any] | None = None,
        stream: bool = False,
        **parts: Any,
    ) -> httpx.Response:
        """Call ``OPERATIONS[op]``; path parameters are keyword arguments, the rest httpx's
        (``content``, ``json``, ``headers``). A 4xx/5xx answer raises ``ApiError``."""
        operation = OPERATIONS[op]
        path_args = {k: parts.pop(k) for k in list(parts) if "{" + k + "}" in operation.path}
        sent = {k: v for k, v in (params or {}).items() if v is not None}
        unknown = set(sent) - operation.params
        assert not unknown, f"{op} does not take {unknown}"  # a bug in this module
        url = operation.path.format(**{k: quote(str(v), safe="/") for k, v in path_args.items()})
        built = self.http.build_request(operation.method, url, params=sent, **parts)
        try:
            answer = self.http.send(built, stream=stream)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"the API at {self.profile.url} did not answer ({exc})") from None
        if answer.is_error:
            if stream:
                answer.read()
            raise error_of(answer)
        return answer

    def json(self, op: str, **kwargs: Any) -> Any:
        return self.request(op, **kwargs).json()

    def whoami(self) -> dict[str, Any]:
        return self.json("whoami")  # type: ignore[no-any-return]

    def resolve(self, ref: str) -> dict[str, Any]:
        """The object an id or a name refers to (the token's tenant), every version."""
        if len(ref) == OBJECT_ID and all(c in "0123456789abcdef" for c in ref):
            try:
                return self.json("get", object_id=ref)  # type: ignore[no-any-return]
            except ApiError as exc:
                if exc.status != 404:
                    raise
        return self.json("by_name", name=ref)  # type: ignore[no-any-return]

    def put(
        self,
        body: IO[bytes],
        size: int | None,
        params: dict[str, Any],
        attempts: int = 3,
    ) -> dict[str, Any]:
        """Upload ``body`` as a new version; a transient failure is retried with the same
        ``Idempotency-Key``, so the retry lands on the same version (``body`` must seek)."""
        key = uuid.uuid4().hex
        headers = {"Idempotency-Key": key, "Content-Type": "application/octet-stream"}
        if size is not None:
            headers["Content-Length"] = str(size)
        start = body.tell() if body.seekable() else None
        for attempt in range(attempts):
            try:
                return self.json("put", params=params, content=chunks(body), headers=headers)  # type: ignore[no-any-return]
            except ApiError as exc:
                if not exc.transient or start is None or attempt == attempts - 1:
                    raise
                body.seek(start)
                time.sleep(min(2**attempt, 10))  # backing off before the retry, not a wait
        raise AssertionError("unreachable")

    def settle(
        self, answers: list[dict[str, Any]], timeout: float, every: float = 0.5
    ) -> list[tuple[int | None, str, str]]:
        """Each put's end as (version, outcome, reason): its answer's when the API decided
        it already (unchanged, failed), else its version's state polled until verified or
        failed, or ``timeout`` seconds pass."""
        ended: dict[int, tuple[int | None, str, str]] = {
            i: (a.get("version"), a["outcome"] if a["outcome"] in ENDED else "timeout", a["reason"])
            for i, a in enumerate(answers)
            if a["outcome"] in ENDED or a.get("version") is None
        }
        deadline = time.monotonic() + timeout
        while True:
            for i, answer in enumerate(answers):
                if i in ended:
                    continue
                view = self.json("get", object_id=answer["object_id"])
                state = next(
                    (v["state"] for v in view["versions"] if v["version"] == answer["version"]), ""
                )
                if state in ("verified", "failed"):
                    reason = "" if state == "verified" else "see `movingdata show` and the trail"
                    ended[i] = (answer["version"], state, reason)
            if len(ended) == len(answers) or time.monotonic() > deadline:
                break
            time.sleep(every)  # polling the API for a remote state; nothing to wake us
        return [ended.get(i, (a.get("version"), "timeout", "")) for i, a in enumerate(answers)]

    def pages(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every listed row, page after page."""
        cursor = params.pop("cursor", None)
        while True:
            page = self.json("list", params=params | {"cursor": cursor})
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def download(
        self, object_id: str, params: dict[str, Any], out: IO[bytes]
    ) -> tuple[httpx.Headers, str]:
        """Stream a version's plaintext into ``out``; its headers and the SHA-256 of what
        arrived (the caller compares it with the strong ETag)."""
        digest = hashlib.sha256()
        answer = self.request("content", object_id=object_id, params=params, stream=True)
        try:
            for chunk in answer.iter_bytes(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        except httpx.HTTPError as exc:  # the API cuts a body whose digest differs
            raise ApiError(0, f"the download was cut ({type(exc).__name__})") from None
        finally:
            answer.close()
        return answer.headers, digest.hexdigest()


def chunks(body: IO[bytes]) -> Iterator[bytes]:
    while block := body.read(CHUNK):
        yield block
