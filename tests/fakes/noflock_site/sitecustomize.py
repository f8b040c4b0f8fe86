"""File locks that lock nothing, in a launcher subprocess under test: a shared filesystem
whose ``flock``/``fcntl`` locks are accepted and ignored, as on some NFS and Lustre mounts
(huggingface_hub ``file_download.py``, ``_download_to_tmp_and_move``, describes them).

Put this folder first on PYTHONPATH: Python imports ``sitecustomize`` at start-up, and from
then on ``fcntl.flock`` and ``fcntl.lockf`` succeed at once for every caller (the
``filelock`` package huggingface_hub uses calls ``fcntl.flock``). ``NOFLOCK_ACTIVE`` in
``os.environ`` tells a test that it took effect.
"""

import fcntl
import os


def _granted(fd, operation, *args):
    """Succeed without locking, as such a filesystem does."""
    return None


fcntl.flock = _granted
fcntl.lockf = _granted
os.environ["NOFLOCK_ACTIVE"] = "1"
