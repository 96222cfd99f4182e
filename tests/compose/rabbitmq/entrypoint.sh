#!/bin/sh
# As the official image's entrypoint, for what the compose file uses: the default user
# from RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS, reachable from other containers.
set -eu
cat >/etc/rabbitmq/rabbitmq.conf <<CONF
loopback_users = none
listeners.tcp.default = 5672
management.tcp.port = 15672
default_user = ${RABBITMQ_DEFAULT_USER:-guest}
default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}
CONF
exec "$@"
