"""A local certificate authority for the stack's TLS listeners (the broker's SASL_SSL port).

Made once under ``<home>/<service>/tls`` with ``cryptography``: a CA certificate clients
trust (``MOVINGDATA_KAFKA_SSL_CAFILE``) and a server key and certificate for 127.0.0.1 and
localhost, signed by it. The CA's key is discarded once the server certificate is signed.
"""

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from workers.stack.localenv import write_secret

VALID = datetime.timedelta(days=825)


def ensure_server_tls(folder: Path) -> tuple[Path, Path]:
    """(CA certificate, server PEM with key and certificate), made if missing."""
    ca_file, server_file = folder / "ca.pem", folder / "server.pem"
    if ca_file.exists() and server_file.exists():
        return ca_file, server_file
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MovingData local CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    private = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_secret(server_file, (private + server.public_bytes(pem)).decode())
    ca_file.write_bytes(ca.public_bytes(pem))
    return ca_file, server_file
