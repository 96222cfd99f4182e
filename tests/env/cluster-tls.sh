#!/usr/bin/env bash
# The private CA of the cluster topology (tests/env/cluster.sh), made once with openssl:
#
#   ca.pem / ca.key              the CA every server and the client certificate chain to
#   server.pem / server.key      CN=localhost, SAN DNS:localhost, IP:127.0.0.1 (RabbitMQ's
#                                TLS listener and both PostgreSQL servers)
#   client.pem / client.key      CN=cworker-client, signed by the same CA
#   wrong-ca.pem / wrong-ca.key  an unrelated CA: verifying any server with it must fail
#
#   cluster-tls.sh DIR           create what is missing in DIR (a no-op when complete)
#
# EC P-256 keys: generated in milliseconds (RSA would cost seconds on every cold start).
set -euo pipefail

DIR=${1:?usage: cluster-tls.sh DIR}
DAYS=3650

log() { echo "cluster-tls: $*" >&2; }

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# new_ca NAME CN: a self-signed CA certificate NAME.pem with its key NAME.key.
new_ca() {
  new_key "$DIR/$1.key"
  openssl req -x509 -new -key "$DIR/$1.key" -sha256 -days "$DAYS" -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$DIR/$1.pem" 2>/dev/null
}

# new_leaf NAME CN EXTFILE: NAME.pem/NAME.key signed by ca.pem with the extensions of EXTFILE.
new_leaf() {
  new_key "$DIR/$1.key"
  openssl req -new -key "$DIR/$1.key" -subj "/CN=$2" -out "$DIR/$1.csr" 2>/dev/null
  openssl x509 -req -in "$DIR/$1.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" -CAcreateserial \
    -sha256 -days "$DAYS" -extfile "$3" -out "$DIR/$1.pem" 2>/dev/null
  rm -f "$DIR/$1.csr"
}

complete() {
  local f
  for f in ca server client wrong-ca; do
    [ -s "$DIR/$f.pem" ] && [ -s "$DIR/$f.key" ] || return 1
  done
}

complete && exit 0
log "creating a private CA and certificates in $DIR"
rm -rf "$DIR"
mkdir -p "$DIR"
umask 077
new_ca ca "cworker cluster test CA"
new_ca wrong-ca "cworker unrelated CA"
cat >"$DIR/server.ext" <<'EOF'
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
EOF
cat >"$DIR/client.ext" <<'EOF'
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
EOF
new_leaf server localhost "$DIR/server.ext"
new_leaf client cworker-client "$DIR/client.ext"
rm -f "$DIR/server.ext" "$DIR/client.ext" "$DIR/ca.srl"
# Certificates are public; keys stay 0600 (root's, the RabbitMQ nodes run as root; the
# PostgreSQL servers get their own copies owned by postgres).
chmod 644 "$DIR"/*.pem
chmod 755 "$DIR"
openssl verify -CAfile "$DIR/ca.pem" "$DIR/server.pem" "$DIR/client.pem" >/dev/null
