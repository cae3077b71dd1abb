"""``fedmoe deploy certs``: a CA and the SuperLink's TLS certificate, with ``cryptography``.

The CA (CN "FedMoE-Flower CA", 10 years) signs one server certificate (825
days, the longest validity clients accept) whose subjectAltName lists the
names SuperNodes use to reach the SuperLink, plus ``localhost`` and
``127.0.0.1`` for the flwr CLI on the same machine.  Everything is built in a
temporary directory next to ``certs/`` and moved into place only when every
file is written, so a failure never leaves half a CA behind.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedmoe_flwr.tools.deploy.files import write_new
from fedmoe_flwr.tools.deploy.validate import DeployError, is_ip

CA_NAME = "FedMoE-Flower CA"
CA_DAYS = 3650
SERVER_DAYS = 825
RSA_BITS = 3072
LOCAL = ("localhost", "127.0.0.1")


def san_entries(hosts: Sequence[str]) -> list[x509.GeneralName]:
    """The subjectAltName of checked hosts plus the local names, IPs as IP entries."""
    names: list[x509.GeneralName] = []
    for h in dict.fromkeys([*hosts, *LOCAL]):  # in order, once each
        names.append(x509.IPAddress(ipaddress.ip_address(h)) if is_ip(h) else x509.DNSName(h))
    return names


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _builder(subject: x509.Name, issuer: x509.Name, public: rsa.RSAPublicKey,
             days: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))  # other machines' clock skew
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False))


def make_ca() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A self-signed CA that may sign server certificates and nothing below them."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    cert = (_builder(name, name, key.public_key(), CA_DAYS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_server(hosts: Sequence[str], ca_key: rsa.RSAPrivateKey,
                ca: x509.Certificate) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """The SuperLink's certificate for ``hosts``, signed by the CA (TLS server use only)."""
    key = _key()
    cn = hosts[0] if len(hosts[0]) <= 64 else "FedMoE-Flower SuperLink"  # CN: 64 at most
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (_builder(subject, ca.subject, key.public_key(), SERVER_DAYS)
            .add_extension(x509.SubjectAlternativeName(san_entries(hosts)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=True, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def _write_set(out: Path, hosts: Sequence[str]) -> None:
    """The four files of a set: ca.key and server.key 0600, ca.crt and server.pem 0644."""
    ca_key, ca = make_ca()
    key, cert = make_server(hosts, ca_key, ca)
    pem = serialization.Encoding.PEM
    write_new(out / "ca.key", _pem_key(ca_key))
    write_new(out / "ca.crt", ca.public_bytes(pem), 0o644)
    write_new(out / "server.key", _pem_key(key))
    write_new(out / "server.pem", cert.public_bytes(pem), 0o644)


def create(certs: Path, hosts: Sequence[str], force: bool) -> None:
    """Write a new CA and server certificate into ``certs``, replacing it all or nothing.

    Parameters
    ----------
    certs : Path
        The ``certs/`` directory of the deployment.
    hosts : sequence of str
        Checked host names and IP addresses (at least one).
    force : bool
        Replace an existing set (``FORCE=1`` or ``--force``); without it an
        existing ``ca.crt`` is an error, since the nodes trust that CA.
    """
    if (certs / "ca.crt").exists() and not force:
        raise DeployError(f"{certs / 'ca.crt'} exists (set FORCE=1 or pass --force to "
                          f"replace every certificate)")
    certs.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=certs.parent, prefix=".certs-new-"))
    try:
        _write_set(build, hosts)
        os.chmod(build, 0o755)
        _swap(build, certs)
    finally:
        shutil.rmtree(build, ignore_errors=True)


def _swap(new: Path, certs: Path) -> None:
    """Move the finished set to ``certs``; an old set is moved aside first, then deleted."""
    if not certs.exists():
        os.replace(new, certs)
        return
    old = Path(tempfile.mkdtemp(dir=certs.parent, prefix=".certs-old-"))
    os.replace(certs, old / "certs")  # a directory cannot be renamed onto one on Windows
    try:
        os.replace(new, certs)
    except OSError:
        os.replace(old / "certs", certs)  # put the old set back
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
