"""Sign a model and verify its signature in the OpenSSF Model Signing (OMS) format.

The manifest comes from :func:`mlgate.provenance.manifest.hash_model`; this module maps it onto
model_signing's "files" serialization so that either tool verifies the other's signatures:

* Ignore rules are OMS ``ignore_paths``: paths relative to the model root, each ignoring itself
  and everything below it (model_signing ``serialization.should_ignore``). By default only the
  root git paths ``.git``, ``.gitattributes``, ``.github``, ``.gitignore`` and the signature
  file itself are ignored, exactly as ``model_signing sign`` does: everything else, including a
  nested ``sub/.git/`` and a vendor's ``mlgate.lock``, is signed (a pickle hidden in a nested
  ``.git`` would otherwise ride along unsigned).
* A single-file model has one resource named ``.`` (model_signing hashes the path relative to
  itself); its default signature is ``FILE.sig`` beside it. A folder's is ``model.sig`` in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cryptography.hazmat.primitives.asymmetric import ec

from mlgate.provenance import oms
from mlgate.provenance.errors import ContentMismatch, ProvenanceError
from mlgate.provenance.keys import load_private_key, load_public_key
from mlgate.provenance.manifest import (
    ALGORITHMS,
    SIGNATURE_FILE,
    hash_model,
    signature_name,
)
from mlgate.provenance.signers.base import Signer, Verifier
from mlgate.provenance.signers.certificate import (
    CertificateSigner,
    CertificateVerifier,
    load_certificates,
)
from mlgate.provenance.signers.ec_key import EcKeySigner, EcKeyVerifier
from mlgate.provenance.signing_errors import (
    KeyLoadError,
    SignatureFormatError,
    SignatureInvalid,
)


@dataclass(frozen=True)
class VerificationResult:
    """Outcome of :func:`verify_model`. ``problems`` names every failure (empty: verified)."""

    model: Path
    signature: Path
    signer: str
    problems: tuple[str, ...]
    files: int = 0
    resources: tuple[oms.Resource, ...] = ()  # what the signature covers (once it verified)

    @property
    def verified(self) -> bool:
        """True when the signature is valid and every signed file matches."""
        return not self.problems

    def __bool__(self) -> bool:
        return self.verified


def default_signature_path(model: Path) -> Path:
    """``model.sig`` inside a model folder, ``FILE.sig`` beside a single-file model."""
    return model / SIGNATURE_FILE if model.is_dir() else model.with_name(model.name + ".sig")


def find_signature(model: Path) -> Path:
    """The signature to verify by default: the registry's ``mlgate.sig`` in a pulled folder
    (named so that a vendor's own ``model.sig`` is kept as content), else the OMS default."""
    return model / signature_name(model) if model.is_dir() else default_signature_path(model)


def sign_model(
    path: Path | str,
    key: Path | str | ec.EllipticCurvePrivateKey | Signer,
    *,
    password: bytes | str | None = None,
    signature_path: Path | str | None = None,
    certificate: Path | str | None = None,
    certificate_chain: Sequence[Path | str] = (),
    ignore: Iterable[str] = (),
    allow_symlinks: bool = False,
    ignore_git: bool = True,
    expect: Mapping[str, str] | None = None,
) -> Path:
    """Sign the model at ``path`` and write the OMS signature; return the signature's path.

    ``key`` is a PEM private key file (``password`` if encrypted), a loaded EC private key, or
    any :class:`~mlgate.provenance.signers.base.Signer`. With ``certificate`` (PEM, the key's
    certificate) and ``certificate_chain`` (intermediates), the bundle carries the chain.
    ``ignore_git=False`` signs the root git paths too (model_signing's ``ignore_git_paths``).
    ``expect`` (path -> SHA-256): the content the caller recorded; the bytes hashed for the
    signature must be exactly these or :class:`ContentMismatch` is raised and nothing is
    signed (a check made in the same pass as the signing hash leaves no time-of-check gap).
    """
    model = Path(path)
    signer = _signer(key, password, certificate, certificate_chain)
    sig_path = Path(signature_path) if signature_path is not None else None
    sig_path = sig_path or default_signature_path(model)
    ignore_paths = _ignore_paths(model, ignore, sig_path, ignore_git)
    resources = _hash(model, "sha256", ignore_paths, allow_symlinks)
    if expect is not None:
        _require_content(resources, expect)
    serialization = oms.Serialization("sha256", allow_symlinks, ignore_paths)
    payload = oms.encode_statement(_model_name(model), resources, serialization)
    signature = signer.sign(oms.pae(payload))
    text = oms.encode_bundle(payload, signature, signer.verification_material())
    try:
        sig_path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise ProvenanceError(f"cannot write signature {sig_path}: {e.strerror or e}") from e
    return sig_path


def verify_model(
    path: Path | str,
    public_key: Path | str | ec.EllipticCurvePublicKey | Verifier | None = None,
    signature_path: Path | str | None = None,
    *,
    trust_chain: Sequence[Path | str] = (),
    ignore: Iterable[str] = (),
    allow_symlinks: bool = False,
) -> VerificationResult:
    """Verify the OMS signature of the model at ``path``.

    Trust is either ``public_key`` (PEM file, loaded EC key or any ``Verifier``) or
    ``trust_chain`` (PEM files of trusted root/intermediate certificates). Returns a
    :class:`VerificationResult`; raises :class:`ProvenanceError` when verification cannot be
    carried out (unreadable signature or key, unsupported signature variant).
    """
    model = Path(path)
    verifier, trusted = _verifier(public_key, trust_chain)
    sig_path = Path(signature_path) if signature_path is not None else find_signature(model)
    source = str(sig_path)
    try:
        text = sig_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ProvenanceError(f"cannot read signature {sig_path}: {e}") from e
    try:
        signer, statement = _open_bundle(text, verifier, source)
    except (SignatureFormatError, SignatureInvalid) as e:
        return VerificationResult(model, sig_path, trusted, (str(e),))
    if statement.serialization.hash_type not in ALGORITHMS:
        raise ProvenanceError(f"{source}: hash type {statement.serialization.hash_type} unknown")
    extra = _ignore_paths(model, ignore, sig_path, ignore_git=False)
    ignore_paths = tuple(dict.fromkeys(statement.serialization.ignore_paths + extra))
    actual = _hash(model, statement.serialization.hash_type, ignore_paths, allow_symlinks)
    problems = compare(statement.resources, actual)
    return VerificationResult(
        model, sig_path, signer, tuple(problems), len(actual), statement.resources
    )


def verify_recorded(
    text: str, public_key: ec.EllipticCurvePublicKey, recorded: Mapping[str, str], source: str
) -> tuple[str, ...]:
    """Problems (none: verified) of the signature bundle ``text``: its signature under
    ``public_key``, and the files it covers against ``recorded`` (path -> SHA-256) without
    reading them. What the registry shows for a stored version at every page view (rehashing
    gigabytes per view is `mlgate registry check`'s job: it ties blobs to these digests)."""
    try:
        _, statement = _open_bundle(text, EcKeyVerifier(public_key), source)
    except (SignatureFormatError, SignatureInvalid) as e:
        return (str(e),)
    if statement.serialization.hash_type != "sha256":
        return (f"{source}: signed with {statement.serialization.hash_type}, recorded sha256",)
    actual = [oms.Resource(path, "sha256", digest) for path, digest in recorded.items()]
    return tuple(compare(statement.resources, actual))


def _open_bundle(text: str, verifier: Verifier, source: str) -> tuple[str, oms.Statement]:
    """The signer and the statement of a bundle whose signature ``verifier`` accepts."""
    bundle = oms.parse_bundle(text, source)
    if bundle.payload_type != oms.PAYLOAD_TYPE:
        raise SignatureInvalid(f"{source}: payload type {bundle.payload_type!r} is not in-toto")
    signer = verifier.verify(bundle, oms.pae(bundle.payload), source)
    return signer, oms.decode_statement(bundle.payload, source)


def compare(signed: Sequence[oms.Resource], actual: Sequence[oms.Resource]) -> list[str]:
    """One line per difference between the signed resources and the model on disk."""
    want = {r.name: r for r in signed}
    have = {r.name: r for r in actual}
    added = sorted(set(have) - set(want), key=oms.sort_key)
    missing = sorted(set(want) - set(have), key=oms.sort_key)
    problems: list[str] = []
    for name in sorted(set(want) & set(have), key=oms.sort_key):
        if (want[name].algorithm, want[name].digest) != (have[name].algorithm, have[name].digest):
            problems.append(
                f"changed: {name} (signed {want[name].algorithm}:{want[name].digest[:16]}..., "
                f"now {have[name].algorithm}:{have[name].digest[:16]}...)"
            )
    for name in list(missing):
        moved = [a for a in added if have[a].digest == want[name].digest]
        if moved:
            problems.append(f"renamed: {name} -> {moved[0]}")
            missing.remove(name)
            added.remove(moved[0])
    problems += [f"missing: {name} (signed, but not in the model)" for name in missing]
    problems += [f"added: {name} (in the model, but not signed)" for name in added]
    return problems


def _require_content(resources: Sequence[oms.Resource], expect: Mapping[str, str]) -> None:
    want = [oms.Resource(p, "sha256", d) for p, d in expect.items()]
    problems = compare(want, resources)
    if problems:
        raise ContentMismatch(
            f"the content differs from what was recorded ({'; '.join(problems[:5])}); "
            "nothing was signed"
        )


def _signer(
    key: Path | str | ec.EllipticCurvePrivateKey | Signer,
    password: bytes | str | None,
    certificate: Path | str | None,
    chain: Sequence[Path | str],
) -> Signer:
    if not isinstance(key, (Path, str, ec.EllipticCurvePrivateKey)):
        return key
    pw = password.encode("utf-8") if isinstance(password, str) else password
    private = (
        key if isinstance(key, ec.EllipticCurvePrivateKey) else load_private_key(Path(key), pw)
    )
    if certificate is None:
        if chain:
            raise KeyLoadError("a certificate chain was given without the signing certificate")
        return EcKeySigner(private)
    leaf = load_certificates([Path(certificate)])
    if len(leaf) != 1:
        raise KeyLoadError(f"{certificate}: expected exactly one certificate, got {len(leaf)}")
    return CertificateSigner(private, leaf[0], load_certificates([Path(c) for c in chain]))


def _verifier(
    public_key: Path | str | ec.EllipticCurvePublicKey | Verifier | None,
    trust_chain: Sequence[Path | str],
) -> tuple[Verifier, str]:
    if public_key is not None and trust_chain:
        raise KeyLoadError("give either a public key or a certificate trust chain, not both")
    if public_key is None:
        if not trust_chain:
            raise KeyLoadError("nothing to verify against: give a public key or a trust chain")
        paths = [Path(p) for p in trust_chain]
        names = ", ".join(str(p) for p in paths)
        return CertificateVerifier(load_certificates(paths)), f"certificates trusted from {names}"
    if isinstance(public_key, (Path, str)):
        return EcKeyVerifier(load_public_key(Path(public_key)), str(public_key)), str(public_key)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return EcKeyVerifier(public_key), "the given public key"
    return public_key, type(public_key).__name__


def _model_name(model: Path) -> str:
    # model_signing: the last path component, or the resolved folder's name for "." / "..".
    name = model.name
    return name if name and name != ".." else model.resolve().name


def _ignore_paths(
    model: Path, ignore: Iterable[str], sig_path: Path, ignore_git: bool = True
) -> tuple[str, ...]:
    """OMS ``ignore_paths``: user paths, the root git paths, the signature if inside."""
    paths = [_clean(p) for p in ignore] + (list(oms.GIT_PATHS) if ignore_git else [])
    if not model.is_dir():
        return tuple(dict.fromkeys(paths))
    try:
        rel = sig_path.resolve().relative_to(model.resolve())
        paths.append(rel.as_posix())
    except ValueError:
        pass  # a signature outside the model folder is not part of it anyway
    return tuple(dict.fromkeys(p for p in paths if p not in ("", ".")))


def _clean(path: str) -> str:
    return PurePosixPath(str(path).replace("\\", "/")).as_posix().strip("/")


def _escape(path: str) -> str:
    # hash_model takes fnmatch patterns; OMS ignore paths are literal, so escape the wildcards.
    return "".join(f"[{c}]" if c in "*?[" else c for c in path)


def _hash(
    model: Path, algorithm: str, ignore_paths: tuple[str, ...], allow_symlinks: bool
) -> tuple[oms.Resource, ...]:
    """The model's resources as OMS names them, after OMS-style ignore rules."""
    patterns = [_escape(p) for p in ignore_paths]
    manifest = hash_model(model, algorithm, patterns, allow_symlinks, defaults=False)
    if not model.is_dir():
        [only] = manifest.files
        return (oms.Resource(oms.SINGLE_FILE_RESOURCE, only.algorithm, only.digest),)
    # A path is ignored at or below an ignore path (model_signing's Path.is_relative_to).
    kept = [
        f
        for f in manifest.files
        if not any(f.path == p or f.path.startswith(p + "/") for p in ignore_paths)
    ]
    return tuple(oms.Resource(f.path, f.algorithm, f.digest) for f in kept)
