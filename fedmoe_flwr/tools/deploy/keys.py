"""``fedmoe deploy key``: a SuperNode's ECDSA P-384 key pair in OpenSSH format.

What ``ssh-keygen -t ecdsa -b 384 -N "" -C NAME`` writes, made with
``cryptography`` so no OpenSSH install is needed: ``keys/NAME`` (the OpenSSH
private key, mode 0600, read by ``flower-supernode
--auth-supernode-private-key``) and ``keys/NAME.pub`` (``ecdsa-sha2-nistp384
... NAME``, which ``flwr supernode register`` reads on the SuperLink machine).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedmoe_flwr.tools.deploy.files import write_new
from fedmoe_flwr.tools.deploy.validate import DeployError


def key_path(keys: Path, name: str) -> Path:
    """``keys/NAME`` for a checked name, refusing anything that would land elsewhere."""
    path = keys / name
    if path.parent != keys or path.resolve().parent != keys.resolve():
        raise DeployError(f"key NAME {name!r} would leave {keys}")
    return path


def key_pair(name: str) -> tuple[bytes, bytes]:
    """A new P-384 key: (OpenSSH private key, ``ecdsa-sha2-nistp384 BASE64 NAME`` line)."""
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH)
    return private, public + b" " + name.encode() + b"\n"


def create(keys: Path, name: str) -> Path:
    """Write ``keys/NAME`` and ``keys/NAME.pub``; never replace an existing key.

    Returns
    -------
    Path
        The private key's path.
    """
    path = key_path(keys, name)
    pub = path.with_name(name + ".pub")
    if path.exists() or pub.exists():
        raise DeployError(f"{path} exists; pick another name or delete it")
    private, public = key_pair(name)
    keys.mkdir(parents=True, exist_ok=True)
    write_new(path, private)
    try:
        write_new(pub, public, 0o644)
    except BaseException:
        path.unlink(missing_ok=True)  # no private key without its public half
        raise
    return path


def check_public(path: Path) -> None:
    """Refuse a file that is not an OpenSSH NIST-curve EC public key (what Flower accepts)."""
    try:
        key = serialization.load_ssh_public_key(path.read_bytes())
    except (ValueError, OSError) as err:
        raise DeployError(f"{path} is not an OpenSSH public key ({err})") from None
    except UnsupportedAlgorithm as err:
        raise DeployError(f"{path}: unsupported public key ({err})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise DeployError(f"{path} is not an ECDSA public key (create one with "
                          f"'fedmoe deploy key NAME')")
