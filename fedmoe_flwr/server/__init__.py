"""What the ServerApp keeps: the loop over the Grid, reply intake, experts, gateway, artifacts.

No module here imports torch or transformers: the server is numpy, Flower and
files.  A strategy (``strategies/``) is a small merge policy this loop calls.
"""
