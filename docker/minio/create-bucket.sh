#!/bin/sh
# One-shot job of docker-compose.yml (image minio/mc): create the workspaces bucket on MinIO if it
# does not exist yet. Reads the same variables as the CLIs: S3_ENDPOINT, S3_BUCKET, AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY.
set -eu

: "${S3_ENDPOINT:?set S3_ENDPOINT in docker/.env (the MinIO API, http://minio:9000 in compose)}"
: "${S3_BUCKET:?set S3_BUCKET in docker/.env}"
: "${AWS_ACCESS_KEY_ID:?set AWS_ACCESS_KEY_ID in docker/.env}"
: "${AWS_SECRET_ACCESS_KEY:?set AWS_SECRET_ACCESS_KEY in docker/.env}"

mc alias set workspaces "$S3_ENDPOINT" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >/dev/null
mc mb --ignore-existing "workspaces/$S3_BUCKET"
