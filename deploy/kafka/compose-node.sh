#!/usr/bin/env bash
# One Kafka node of docker-compose.yml (apache/kafka image) secured as `grid kafka start
# --secure` secures its nodes: the node's storage is formatted with a SASL SCRAM credential for
# every principal of deploy/kafka/principals.yaml. KRaft keeps SCRAM credentials in the metadata
# log, so they must exist at format time for the brokers to authenticate each other (as admin)
# from the first start. Then the image starts as usual; its own format step finds the storage
# formatted and goes on.
#
#   GRID_SCRAM_PRINCIPALS         the principals, space-separated (tests/unit/test_compose.py
#                                 checks them against principals.yaml)
#   GRID_KAFKA_<NAME>_PASSWORD    each principal's password (deploy/kafka/compose_env.py)
#   GRID_NODE_CONFIG_DIR          where the format config and the healthcheck's admin client
#                                 config (admin.properties) are written
#   GRID_NODE_DRY_RUN=1           print the properties and the format command, start nothing
set -euo pipefail

dir=${GRID_NODE_CONFIG_DIR:?GRID_NODE_CONFIG_DIR is not set}
mechanism=${KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL:?KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL is not set}
mkdir -p "$dir"
umask 077

password() {
    local var="GRID_KAFKA_${1^^}_PASSWORD"
    if [[ -z "${!var:-}" ]]; then
        echo "compose-node: $var is not set (deploy/kafka/compose_env.py writes it)" >&2
        exit 64
    fi
    printf '%s' "${!var}"
}

# The server properties, rendered from KAFKA_* as the image renders them (KafkaDockerWrapper):
# drop KAFKA_, lower case, "_" -> ".", "___" -> "-", "__" -> "_"; its excluded names skipped.
props="$dir/format.properties"
: >"$props"
for name in $(compgen -e | sort); do
    case $name in
        KAFKA_VERSION | KAFKA_HEAP_OPTS | KAFKA_LOG4J_OPTS | KAFKA_OPTS | KAFKA_JMX_OPTS | \
            KAFKA_JVM_PERFORMANCE_OPTS | KAFKA_GC_LOG_OPTS | KAFKA_LOG4J_ROOT_LOGLEVEL | \
            KAFKA_LOG4J_LOGGERS | KAFKA_TOOLS_LOG4J_LOGLEVEL | KAFKA_JMX_HOSTNAME) continue ;;
        KAFKA_*) ;;
        *) continue ;;
    esac
    key=${name#KAFKA_}
    key=${key,,}
    key=${key//_/.}
    key=${key//.../-}
    key=${key//../_}
    printf '%s=%s\n' "$key" "${!name}" >>"$props"
done

scram=()
for principal in ${GRID_SCRAM_PRINCIPALS:?GRID_SCRAM_PRINCIPALS is not set}; do
    scram+=("--add-scram=$mechanism=[name=$principal,password=$(password "$principal")]")
done

admin_password=$(password admin)
cat >"$dir/admin.properties" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=$mechanism
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin_password";
EOF

format=(/opt/kafka/bin/kafka-storage.sh format "--cluster-id=${CLUSTER_ID:?CLUSTER_ID is not set}"
        "--config=$props" --ignore-formatted "${scram[@]}")
if [[ "${GRID_NODE_DRY_RUN:-}" == 1 ]]; then
    cat "$props"
    echo "# format"
    printf '%s\n' "${format[@]}"
    exit 0
fi
"${format[@]}"
exec /etc/kafka/docker/run
