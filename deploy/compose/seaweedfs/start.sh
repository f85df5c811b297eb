#!/bin/sh
# SeaweedFS for deploy/compose/compose.yaml: master, volume, filer and S3 gateway in one
# process, as in the local stack (workers/stack/services.py). Its S3 identity and its KMS
# (OpenBao transit: SSE-KMS) are written from the environment at every start, so a changed
# .env takes effect when `docker compose up -d` recreates the container.
set -eu

for var in MOVINGDATA_S3_ACCESS_KEY MOVINGDATA_S3_SECRET_KEY OPENBAO_SEAWEEDFS_TOKEN; do
  eval "value=\${$var:-}"
  if [ -z "$value" ]; then
    echo "seaweedfs: $var is empty; set it in deploy/compose/.env" >&2
    exit 1
  fi
  case "$value" in
    *[!A-Za-z0-9_.~+/=-]*)
      echo "seaweedfs: $var may hold letters, digits and _.~+/=- only" >&2
      exit 1
      ;;
  esac
done

umask 077
cat >/etc/seaweedfs/s3.json <<JSON
{
  "identities": [
    {
      "name": "movingdata",
      "credentials": [{"accessKey": "$MOVINGDATA_S3_ACCESS_KEY", "secretKey": "$MOVINGDATA_S3_SECRET_KEY"}],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }
  ],
  "kms": {
    "default_provider": "openbao",
    "providers": {
      "openbao": {"type": "openbao", "address": "$OPENBAO_ADDR", "token": "$OPENBAO_SEAWEEDFS_TOKEN", "transit_path": "transit"}
    }
  }
}
JSON
# Every bucket is a collection with volumes of its own: grow one volume at a time (default 7).
cat >/etc/seaweedfs/master.toml <<TOML
[master.volume_growth]
copy_1 = 1
copy_2 = 2
copy_3 = 3
copy_other = 1
TOML

cd /etc/seaweedfs # master.toml is read from the working folder
exec /usr/bin/weed -logtostderr=true server \
  -dir=/data \
  -ip.bind=0.0.0.0 \
  -master.telemetry=false \
  -master.volumeSizeLimitMB=256 \
  -volume.max=0 \
  -filer \
  -s3 \
  -s3.port=8333 \
  -s3.config=/etc/seaweedfs/s3.json \
  -s3.port.iceberg=0 \
  -s3.port.lance=0
