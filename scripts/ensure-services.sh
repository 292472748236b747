#!/usr/bin/env bash
# Make sure RabbitMQ (127.0.0.1:5672) and PostgreSQL (127.0.0.1:5432) answer.
# Start an installed but stopped service; name what to install when one is missing.
set -u

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do
    answers "$port" && return 0
    sleep 1
  done
  echo "ensure-services: $name was started but does not answer on 127.0.0.1:$port after 60 s" >&2
  return 1
}

status=0
if answers 5672; then
  echo "ensure-services: RabbitMQ answers on 127.0.0.1:5672"
elif command -v rabbitmq-server >/dev/null 2>&1; then
  echo "ensure-services: starting RabbitMQ (rabbitmq-server -detached)"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_for 5672 RabbitMQ || status=1
else
  echo "ensure-services: RabbitMQ is missing: install it with 'apt-get install rabbitmq-server'" >&2
  status=1
fi

if answers 5432; then
  echo "ensure-services: PostgreSQL answers on 127.0.0.1:5432"
elif command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  echo "ensure-services: starting PostgreSQL (pg_ctlcluster main start)"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  wait_for 5432 PostgreSQL || status=1
else
  echo "ensure-services: PostgreSQL is missing: install it with 'apt-get install postgresql'" >&2
  status=1
fi
exit $status
