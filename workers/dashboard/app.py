"""MovingData's dashboard: where every object is and how the fleet is doing (read-only).

Run with ``movingdata dashboard``. It needs a reader token (``MOVINGDATA_DASHBOARD_TOKEN``,
or typed in); it shows that token's tenant only, and never a secret.
"""

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from workers.api.tokens import ordered
from workers.app import STAGES
from workers.core.versions import STATES
from workers.dashboard.data import (
    Data,
    by_state,
    by_store_and_tier,
    per_minute,
    stage_latency,
)
from workers.dashboard.fleet import consumed, human_bytes, stage_rows, worker_rows
from workers.settings import load_settings

st.set_page_config(page_title="MovingData", layout="wide")
settings = load_settings(kafka_role="dashboard")  # on the SASL listener: read only
data = Data(settings)

given = settings.dashboard_token.get_secret_value() if settings.dashboard_token else ""
token = given or st.sidebar.text_input("Reader token", type="password")
who = data.principal(token) if token else None
if who is None:
    st.title("MovingData")
    st.info("A reader token is needed (movingdata tokens create NAME --role reader).")
    st.stop()
st.sidebar.write(f"**{who.name}** · {', '.join(ordered(who.scopes))} · tenant {who.tenant}")

docs = data.objects(who)
ids = sorted({d["object_id"] for d in docs})
st.title("MovingData")
overview, activity, letters, lineage, fleet = st.tabs(
    ["Objects", "Activity", "Dead letters", "Lineage", "Fleet"]
)

with overview:
    states = by_state(docs)
    columns = st.columns(len(STATES))
    for column, state in zip(columns, STATES, strict=True):
        column.metric(state, states.get(state, 0))
    repaired = sum(
        1 for d in docs for r in (d.get("replicas") or {}).values() if r.get("repaired_from")
    )
    st.caption(f"{len(docs)} versions of {len(ids)} objects; {repaired} replicas repaired")
    st.subheader("Replicas per store and tier")
    placed = [
        {
            "store": r["store"],
            "tier": r["tier"],
            "replicas": r["replicas"],
            "size": human_bytes(r["bytes"]),
        }
        for r in by_store_and_tier(docs)
    ]
    st.dataframe(pd.DataFrame(placed), hide_index=True)
    st.subheader("Objects")
    table = pd.DataFrame(
        [
            {
                "name": d.get("name"),
                "version": d["version"],
                "state": d.get("state", "pending"),
                "size": human_bytes(d.get("size")),
                "stores": ", ".join(sorted(d.get("replicas") or {})),
                "object id": d["object_id"],
            }
            for d in sorted(docs, key=lambda d: (d.get("name") or "", d["version"]))
        ]
    )
    st.dataframe(table, hide_index=True)

with activity:
    records = data.audit(ids)
    st.subheader("Verified replicas per minute")
    verified = [r["produced_at"] for r in records if r["action"] == "replica.verified"]
    if verified:
        st.bar_chart(pd.DataFrame(per_minute(verified)).set_index("minute"))
    st.subheader("Latency: request to encrypted, to every replica verified (s)")
    latency = stage_latency(docs)
    if latency:
        st.line_chart(pd.DataFrame(latency).set_index("at"))
    st.subheader("Audit feed")
    feed = [
        {
            "time": r["produced_at"],
            "object": r["object_id"],
            "v": r["version"],
            "stage": r["stage"],
            "action": r["action"],
            "outcome": r["outcome"],
            "actor": r.get("actor", ""),
        }
        for r in records[:50]
    ]
    st.dataframe(pd.DataFrame(feed), hide_index=True)

with letters:
    rows = [
        {
            "time": d["produced_at"],
            "stage": d["stage"],
            "object": d["object_id"],
            "v": d["version"],
            "reason": d["reason"],
        }
        for d in data.deadletters(ids, who)
    ]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    else:
        st.write("No dead letters.")

with lineage:
    names = {d["object_id"]: d.get("name") or d["object_id"] for d in docs}
    if names:
        chosen = st.selectbox("Object", ids, format_func=lambda i: names[i])
        versions = [d for d in docs if d["object_id"] == chosen]
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "version": d["version"],
                        "state": d.get("state"),
                        "size": human_bytes(d.get("size")),
                        "plaintext sha256": d.get("plaintext_sha256"),
                        "requested by": d.get("requested_by"),
                    }
                    for d in sorted(versions, key=lambda d: d["version"])
                ]
            ),
            hide_index=True,
        )
        trail = sorted(data.audit([chosen]), key=lambda r: r["seq"])
        st.subheader(f"Lineage of {names[chosen]}")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "seq": r["seq"],
                        "v": r["version"],
                        "time": r["produced_at"],
                        "stage": r["stage"],
                        "step": r["action"],
                        "outcome": r["outcome"],
                        "actor": r.get("actor", ""),
                    }
                    for r in trail
                ]
            ),
            hide_index=True,
        )

with fleet:
    try:
        groups = data.fleet()
    except Exception as exc:  # the broker away: say so, keep the rest of the page
        st.warning(f"The broker did not answer: {type(exc).__name__}")
        groups = []
    beats, now = data.heartbeats(), datetime.now(UTC)
    st.subheader("Stages")
    rows = stage_rows(STAGES, consumed(settings.topic_prefix), groups, beats, now)
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption(
        "workers: processes running the stage whose heartbeat is recent (each beats every "
        "MOVINGDATA_WORKER_HEARTBEAT_S); ready: how many of them can serve; consumers: the "
        "members of its consumer groups at the broker; lag: messages on its topics not yet "
        "committed; events/s and throughput: over each worker's last interval."
    )
    st.subheader("Workers")
    processes = worker_rows(beats, STAGES, now)
    if processes:
        st.dataframe(pd.DataFrame(processes), hide_index=True)
    else:
        st.write("No worker has reported in its last three heartbeat intervals.")
