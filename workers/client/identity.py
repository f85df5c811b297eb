"""Who a client acts as, for the audit trail, passed to every client operation explicitly.

- Through the API: the token, ``api:<token name>``, with the token's tenant and the API
  request's id (``Principal.actor``).
- The CLI holds no credential of its own, so its actor says so and keeps the OS user and
  host it claims, unverified: ``cli:unauthenticated(claimed alice@laptop)``.
- A worker's own jobs (the scheduled scrub): ``worker:<stage>@<host>``.
- A share link's use: ``link:<link id>``, with the tenant, the request's id and who made the
  link (``workers.client.links``).
"""

import getpass
import socket
import uuid
from dataclasses import dataclass

UNAUTHENTICATED = "cli:unauthenticated"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks for an operation. ``name`` is its records' actor; an API request also has
    its token's ``tenant`` and its ``request_id``, which the audit records a client makes
    carry in their detail, the request id also as their correlation id. A share link's use
    also names who made the link, ``shared_by``."""

    name: str
    tenant: str | None = None
    request_id: str | None = None
    shared_by: str | None = None

    def detail(self) -> dict[str, str]:
        """What a client's audit record says of who asked, besides its actor."""
        named = {"tenant": self.tenant, "request_id": self.request_id, "shared_by": self.shared_by}
        return {k: v for k, v in named.items() if v}

    def run_id(self) -> str:
        """The correlation id of one operation's records: the request's, else a fresh one."""
        return self.request_id or uuid.uuid4().hex


def unauthenticated(user: str, host: str) -> Actor:
    """An actor with no authenticated identity, naming the user and host it claims."""
    return Actor(f"{UNAUTHENTICATED}(claimed {user}@{host})")


def cli_actor() -> Actor:
    """The CLI's actor: unauthenticated, claiming the OS user and this host."""
    return unauthenticated(getpass.getuser(), socket.gethostname())


def worker_actor(stage: str) -> Actor:
    """A worker's own job, named by its stage and host."""
    return Actor(f"worker:{stage}@{socket.gethostname()}")
