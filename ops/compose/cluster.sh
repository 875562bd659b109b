#!/usr/bin/env bash
# Bring the compose cluster up and wait for it (make cluster), or down
# (make cluster-down). Run from the repository root; COMPOSE overrides the
# compose command (default: docker-compose, else `docker compose`).
set -euo pipefail

compose=${COMPOSE:-}
if [[ -z $compose ]]; then
  if command -v docker-compose >/dev/null; then compose=docker-compose; else compose="docker compose"; fi
fi
timeout=${CLUSTER_WAIT:-120}

health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1" 2>/dev/null || echo missing; }

case ${1:-up} in
up)
  # ./.cluster is made by you, not by Docker, so the admin identity and
  # the CA key written into it are yours (the init service gives the
  # node files to the nodes' user, the rest to the directory's owner).
  mkdir -p .cluster
  $compose up -d --remove-orphans
  echo "waiting for node1, node2, node3 to be healthy (up to ${timeout}s)…"
  deadline=$((SECONDS + timeout))
  for svc in node1 node2 node3; do
    id=$($compose ps -a -q "$svc")
    until [[ $(health "$id") == healthy ]]; do
      if ((SECONDS >= deadline)); then
        echo "$svc is $(health "$id") after ${timeout}s; its log:" >&2
        $compose logs --tail 30 "$svc" >&2
        exit 1
      fi
      sleep 1
    done
    echo "  $svc healthy"
  done
  cat <<'TRY'

The cluster is up: Gemini on 127.0.0.1:1965 (node1), :1966 (node2), :1967 (node3).
Try:
  bin/chimalli get gemini://localhost:1966/
  docker-compose exec node1 chimalli ban add 192.0.2.7 --for 1h
  docker-compose exec node3 chimalli ban ls
  docker-compose exec node2 chimalli cluster status
  bin/chimalli audit tail --nats tls://127.0.0.1:4222 --certs .cluster
  curl -s 127.0.0.1:9101/metrics | grep chimalli_raft
Stop it with: make cluster-down   (state kept; `docker-compose down -v` forgets it)
TRY
  ;;
down)
  $compose down
  ;;
*)
  echo "usage: $0 up|down" >&2
  exit 2
  ;;
esac
