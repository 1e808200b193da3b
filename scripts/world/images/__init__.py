"""What runs inside the world's containers: one behaviour per image (catalogue.py looks them up by repository).

The simulated engine (scripts/world/engine) asks an image what its Dockerfile configured, what its
main process does when the container starts (runs, or crashes with what in its log), and what a
command run with `docker exec` prints. An image answers only what it models; anything else is
refused loudly with exit status 125 and "not modelled in this world".
"""
