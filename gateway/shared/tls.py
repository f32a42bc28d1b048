"""TLS for every port, from PEM files: loaded and checked once at start-up, so that a missing
file or a key that does not match its certificate is one clear start-up error, not a server
that answers plaintext or fails on its first connection."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.shared.errors import StartupError


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
        if not cert_file or not key_file:
            return None
        files = {"--tls-cert-file": cert_file, "--tls-key-file": key_file}
        if client_ca_file:
            files["--tls-client-ca-file"] = client_ca_file
        read: dict[str, bytes] = {}
        for flag, path in files.items():
            try:
                read[flag] = Path(path).read_bytes()
            except OSError as exc:
                raise StartupError(f"{flag} {path}: {exc.strerror or exc}") from None
        # The same checks the servers make, now: a certificate, its key, and CAs that parse.
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as exc:
            raise StartupError(
                f"--tls-cert-file {cert_file} and --tls-key-file {key_file}: not a PEM certificate chain "
                f"and its private key ({exc.reason or exc})"
            ) from None
        if client_ca_file:
            try:
                context.load_verify_locations(client_ca_file)
            except ssl.SSLError as exc:
                raise StartupError(
                    f"--tls-client-ca-file {client_ca_file}: not PEM CA certificates ({exc.reason or exc})"
                ) from None
        return cls(
            cert_file, key_file, client_ca_file, read["--tls-cert-file"], read["--tls-key-file"],
            read.get("--tls-client-ca-file"),
        )  # fmt: skip

    def uvicorn_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"ssl_certfile": self.cert_file, "ssl_keyfile": self.key_file}
        if self.client_ca_file:
            options.update(ssl_ca_certs=self.client_ca_file, ssl_cert_reqs=ssl.CERT_REQUIRED)
        return options
