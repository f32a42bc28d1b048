"""TLS for every port, from PEM files: loaded and checked once at start-up, so that a missing
file or a key that does not match its certificate is one clear start-up error, not a server
that answers plaintext or fails on its first connection. The same for the bridge's side of the
connection to its gateway (TargetTls)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.shared.errors import StartupError


def _read(flag: str, path: str) -> bytes:
    if not path:
        # Never taken for the option left out: that would serve (or dial) plaintext unasked.
        raise StartupError(f"{flag} is an empty path: give the file, or leave the option out")
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise StartupError(f"{flag} {path}: {exc.strerror or exc}") from None


def _check_pair(context: ssl.SSLContext, cert: tuple[str, str], key: tuple[str, str]) -> None:
    """A certificate chain and its private key, as (flag, path) each."""
    try:
        context.load_cert_chain(cert[1], key[1])
    except ssl.SSLError as exc:
        raise StartupError(
            f"{cert[0]} {cert[1]} and {key[0]} {key[1]}: not a PEM certificate chain "
            f"and its private key ({exc.reason or exc})"
        ) from None


def _check_cas(context: ssl.SSLContext, flag: str, path: str) -> None:
    try:
        context.load_verify_locations(path)
    except ssl.SSLError as exc:
        raise StartupError(f"{flag} {path}: not PEM CA certificates ({exc.reason or exc})") from None


@dataclass(frozen=True)
class Tls:
    cert_file: str
    key_file: str
    client_ca_file: str | None
    cert: bytes
    key: bytes
    client_ca: bytes | None

    @classmethod
    def load(cls, cert_file: str | None, key_file: str | None, client_ca_file: str | None) -> Tls | None:
        if cert_file is None or key_file is None:
            return None
        cert = _read("--tls-cert-file", cert_file)
        key = _read("--tls-key-file", key_file)
        client_ca = _read("--tls-client-ca-file", client_ca_file) if client_ca_file is not None else None
        # The same checks the servers make, now: a certificate, its key, and CAs that parse.
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        _check_pair(context, ("--tls-cert-file", cert_file), ("--tls-key-file", key_file))
        if client_ca_file is not None:
            _check_cas(context, "--tls-client-ca-file", client_ca_file)
        return cls(cert_file, key_file, client_ca_file, cert, key, client_ca)

    def uvicorn_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"ssl_certfile": self.cert_file, "ssl_keyfile": self.key_file}
        if self.client_ca_file:
            options.update(ssl_ca_certs=self.client_ca_file, ssl_cert_reqs=ssl.CERT_REQUIRED)
        return options


@dataclass(frozen=True)
class TargetTls:
    """How the bridge reaches a gateway that serves TLS: the CAs it trusts (None: the system's
    roots) and, for a gateway that requires mTLS, its client certificate chain and key. The
    arguments of grpc.ssl_channel_credentials."""

    root_certificates: bytes | None
    private_key: bytes | None
    certificate_chain: bytes | None

    @property
    def mutual(self) -> bool:
        return self.certificate_chain is not None

    @classmethod
    def load(cls, tls: bool, ca_file: str | None, cert_file: str | None, key_file: str | None) -> TargetTls | None:
        """None for plaintext: no option asks for TLS. Each file option implies TLS; an empty
        path is a path too (refused as such), never taken for the option left out."""
        if (cert_file is None) != (key_file is None):
            given, missing = ("--target-cert-file", "--target-key-file")[:: 1 if cert_file is not None else -1]
            raise StartupError(f"{given} needs {missing}: a client certificate goes with its private key")
        if not tls and ca_file is None and cert_file is None:
            return None
        roots = _read("--target-ca-file", ca_file) if ca_file is not None else None
        chain = _read("--target-cert-file", cert_file) if cert_file is not None else None
        key = _read("--target-key-file", key_file) if key_file is not None else None
        # Checked now, as the gateway checks its own: gRPC would only fail the first connection.
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if ca_file is not None:
            _check_cas(context, "--target-ca-file", ca_file)
        if cert_file is not None and key_file is not None:
            _check_pair(context, ("--target-cert-file", cert_file), ("--target-key-file", key_file))
        return cls(roots, key, chain)
