"""Units used across the launcher (a leaf module: no imports).

``GB`` (10**9 bytes) is the unit of GPU datasheets and checkpoint sizes; ``GiB`` and
``MiB`` (2**30 and 2**20 bytes) are the units of Linux limits such as ``/dev/shm``.
"""

GB = 10**9
GiB = 2**30
MiB = 2**20
