"""``splat4d-rig``: raw multi-camera videos to a calibrated, synchronised scene (see cli.py)."""
