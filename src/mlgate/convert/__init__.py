"""Conversion stage: pickle checkpoints to safetensors, and a safe ``load``, without running them.

Public API: :func:`convert_model`, :func:`load`, :class:`ConversionResult`,
:class:`ConvertedFile`, :class:`ConversionRefused`, :class:`ConversionError`,
:class:`IntegrityError`. Everything else in this package is internal.
"""

from mlgate.convert.errors import ConversionError, ConversionRefused, IntegrityError
from mlgate.convert.load import load
from mlgate.convert.model import ConversionResult, ConvertedFile, convert_model, output_name

__all__ = [
    "ConversionError",
    "ConversionRefused",
    "ConversionResult",
    "ConvertedFile",
    "IntegrityError",
    "convert_model",
    "load",
    "output_name",
]
