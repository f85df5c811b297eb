"""The audit trail's steps: which chain events are steps of it, and each step's record.

The sink stores every chain event and derives its step's audit record from it
(``step_of`` then ``step_record``); the dispatcher sends a step's record to the audit topic
only when the sink would not derive it (``derived_by_sink``); ``audit tail`` derives the same
records from the chain's topics.
"""

from dataclasses import dataclass

from schemas.events import (
    AuditRecord,
    Event,
    ObjectAccepted,
    ObjectEncrypted,
    ReplicaRemoval,
    ReplicaRemoved,
    ReplicaTiered,
    ReplicaVerified,
    ReplicaWritten,
    event_id,
)
from topics import (
    ACCEPTED,
    ENCRYPTED,
    REMOVE,
    REMOVED,
    REPLICATE,
    REPLICATED,
    TIERED,
    VERIFIED,
    TopicSpec,
)

# The topics whose events are steps of the trail (every one is a topic the sink consumes).
STEP_TOPICS = (
    ACCEPTED,
    ENCRYPTED,
    *REPLICATE.values(),
    *REPLICATED.values(),
    VERIFIED,
    TIERED,
    REMOVE,
    REMOVED,
)


@dataclass(frozen=True, slots=True)
class Emit:
    """An event a handler wants produced, keyed by its object id; ``action`` names the step in
    the audit trail (default: the event's kind), ``stage`` the stage it names (default: the
    handler's; encrypt's one pass completes replicate's step for the targets it wrote)."""

    topic: TopicSpec
    event: Event
    action: str | None = None
    stage: str | None = None  # the chain step it completes, if not the handler's own stage


def step_record(stage: str, out: Emit) -> AuditRecord:
    """The audit record of one successful step, built from its output alone.

    The sink builds it from the output event it stores (``step_of``), so the dispatcher sends
    it to the audit topic only for outputs the sink does not derive a step from.
    """
    return AuditRecord(
        kind=AuditRecord.KIND,
        v=AuditRecord.VERSION,
        event_id=event_id(
            AuditRecord.KIND, out.event.object_id, out.event.version, "step", out.event.event_id
        ),
        object_id=out.event.object_id,
        version=out.event.version,
        correlation_id=out.event.correlation_id,
        produced_at=out.event.produced_at,
        actor=out.event.actor,
        stage=stage,
        action=out.action or out.event.kind,
        outcome=out.event.step_outcome(),
        detail={
            "event_id": out.event.event_id,
            "topic": out.topic.suffix,
            **out.event.step_detail(),  # a verification: its mode
        },
    )


def step_of(event: Event) -> tuple[str, Emit] | None:
    """Which stage produced a chain event, as what step (for its audit record): the sink
    stores every such event and derives its step's record from it (``step_record``)."""
    match event:
        case ObjectAccepted():
            return "ingest", Emit(ACCEPTED, event)
        case ObjectEncrypted(only_targets=(target,)):
            return "replicate", Emit(REPLICATE[target], event, action="replica.requested")
        case ObjectEncrypted():
            return "encrypt", Emit(ENCRYPTED, event)
        case ReplicaWritten(target=target, scrub=True):
            return "scrub", Emit(REPLICATED[target], event, action="scrub.requested")
        case ReplicaWritten(target=target):
            return "replicate", Emit(REPLICATED[target], event)
        case ReplicaVerified():
            return "verify", Emit(VERIFIED, event, action=event.step)
        case ReplicaTiered():
            return "tier", Emit(TIERED, event)
        case ReplicaRemoval():
            return "delete", Emit(REMOVE, event)
        case ReplicaRemoved():
            return "delete", Emit(REMOVED, event)
    return None


def derived_by_sink(stage: str, out: Emit) -> bool:
    """The sink builds this step's audit record itself, identical (same id, same content),
    from the output event it stores: a copy on the audit topic would be redundant."""
    step = step_of(out.event)
    return step is not None and step_record(*step) == step_record(stage, out)
