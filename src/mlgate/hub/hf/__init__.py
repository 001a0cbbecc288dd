"""The Hugging Face-compatible face of the hub: what ``huggingface_hub``, ``transformers``
and the ``hf`` CLI call, answered from the registry, so that unmodified clients with
``HF_ENDPOINT`` pointed at the hub download published models and nothing else.

``paths`` parses request paths (raw, so an encoded ``refs%2Fpr%2F1`` stays one segment),
``revisions`` maps ``main``, aliases and commit ids to registry versions and says why a
version is not served, ``entries`` lists what a version serves (its files, the registry's
signature and ML-BOM), ``responses`` streams them, ``listing`` builds the JSON the client's
``ModelInfo`` / ``RepoFile`` parsers read, ``errors`` speaks the client's error headers and
``routes`` ties them to the application.
"""
