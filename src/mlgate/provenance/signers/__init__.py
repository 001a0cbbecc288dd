"""Signing backends for OMS signatures, one module per backend.

Every backend provides a :class:`~mlgate.provenance.signers.base.Signer` (signs the DSSE PAE
bytes and describes its verification material) and a matching
:class:`~mlgate.provenance.signers.base.Verifier`. PKCS#11 or cosign backends plug in as
further modules implementing the same two protocols.
"""

from mlgate.provenance.signers.base import Signer, Verifier

__all__ = ["Signer", "Verifier"]
