"""``import pynvml`` in a launcher subprocess under test: the fake, GPUs from FAKE_NVML_GPUS.

Put this folder first on PYTHONPATH; the real nvidia-ml-py is then shadowed.
"""

import os
import sys

from tests.fakes.nvml import from_environment

sys.modules[__name__] = from_environment(os.environ.get("FAKE_NVML_GPUS"))
