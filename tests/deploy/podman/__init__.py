"""deploy/compose/compose.yaml started for real without Docker (``make test-compose``): Podman
and the ``docker compose`` plugin (``engine``), the images (``images``: a Debian base made with
mmdebstrap, the project's image, stand-ins for the backing services from ``standins/``), the
Compose file's Podman variant and the host's settings (``config``, pure), and the deployment's
life from ``up`` to ``down --volumes`` (``deployment``). tests/deploy/test_compose.py uses it."""
