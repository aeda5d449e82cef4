#!/usr/bin/env bash
# mkcerts.sh DIR - test certificates for eosproxy's TLS (EC P-256, valid 30 days).
#
# Writes into DIR:
#   ca.pem ca.key                 the test CA
#   server.pem server.key         CN=eosproxy, signed by ca; SANs DNS:localhost,
#                                 IP:127.0.0.1, IP:::1 and every `hostname -I` address
#   server2.pem server2.key       the same SANs, CN=eosproxy-rotated (reload tests)
#   client.pem client.key         CN=app, clientAuth, signed by ca
#   rogue-ca.pem rogue-ca.key     another CA
#   rogue-client.pem rogue-client.key   CN=app, clientAuth, signed by rogue-ca
#
# Idempotent: when every file is there, was made for the same SANs and is
# valid for at least another day, nothing is redone. Otherwise the whole set
# is made again in a scratch directory and each finished file is renamed into
# DIR, so no file is ever seen half-written; concurrent runs on one DIR take
# turns (flock on DIR/.mkcerts.lock). Keys are mode 0600.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
mkdir -p "$dir"

days=30
files="ca.pem ca.key server.pem server.key server2.pem server2.key client.pem client.key
 rogue-ca.pem rogue-ca.key rogue-client.pem rogue-client.key"

# The server SANs: localhost, both loopbacks, then every host address (deduplicated).
san="DNS:localhost,IP:127.0.0.1,IP:::1"
seen=" 127.0.0.1 ::1 "
for a in $(hostname -I 2>/dev/null || true); do
    a=${a%%%*} # drop an IPv6 zone ("fe80::1%eth0")
    case "$seen" in *" $a "*) continue ;; esac
    seen="$seen$a "
    san="$san,IP:$a"
done

up_to_date() {
    local f
    for f in $files; do
        [ -s "$dir/$f" ] || return 1
    done
    [ "$(cat "$dir/.san" 2>/dev/null)" = "$san" ] || return 1
    for f in ca.pem server.pem server2.pem client.pem rogue-ca.pem rogue-client.pem; do
        openssl x509 -in "$dir/$f" -noout -checkend 86400 >/dev/null 2>&1 || return 1
    done
}

# One run at a time per DIR (parallel test workers may share it).
exec 9>"$dir/.mkcerts.lock"
flock 9
if up_to_date; then
    exit 0
fi

tmp=$(mktemp -d "$dir/.mkcerts.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
umask 077

newkey() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/$1.key" 2>/dev/null
}

# ca NAME CN: a self-signed CA.
ca() {
    newkey "$1"
    openssl req -new -x509 -key "$tmp/$1.key" -out "$tmp/$1.pem" -days "$days" -sha256 \
        -subj "/O=eosproxy tests/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" 2>/dev/null
}

# leaf NAME CN CA EXTENSIONS: a certificate for NAME.key signed by CA.
leaf() {
    newkey "$1"
    printf '%s\n' "[ext]" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "authorityKeyIdentifier=keyid" \
        "subjectKeyIdentifier=hash" "$4" >"$tmp/$1.ext"
    openssl req -new -key "$tmp/$1.key" -subj "/O=eosproxy tests/CN=$2" -out "$tmp/$1.csr" \
        2>/dev/null
    openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/$3.pem" -CAkey "$tmp/$3.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
        -extfile "$tmp/$1.ext" -extensions ext -out "$tmp/$1.pem" 2>/dev/null
    rm -f "$tmp/$1.csr" "$tmp/$1.ext"
}

ca ca "eosproxy test CA"
ca rogue-ca "eosproxy rogue CA"
leaf server eosproxy ca "extendedKeyUsage=serverAuth
subjectAltName=$san"
leaf server2 eosproxy-rotated ca "extendedKeyUsage=serverAuth
subjectAltName=$san"
leaf client app ca "extendedKeyUsage=clientAuth"
leaf rogue-client app rogue-ca "extendedKeyUsage=clientAuth"

chmod 0644 "$tmp"/*.pem
chmod 0600 "$tmp"/*.key
printf '%s\n' "$san" >"$tmp/.san"
for f in $files .san; do
    mv -f "$tmp/$f" "$dir/$f"
done
