"""Build the optional compiled one-pass drizzle kernel (image2.core._coadd); metadata lives in pyproject.toml.

The extension is optional: when no C compiler is available the install still succeeds and
image2 runs drizzle's own passes instead. It is compiled with the default flags, like
drizzle's own kernels, so that both do the same floating-point operations.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("image2.core._coadd", ["image2/core/_coadd.c"], optional=True)])
