# OpenBao for deploy/compose.yaml: raft storage in the volume; initialise and unseal once
# (deploy/README.md), then enable transit and create the `movingdata` keys.
storage "raft" {
  path    = "/openbao/data"
  node_id = "node1"
}
listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = true
}
api_addr     = "http://openbao:8200"
cluster_addr = "http://openbao:8201"
ui           = false
