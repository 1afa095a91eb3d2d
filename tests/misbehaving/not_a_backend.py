"""A module that is not a backend: it has none of the protocol's functions."""

GREETING = "hello"


def convolve(x: object) -> object:
    return x
