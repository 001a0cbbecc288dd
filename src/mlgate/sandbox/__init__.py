"""Isolated helper processes for the few inspections that must decode untrusted data.

Decoding is confined to a separate, resource-limited interpreter so a hostile payload can
crash, hang or exhaust only that process, never the scanner.
"""
