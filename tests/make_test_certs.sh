#!/usr/bin/env bash
# Certificates for the TLS tests, made with the openssl command: a cluster CA and a rogue one;
# from the cluster CA the coordinator (CN layerpipe-coordinator), a worker and a client; from the
# rogue CA a worker and a coordinator. Every server certificate is for localhost / 127.0.0.1.
# Usage: make_test_certs.sh DIR
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
ca() {  # ca NAME
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=$1" -keyout "$1.key" -out "$1.pem" 2>/dev/null
}
cert() {  # cert NAME CA COMMON_NAME
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$3" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\n' \
    "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm "$1.csr" "$1.ext"
}
ca ca
ca rogue-ca
cert coordinator ca layerpipe-coordinator
cert worker ca layerpipe-worker
cert client ca layerpipe-client
cert rogue-worker rogue-ca layerpipe-worker
cert rogue-coordinator rogue-ca layerpipe-coordinator
