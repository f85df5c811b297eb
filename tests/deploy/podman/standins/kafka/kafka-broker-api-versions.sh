#!/bin/sh
# The stand-in's kafka-broker-api-versions.sh (the compose file's health check runs it).
exec java ${KAFKA_HEAP_OPTS:--Xmx64m} -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -cp '/opt/kafka/libs/*' org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
