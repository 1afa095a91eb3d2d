"""A backend module that raises while it is being imported."""

raise RuntimeError("this backend needs a GPU driver that is not installed")
