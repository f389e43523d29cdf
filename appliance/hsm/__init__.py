"""PKCS#11 key custody: every private key is generated and used inside the HSM."""
