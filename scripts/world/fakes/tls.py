"""Certificates for the world: the CA the sandbox trusts, one leaf for every host, and Authentik's signing key."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

# Every name the guide's commands reach, so one leaf serves them all.
HOSTNAMES = (
    "authentik.example.com",
    "app.example.com",
    "api.example.com",
    "goauthentik.io",
    "docs.goauthentik.io",
    "localhost",
    "127.0.0.1",
)

SIGNING_KEY_NAME = "authentik Self-signed Certificate"


@dataclass(frozen=True, slots=True)
class ServerCerts:
    """PEM files for a TLS server: the CA that signed it, the chain to present, and its key."""

    ca_pem: Path
    chain_pem: Path
    private_pem: Path


@dataclass(frozen=True, slots=True)
class SigningKey:
    """Authentik's certificate-key pair: what signs its RS256 tokens and what its JWKS publishes."""

    private_pem: str
    cert_pem: str

    @property
    def kid(self) -> str:
        """Authentik's key id: the MD5 of the stored private key PEM (CertificateKeyPair.kid)."""
        return hashlib.md5(self.private_pem.encode(), usedforsecurity=False).hexdigest()

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem.encode())

    @property
    def private_key(self) -> rsa.RSAPrivateKey:
        """The key to sign with, parsed once per process (_load_private)."""
        return _load_private(self.private_pem)

    @property
    def public_key_pem(self) -> str:
        return (
            self.certificate.public_key()
            .public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )
            .decode()
        )

    def jwk(self) -> dict[str, object]:
        """The key as Authentik's JWKS view renders an RSA key: n, e, and the certificate in x5c."""
        cert = self.certificate
        public = cert.public_key()
        assert isinstance(public, rsa.RSAPublicKey), "Authentik's self-signed pair is RSA"
        numbers = public.public_numbers()
        der = cert.public_bytes(serialization.Encoding.DER)
        return {
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
            "x5c": [base64.b64encode(der).decode()],
            "x5t": _b64url(cert.fingerprint(hashes.SHA1())),  # x5t is defined as SHA-1 (RFC 7517)
            "x5t#S256": _b64url(cert.fingerprint(hashes.SHA256())),
        }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def _write_once(path: Path, content: bytes) -> bytes:
    """Create `path` atomically unless it exists; return what is there, so concurrent writers agree."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.write(fd, content)
        os.close(fd)
        os.link(tmp, path)  # fails if another process won the race; then its file is the one
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return path.read_bytes()


def hostnames(world_dir: Path) -> tuple[str, ...]:
    """The names the leaf serves: the guide's, plus a reader's own hostnames when the world was started with them."""
    renamed = world_dir / "rename.json"
    if not renamed.exists():
        return HOSTNAMES
    new = [host for old, host in json.loads(renamed.read_text()).items() if old in HOSTNAMES]
    return (*HOSTNAMES, *new)


def _issue(ca: trustme.CA, directory: Path, names: tuple[str, ...] = HOSTNAMES) -> ServerCerts:
    leaf = ca.issue_cert(*names)
    directory.mkdir(parents=True, exist_ok=True)
    chain = directory / "leaf-chain.pem"
    key = directory / "leaf-key.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    ca_pem = directory / "ca.pem"
    ca_pem.write_bytes(ca.cert_pem.bytes())
    return ServerCerts(ca_pem=ca_pem, chain_pem=chain, private_pem=key)


def server_certs(world_dir: Path) -> ServerCerts:
    """The world's CA (`<world>/ca.pem`) and the leaf the HTTPS front presents; made once, then reused."""
    directory = world_dir / "tls"
    if not (directory / "ca.pem").exists():
        world_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=world_dir, prefix=".tls."))
        _issue(trustme.CA(organization_name="Reflector docs world CA"), tmp, hostnames(world_dir))
        try:
            tmp.rename(directory)  # atomic; fails if another process made the set first, and that set wins
        except OSError:
            shutil.rmtree(tmp)
    ca_pem = world_dir / "ca.pem"
    _write_once(ca_pem, (directory / "ca.pem").read_bytes())
    return ServerCerts(
        ca_pem=ca_pem,
        chain_pem=directory / "leaf-chain.pem",
        private_pem=directory / "leaf-key.pem",
    )


def untrusted_certs(world_dir: Path) -> ServerCerts:
    """A leaf for the same names from a CA nobody trusts (the `untrusted-cert` fault)."""
    return _issue(trustme.CA(organization_name="Some other CA"), world_dir / "tls" / "untrusted")


@functools.lru_cache(maxsize=4)
def _load_private(pem: str) -> rsa.RSAPrivateKey:
    """Loading a PEM checks the RSA key's consistency, 42 ms of CPU; handing python-jose the PEM made every
    token it signed pay that (measured: 42 ms a token from the PEM, 0.4 ms from the loaded key)."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"the signing key is {type(key).__name__}, not RSA")
    return key


def signing_key(world_dir: Path) -> SigningKey:
    """Authentik's RSA-2048 signing key and self-signed certificate, shared by every process of the world."""
    path = world_dir / "authentik" / "signing-keypair.pem"
    if not path.exists():
        _write_once(path, _new_signing_pair())
    text = path.read_text()
    marker = "-----BEGIN CERTIFICATE-----"
    private_pem, cert_body = text.split(marker, 1)
    return SigningKey(private_pem=private_pem, cert_pem=marker + cert_body)


def _new_signing_pair() -> bytes:
    """Like Authentik's CertificateBuilder: CN is the pair's name, O=authentik, OU=Self-signed."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, SIGNING_KEY_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "authentik"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Self-signed"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("*")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return private_pem + cert.public_bytes(serialization.Encoding.PEM)
