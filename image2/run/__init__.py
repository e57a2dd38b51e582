"""The application layer: run options, processing one input into published products, typed results,
and the executors that run inputs in worker processes or on a Dask cluster.

It composes core (the pure steps) and io (formats and files); the command line and the watch
daemon call it. See ARCHITECTURE.md.
"""
