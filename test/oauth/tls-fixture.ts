/**
 * A self-signed certificate for provider.test and *.provider.test (valid 2000-2100), made for these
 * tests only with openssl. The key protects nothing: it exists so that the outbound client's TLS
 * path (SNI and the name check while connected to a pinned IP) runs against a real handshake.
 */
export const TEST_TLS_CERT = `-----BEGIN CERTIFICATE-----
MIIBjjCCATSgAwIBAgIBATAKBggqhkjOPQQDAjAYMRYwFAYDVQQDDA1wcm92aWRl
ci50ZXN0MCAXDTAwMDEwMTAwMDAwMFoYDzIxMDAwMTAxMDAwMDAwWjAYMRYwFAYD
VQQDDA1wcm92aWRlci50ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEdner
XW2htQDz2EGYaqyscEtZtuLxXQvfBOEJOnMdDjfs6TxogXVU26PSwDamqYecWwmq
bs1+lfjFLmnpHc8Mr6NtMGswKQYDVR0RBCIwIIINcHJvdmlkZXIudGVzdIIPKi5w
cm92aWRlci50ZXN0MA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgKEMB0G
A1UdDgQWBBSIWfoewF2TvAJTQbX5rXhOm8OKoDAKBggqhkjOPQQDAgNIADBFAiEA
3LfOJOjQKYo0bJEoBfOQ9kd2LN+8z1gXv7sVQUsmkTMCICwPRGmG/QNiPllYxSen
tf5jC/AlakeUKqG/kefv/HLY
-----END CERTIFICATE-----
`

export const TEST_TLS_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgWG0crTNaoIhNM0gm
Sxbufau+Zk6KIHBWY5CkDiGNP2WhRANCAAR2d6tdbaG1APPYQZhqrKxwS1m24vFd
C98E4Qk6cx0ON+zpPGiBdVTbo9LANqaph5xbCapuzX6V+MUuaekdzwyv
-----END PRIVATE KEY-----
`
