"""fedsim: discrete-event simulation and benchmarking of federated model-inference routing.

The routing logic lives in :mod:`fedsim.federation`, a faithful, dependency-free Python
implementation of the APR Federation router (apr-cli 0.30).
"""

__version__ = "0.1.0"
