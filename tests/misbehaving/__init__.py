"""Backends that misbehave at the process level or break the calling contract: one module each.

Each module is the reference with one thing wrong, in ``conv_forward`` unless
its docstring says otherwise, so ``convspec check tests.misbehaving.NAME
--ops conv`` shows how the suite survives it. ``tests/test_isolation.py`` runs
them all. (Numerically wrong but well-behaved backends live in
:mod:`tests.broken`.)
"""
