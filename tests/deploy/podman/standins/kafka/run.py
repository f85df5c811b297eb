#!/usr/bin/env python3
"""The Kafka stand-in's start (its /etc/kafka/docker/run), as the upstream apache/kafka image
starts: every ``KAFKA_*`` variable but the JVM's becomes a broker property (``KAFKA_`` dropped,
lower case, ``___`` to ``-``, ``__`` to ``_``, ``_`` to ``.``), the log folders are formatted
once with ``CLUSTER_ID``, then the broker runs with the local stack's JVM flags (serial GC,
C1 only: quick to start on a small machine) and ``KAFKA_HEAP_OPTS``.

Unit-tested from tests/unit/test_compose_podman.py (``properties``)."""

import os
import re
import subprocess
import sys
from collections.abc import Mapping

CONFIG = "/opt/kafka/config/server.properties"
LIBS = "/opt/kafka/libs/*"
# The JVM's variables, not properties (the upstream image's exclusions).
NOT_PROPERTIES = {
    "KAFKA_VERSION",
    "KAFKA_HEAP_OPTS",
    "KAFKA_LOG4J_OPTS",
    "KAFKA_OPTS",
    "KAFKA_JMX_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "KAFKA_GC_LOG_OPTS",
    "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL",
    "KAFKA_JMX_HOSTNAME",
    "KAFKA_JMX_PORT",
}


def property_name(variable: str) -> str:
    name = variable.removeprefix("KAFKA_").lower()
    return re.sub(r"_{1,3}", lambda m: {1: ".", 2: "_", 3: "-"}[len(m[0])], name)


def properties(env: Mapping[str, str]) -> str:
    """server.properties from the environment, sorted."""
    pairs = sorted(
        (property_name(key), value)
        for key, value in env.items()
        if key.startswith("KAFKA_") and key not in NOT_PROPERTIES
    )
    return "".join(f"{name}={value}\n" for name, value in pairs)


def jvm(env: Mapping[str, str]) -> list[str]:
    return [
        "java",
        *env.get("KAFKA_HEAP_OPTS", "-Xmx512m").split(),
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        "-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.yaml",
        "-cp",
        LIBS,
    ]


def main() -> None:
    env = dict(os.environ)
    with open(CONFIG, "w") as out:
        out.write(properties(env))
    cluster = env.get("CLUSTER_ID")
    if not cluster:
        sys.exit("kafka stand-in: CLUSTER_ID is not set")
    fmt = ["kafka.tools.StorageTool", "format", "-t", cluster, "-c", CONFIG, "--ignore-formatted"]
    subprocess.run([*jvm({"KAFKA_HEAP_OPTS": "-Xmx128m"}), *fmt], check=True)
    argv = [*jvm(env), "kafka.Kafka", CONFIG]
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
