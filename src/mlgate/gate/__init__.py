"""The gate stage: admission checks a pipeline runs before a model is promoted or deployed."""

from __future__ import annotations

from mlgate.gate.admission import AdmitPolicy, AdmitResult, CheckResult, admit, load_admit_policy

__all__ = ["AdmitPolicy", "AdmitResult", "CheckResult", "admit", "load_admit_policy"]
