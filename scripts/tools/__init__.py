"""Tools over the runner: the benchmark, mutation testing and stability runs."""
