"""The raster wing: projection and the INRIA forward kernel (numpy and numba walks), the backends (CPU here, CUDA
through CuPy) and the renders built on them."""
