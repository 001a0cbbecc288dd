"""OMS signing with an EC private key on a PKCS#11 token (an HSM, a smart card, SoftHSM).

The key is addressed by an RFC 7512 URI such as
``pkcs11:token=prod;object=model-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234``.
The private key never leaves the token: the DSSE PAE is hashed on the host with the curve's
SHA-2 hash (as :mod:`mlgate.provenance.signers.ec_key` does) and only the digest is signed with
the raw ``CKM_ECDSA`` mechanism, because tokens such as SoftHSM lack combined ECDSA-SHA256.
The token returns ``r || s``, converted here to the DER form OMS bundles carry. The bundle's key
hint comes from the token's public key object, so verification is the ordinary public-key path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from mlgate.provenance.keys import check_supported, hash_for, key_hint
from mlgate.provenance.oms import VerificationMaterial
from mlgate.provenance.signers.ec_key import describe_key
from mlgate.provenance.signing_errors import KeyLoadError

# RFC 7512 attributes this signer understands; anything else is refused rather than ignored,
# because a silently ignored attribute could select a different key than the user meant.
_PATH_ATTRS = frozenset({"token", "manufacturer", "serial", "model", "object", "id", "type"})
_QUERY_ATTRS = frozenset({"module-path", "pin-value", "pin-source"})
_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


class Pkcs11UriError(KeyLoadError):
    """A PKCS#11 URI is malformed or lacks what signing needs."""


@dataclass(frozen=True)
class Pkcs11Uri:
    """The parts of an RFC 7512 URI that select a token, a key and how to log in."""

    path: dict[str, bytes] = field(default_factory=dict)
    query: dict[str, bytes] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        """A path or query attribute decoded as UTF-8, or None when absent."""
        value = self.path.get(name, self.query.get(name))
        return None if value is None else value.decode("utf-8", "replace")

    @property
    def token_label(self) -> str | None:
        """The ``token=`` label, if given."""
        return self.text("token")

    @property
    def object_label(self) -> str | None:
        """The ``object=`` label of the key, if given."""
        return self.text("object")

    @property
    def object_id(self) -> bytes | None:
        """The ``id=`` of the key (raw bytes), if given."""
        return self.path.get("id")


def _decode(value: str, uri: str) -> bytes:
    if _ESCAPE.search(value):
        raise Pkcs11UriError(f"PKCS#11 URI {_redact(uri)}: bad percent-encoding in {value!r}")
    out = bytearray()
    i = 0
    while i < len(value):
        if value[i] == "%":
            out.append(int(value[i + 1 : i + 3], 16))
            i += 3
        else:
            out += value[i].encode("utf-8")
            i += 1
    return bytes(out)


def _attributes(text: str, sep: str, allowed: frozenset[str], uri: str) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for item in filter(None, text.split(sep)):
        name, eq, value = item.partition("=")
        if not eq:
            raise Pkcs11UriError(f"PKCS#11 URI {_redact(uri)}: {name!r} has no value")
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            raise Pkcs11UriError(
                f"PKCS#11 URI {_redact(uri)}: unsupported attribute {name!r} (known: {known})"
            )
        if name in found:
            raise Pkcs11UriError(f"PKCS#11 URI {_redact(uri)}: {name!r} given twice")
        found[name] = _decode(value, uri)
    return found


def _redact(uri: str) -> str:
    # Error messages name the URI, but must never echo the PIN into logs.
    return re.sub(r"(pin-value=)[^&]*", r"\1***", uri)


def parse_uri(uri: str) -> Pkcs11Uri:
    """Parse an RFC 7512 ``pkcs11:`` URI strictly (unknown or repeated attributes are errors)."""
    scheme, colon, rest = uri.partition(":")
    if not colon or scheme.lower() != "pkcs11":
        raise Pkcs11UriError(f"not a PKCS#11 URI (expected 'pkcs11:...'): {_redact(uri)}")
    path_text, _, query_text = rest.partition("?")
    parsed = Pkcs11Uri(
        _attributes(path_text, ";", _PATH_ATTRS, uri),
        _attributes(query_text, "&", _QUERY_ATTRS, uri),
    )
    if parsed.object_label is None and parsed.object_id is None:
        raise Pkcs11UriError(f"PKCS#11 URI {_redact(uri)}: name the key with object= or id=")
    kind = parsed.text("type")
    if kind not in (None, "private"):
        raise Pkcs11UriError(f"PKCS#11 URI {_redact(uri)}: type={kind} cannot sign; use private")
    return parsed


def _pin(uri: Pkcs11Uri, pin: bytes | str | None, raw: str) -> str:
    """The user PIN: given by the caller (``--pin-file``), ``pin-value`` or ``pin-source``."""
    sources = [p for p in (pin, uri.query.get("pin-value"), uri.query.get("pin-source")) if p]
    if len(sources) > 1:
        raise Pkcs11UriError(f"PKCS#11 URI {_redact(raw)}: give the PIN only once")
    if pin is not None:
        return pin.decode("utf-8") if isinstance(pin, bytes) else pin
    if "pin-value" in uri.query:
        return uri.query["pin-value"].decode("utf-8")
    source = uri.text("pin-source")
    if source is None:
        raise Pkcs11UriError(
            f"PKCS#11 URI {_redact(raw)}: no PIN; add pin-value= or pin-source=, or a PIN file"
        )
    file = source.removeprefix("file:")
    try:
        return Path(file).read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
    except OSError as e:
        raise KeyLoadError(f"cannot read PIN file {file}: {e.strerror or e}") from e


