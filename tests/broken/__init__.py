"""Backends for calibrating the conformance suite.

:mod:`tests.broken.bank` holds deliberately broken backends, each with one
realistic bug and the rule(s) expected to catch it; :mod:`tests.broken.correct`
holds correct backends that round differently from the reference (FFT
convolution, float16 and float32 summation in other orders), which must pass.
"""
