"""The local broker's principals: one SCRAM user per role, each with ACLs on the deployment's
topics and consumer groups, enforced by Kafka's ``StandardAuthorizer``.

Only the SASL_SSL listener is governed by them. The PLAINTEXT loopback listener (the demo, the
tests, the broker's own inter-broker and controller traffic) is the single-machine developer
listener: its principal, ``User:ANONYMOUS``, is a super user, as is the stack's shared SASL user
(``movingdata``, in ``local.env``), which the tests and benchmarks use for prefixes of their own.

What each role may do, on topics named ``<prefix>.*`` and consumer groups named ``<prefix>-*``
(a worker's Faust group is ``<prefix>-<stages>``) or ``<prefix>.*``:

- ``worker``: read, write, describe and create the topics (a worker creates missing ones at
  start-up); join, commit and describe its groups.
- ``api``: read, write and describe the topics (puts, deletes, audit records, dead-letter
  replays); its groups as a worker's.
- ``operator`` (the CLI): as a worker (``demo`` creates the topics).
- ``dashboard``: read and describe only; describe the groups (their lag). Never write.
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from workers.settings import KafkaRole

ROLES: tuple[KafkaRole, ...] = get_args(KafkaRole)
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
# The PLAINTEXT listener's principal (and the controller's, the broker's own).
DEVELOPER_PRINCIPAL = "User:ANONYMOUS"
SCRAM_ITERATIONS = 4096


def username(role: KafkaRole) -> str:
    return f"movingdata-{role}"


@dataclass(frozen=True, slots=True)
class Grant:
    """Operations ``roles`` are allowed on ``resource``s whose names start with the prefix."""

    roles: tuple[KafkaRole, ...]
    resource: Literal["topic", "group"]
    operations: tuple[str, ...]


GRANTS: tuple[Grant, ...] = (
    Grant(("worker", "operator"), "topic", ("Read", "Write", "Describe", "Create")),
    Grant(("api",), "topic", ("Read", "Write", "Describe")),
    Grant(("dashboard",), "topic", ("Read", "Describe")),
    Grant(("worker", "api", "operator"), "group", ("Read", "Describe")),
    Grant(("dashboard",), "group", ("Describe",)),
)


def resource_prefixes(resource: Literal["topic", "group"], topic_prefix: str) -> tuple[str, ...]:
    """Name prefixes a grant covers: the deployment's topics; its groups (Faust's
    ``<prefix>-<stages>``, or a deployment whose prefix has a dot: ``movingdata.t1-all``)."""
    if resource == "topic":
        return (f"{topic_prefix}.",)
    return (f"{topic_prefix}-", f"{topic_prefix}.")


def acl_arguments(grant: Grant, topic_prefix: str) -> list[str]:
    """``kafka-acls`` (``org.apache.kafka.tools.AclCommand``) arguments adding ``grant``."""
    argv = ["--add", "--resource-pattern-type", "prefixed"]
    for role in grant.roles:
        argv += ["--allow-principal", f"User:{username(role)}"]
    for operation in grant.operations:
        argv += ["--operation", operation]
    for name in resource_prefixes(grant.resource, topic_prefix):
        argv += [f"--{grant.resource}", name]
    return argv


def scram_arguments(user: str, password: str) -> list[str]:
    """``kafka-configs`` (``org.apache.kafka.tools.ConfigCommand``) arguments setting the
    SCRAM-SHA-512 credential of ``user`` (again, if it has one)."""
    return [
        "--alter",
        "--entity-type",
        "users",
        "--entity-name",
        user,
        "--add-config",
        f"SCRAM-SHA-512=[iterations={SCRAM_ITERATIONS},password={password}]",
    ]


def super_users(shared_user: str) -> str:
    """``super.users``: the developer listener's principal and the stack's shared SASL user."""
    return f"{DEVELOPER_PRINCIPAL};User:{shared_user}"


def applied_digest(cluster_id: str, users: Mapping[str, str], acls: Sequence[Sequence[str]]) -> str:
    """What was applied to which cluster: when it has not changed, nothing is run again."""
    doc = {"cluster": cluster_id, "users": dict(sorted(users.items())), "acls": list(acls)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
