"""cnncore: the maths behind cnnviz. Pure Python + torch + numpy; never imports the web layer."""

from cnncore.errors import CNNCoreError

__all__ = ["CNNCoreError"]
