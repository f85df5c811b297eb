# OpenBao for deploy/compose/compose.yaml: one node, raft storage in the openbao-data volume.
# openbao-init initialises it once and keeps the unseal key in the openbao-keys volume, from
# which start.sh unseals it after every restart.
storage "raft" {
  path    = "/openbao/file"
  node_id = "openbao-1"
  # One node: the fastest raft timings (the local stack's); it is leader about 1 s after unseal.
  performance_multiplier = 1
}

# Plain HTTP on the compose project's internal network only (no port is published): put TLS
# in front (tls_cert_file, tls_key_file) before any other host talks to it.
listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  tls_disable     = true
}

api_addr      = "http://openbao:8200"
cluster_addr  = "http://openbao:8201"
disable_mlock = true # recommended with raft storage; no IPC_LOCK capability needed
ui            = false
