"""Doc tooling: snippet extraction, the sandboxed world, its fakes and stand-ins, and the runner."""
