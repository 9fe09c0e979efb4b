#!/usr/bin/env bash
# make_test_certs.sh DIR: a throwaway PKI for the TLS tests, made with the openssl command line.
#   ca.crt/ca.key            the CA (EC P-256, 1 day)
#   server.crt/server.key    CN=localhost, SAN DNS:localhost and IP:127.0.0.1, signed by the CA
#   client.crt/client.key    CN=prometheus, clientAuth, signed by the CA
#   other-ca.crt, other-client.crt/.key   a second CA and a client it signed (not trusted)
# Quiet on success; openssl's own message and exit code on failure.
set -euo pipefail
dir="$1"
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {  # ca NAME CN
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -days 1 -subj "/CN=$2" -out "$1.crt" \
    -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
leaf() {  # leaf NAME CA CN EXTENSIONS
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$3" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days 1 -extfile "$1.ext" \
    -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
ca ca substrated-test-ca
leaf server ca localhost "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
leaf client ca prometheus "extendedKeyUsage=clientAuth"
ca other-ca substrated-other-ca
leaf other-client other-ca intruder "extendedKeyUsage=clientAuth"
