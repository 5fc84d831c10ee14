"""A benchmark's temporary folder, removed when its process exits: a data folder can hold
hundreds of MB (VGG-16's published-layout weights alone are 528 MB), and a benchmark run again
and again must not fill the disk (130 forgotten folders once took 68 GB of /tmp)."""

import atexit
import shutil
import tempfile
from pathlib import Path


def scratch_folder(prefix: str) -> Path:
    """A new empty folder under the system's temporary directory, gone at exit."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, True)
    return folder
