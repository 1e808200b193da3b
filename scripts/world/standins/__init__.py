"""Validating stand-ins for the tools that cannot run in the world (docker, sudo, ssh, nano)."""
