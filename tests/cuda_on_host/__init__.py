"""Each CUDA kernel's own source, compiled with g++ and run on the CPU (host_kernel.py), and its
tests: every kernel against its NumPy twin and the reference (test_kernels.py), and deliberately
broken kernels that must be caught (test_controls.py)."""
