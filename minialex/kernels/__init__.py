"""Hand-written GPU kernels for the hot spots of the layers, with their NumPy twins.

``minialex.kernels.cuda`` holds CuPy kernels (built lazily on first call, so
importing minialex never imports CuPy); ``minialex.kernels.twins`` holds NumPy
versions that do the same index arithmetic, one "thread" per output element,
so the kernels' logic is tested on machines without a GPU. See docs/gpu.md.

Neither submodule is imported here: ``from minialex.kernels import cuda``
costs nothing until a kernel is called.
"""