def _load_library(path: str) -> Any:
    # Imported here so that mlgate works where python-pkcs11 cannot be loaded at all.
    try:
        import pkcs11  # noqa: PLC0415
    except ImportError as e:
        raise KeyLoadError("PKCS#11 signing needs the python-pkcs11 package") from e
    if not Path(path).is_file():
        raise KeyLoadError(f"PKCS#11 module {path} not found")
    try:
        return pkcs11.lib(path)
    except Exception as e:  # the binding raises assorted types for a bad .so
        raise KeyLoadError(f"cannot load PKCS#11 module {path}: {e}") from e


class Pkcs11Signer:
    """Signs with an EC private key held on a PKCS#11 token; the key never leaves it.

    Construction logs in once to check the PIN, find the key pair and read its public key, so
    that a wrong PIN or label is reported before any hashing work is done.
    """

    def __init__(
        self, uri: str, pin: bytes | str | None = None, module_path: str | None = None
    ) -> None:
        parsed = parse_uri(uri)
        module = module_path or parsed.text("module-path")
        if module is None:
            raise Pkcs11UriError(
                f"PKCS#11 URI {_redact(uri)}: no module-path= (the token's PKCS#11 library)"
            )
        self._uri = parsed
        self._shown = _redact(uri)
        self._pin = _pin(parsed, pin, uri)
        self._lib = _load_library(module)
        self._token_name = parsed.token_label or "the first token"
        with self._session() as session:
            self._public = self._public_key(session)
            self._private_handle(session)  # fail now, not after hashing, when it is missing

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The key pair's public key, read from the token (for export and verification)."""
        return self._public

    def public_pem(self) -> bytes:
        """The public key as SubjectPublicKeyInfo PEM, what ``mlgate verify --key`` takes."""
        return self._public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def description(self) -> str:
        return f"{describe_key(self._public)} on PKCS#11 token {self._token_name!r}"

    def sign(self, data: bytes) -> bytes:
        import pkcs11  # noqa: PLC0415

        algorithm = hash_for(self._public)
        digest = hashes.Hash(algorithm)
        digest.update(data)
        with self._session() as session:
            key = self._private_handle(session)
            try:
                raw: bytes = key.sign(digest.finalize(), mechanism=pkcs11.Mechanism.ECDSA)
            except pkcs11.PKCS11Error as e:
                raise KeyLoadError(f"{self._shown}: the token refused to sign: {_why(e)}") from e
        half = len(raw) // 2
        r, s = int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        return encode_dss_signature(r, s)

    def verification_material(self) -> VerificationMaterial:
        return VerificationMaterial(key_hint=key_hint(self._public))

    @contextmanager
    def _session(self) -> Iterator[Any]:
        import pkcs11  # noqa: PLC0415
        from pkcs11 import exceptions as x  # noqa: PLC0415

        where = f"PKCS#11 token {self._token_name!r}"
        try:
            token = self._lib.get_token(token_label=self._uri.token_label)
        except x.NoSuchToken as e:
            raise KeyLoadError(f"{where} not found ({self._shown})") from e
        except x.MultipleTokensReturned as e:
            raise KeyLoadError(f"{where}: several tokens match; add token= to the URI") from e
        try:
            session = token.open(user_pin=self._pin)
        except (x.PinIncorrect, x.PinInvalid, x.PinLenRange) as e:
            raise KeyLoadError(f"{where}: wrong PIN") from e
        except x.PinLocked as e:
            raise KeyLoadError(f"{where}: the PIN is locked") from e
        except pkcs11.PKCS11Error as e:
            raise KeyLoadError(f"{where}: cannot log in: {_why(e)}") from e
        try:
            yield session
        finally:
            session.close()

    def _find(self, session: Any, object_class: Any) -> Any:
        import pkcs11  # noqa: PLC0415
        from pkcs11 import exceptions as x  # noqa: PLC0415

        attrs: dict[str, Any] = {"object_class": object_class, "key_type": pkcs11.KeyType.EC}
        if self._uri.object_label is not None:
            attrs["label"] = self._uri.object_label
        if self._uri.object_id is not None:
            attrs["id"] = self._uri.object_id
        kind = "private" if object_class == pkcs11.ObjectClass.PRIVATE_KEY else "public"
        where = f"PKCS#11 token {self._token_name!r}"
        name = self._key_name()
        try:
            return session.get_key(**attrs)
        except x.NoSuchKey as e:
            raise KeyLoadError(f"{where}: no EC {kind} key {name}") from e
        except x.MultipleObjectsReturned as e:
            raise KeyLoadError(f"{where}: several EC {kind} keys match {name}; add id=") from e

    def _key_name(self) -> str:
        parts = []
        if self._uri.object_label is not None:
            parts.append(f"object={self._uri.object_label!r}")
        if self._uri.object_id is not None:
            parts.append(f"id={self._uri.object_id.hex()}")
        return " ".join(parts)

    def _private_handle(self, session: Any) -> Any:
        import pkcs11  # noqa: PLC0415

        return self._find(session, pkcs11.ObjectClass.PRIVATE_KEY)

    def _public_key(self, session: Any) -> ec.EllipticCurvePublicKey:
        import pkcs11  # noqa: PLC0415
        from pkcs11.util.ec import encode_ec_public_key  # noqa: PLC0415

        public = self._find(session, pkcs11.ObjectClass.PUBLIC_KEY)
        der = encode_ec_public_key(public)
        loaded = serialization.load_der_public_key(der)
        return check_supported(loaded, f"PKCS#11 key {self._key_name()}")


def _why(error: Exception) -> str:
    # python-pkcs11 exceptions often carry no message; their class name is the PKCS#11 code.
    return str(error) or type(error).__name__
