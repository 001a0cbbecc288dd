"""The program that runs *inside* the sandbox, in the interpreter given by ``--python``.

Stdlib only and never imported by mlgate's own process: the target environment may not have
mlgate installed, and nothing here may be trusted once the model has been loaded (the payload
shares this process). It is started as ``python -I -B <dir>/inside/__main__.py CONFIG``.
"""
