#!/usr/bin/env bash
# Starts the local services the tests need when they are not running (PostgreSQL, Redis).
# Tests that need a service that still is not up fail with a message naming it; they never skip.
set -u
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! up 5432; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! up 6379; then
  echo "services: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
if ! up 5672; then
  echo "services: starting RabbitMQ"
  rabbitmq-server -detached || true
fi
# RabbitMQ takes a while to open its port after `-detached`: wait for all three, then let the tests say
# which one is missing if any still is.
for port in 5432 6379 5672; do
  for i in $(seq 1 60); do up "$port" && break; sleep 1; done
done
exit 0
