"""Pickle analysis: symbolic VM, gadget evaluation, policy and findings."""
