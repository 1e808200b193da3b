"""The world: everything that runs inside the sandbox (executor, state, fakes, stand-ins, fixtures, checks)."""
